"""Envelope encryption: round trips, tamper detection, row binding, key parsing."""

from __future__ import annotations

import pytest

from actana.exceptions import ConfigError, KeyringError
from actana.security.keyring import (
    KEY_PREFIX,
    Keyring,
    SecretBinding,
    generate_master_key,
    parse_master_key,
)

BINDING = SecretBinding("ws_a", "model_endpoint", "me_1", "api_key", "sec_1")


def keyring(*texts: str) -> Keyring:
    return Keyring([parse_master_key(t, source="test") for t in texts])


def test_round_trip_and_random_ciphertexts():
    ring = keyring(generate_master_key())
    one = ring.encrypt(b"sk-live-123", BINDING)
    two = ring.encrypt(b"sk-live-123", BINDING)
    assert one != two
    assert b"sk-live-123" not in one
    assert ring.decrypt(one, BINDING) == ring.decrypt(two, BINDING) == b"sk-live-123"


def test_blob_names_its_format_and_key():
    ring = keyring(generate_master_key())
    blob = ring.encrypt(b"x", BINDING)
    assert blob[0] == 1
    assert Keyring.key_id_of(blob) == ring.primary.key_id


def test_every_flipped_byte_fails_to_decrypt():
    ring = keyring(generate_master_key())
    blob = ring.encrypt(b"a secret value", BINDING)
    for index in range(len(blob)):
        tampered = bytearray(blob)
        tampered[index] ^= 0x01
        with pytest.raises(KeyringError):
            ring.decrypt(bytes(tampered), BINDING)


@pytest.mark.parametrize(
    "other",
    [
        SecretBinding("ws_b", "model_endpoint", "me_1", "api_key", "sec_1"),
        SecretBinding("ws_a", "environment", "me_1", "api_key", "sec_1"),
        SecretBinding("ws_a", "model_endpoint", "me_2", "api_key", "sec_1"),
        SecretBinding("ws_a", "model_endpoint", "me_1", "var:TOKEN", "sec_1"),
        SecretBinding("ws_a", "model_endpoint", "me_1", "api_key", "sec_2"),
    ],
)
def test_ciphertext_is_bound_to_its_row(other):
    ring = keyring(generate_master_key())
    blob = ring.encrypt(b"value", BINDING)
    with pytest.raises(KeyringError, match="altered or belongs to another row"):
        ring.decrypt(blob, other)


def test_newest_key_encrypts_and_all_keys_decrypt():
    old, new = generate_master_key(), generate_master_key()
    before = keyring(old).encrypt(b"old secret", BINDING)
    both = keyring(new, old)
    assert both.decrypt(before, BINDING) == b"old secret"
    after = both.encrypt(b"new secret", BINDING)
    assert Keyring.key_id_of(after) == both.primary.key_id != Keyring.key_id_of(before)
    with pytest.raises(KeyringError, match="not configured"):
        keyring(old).decrypt(after, BINDING)


def test_wrong_key_cannot_pose_as_the_right_one():
    a, b = (
        parse_master_key(generate_master_key(), source="a"),
        parse_master_key(generate_master_key(), source="b"),
    )
    assert a.key_id != b.key_id
    # Force the wrong material under the right id: authentication must still fail.
    forged = Keyring([type(a)(key_id=a.key_id, material=b.material)])
    blob = Keyring([a]).encrypt(b"x", BINDING)
    with pytest.raises(KeyringError):
        forged.decrypt(blob, BINDING)


@pytest.mark.parametrize(
    "text",
    ["", "not-a-key", KEY_PREFIX, KEY_PREFIX + "short", KEY_PREFIX + "A" * 44 + "!", "a" * 60],
)
def test_malformed_keys_are_refused_without_echoing_them(text):
    with pytest.raises(ConfigError) as caught:
        parse_master_key(text, source="ACTANA_MASTER_KEY")
    assert "actana keys generate" in caught.value.message
    if len(text) > len(KEY_PREFIX):
        assert text[len(KEY_PREFIX) :] not in caught.value.message


def test_key_material_never_in_repr_or_str():
    text = generate_master_key()
    key = parse_master_key(text, source="t")
    ring = Keyring([key])
    encoded = text[len(KEY_PREFIX) :]
    for shown in (repr(key), str(key), repr(ring)):
        assert encoded not in shown
        assert key.material.hex() not in shown


def test_truncated_or_foreign_blob():
    ring = keyring(generate_master_key())
    with pytest.raises(KeyringError, match="unknown format"):
        ring.decrypt(b"\x01short", BINDING)
    with pytest.raises(KeyringError, match="unknown format"):
        ring.decrypt(b"\x02" + ring.encrypt(b"x", BINDING)[1:], BINDING)


def test_duplicate_keys_refused():
    text = generate_master_key()
    with pytest.raises(ConfigError, match="twice"):
        keyring(text, text)
