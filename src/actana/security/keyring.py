"""Envelope encryption of secrets at rest.

Each secret gets its own random 256-bit data key (DEK). The plaintext is sealed with AES-256-GCM
under the DEK; the DEK is sealed with AES-256-GCM under a master key (KEK) that lives outside the
database. The blob names its format version and its master key id, so old ciphertexts stay
readable after rotation, and both seals carry associated data naming the row the secret belongs
to: a ciphertext copied into another row, workspace or field no longer decrypts.

Blob layout (bytes): version (1) | key id (8) | KEK nonce (12) | sealed DEK (48) | DEK nonce (12)
| sealed plaintext (len + 16).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from actana.exceptions import ConfigError, KeyringError

KEY_PREFIX = "actana-mk-v1:"
FORMAT_VERSION = 1
_KEY_ID_BYTES = 8
_NONCE = 12
_SEALED_DEK = 32 + 16
_HEADER = 1 + _KEY_ID_BYTES
_MIN_BLOB = _HEADER + _NONCE + _SEALED_DEK + _NONCE + 16


@dataclass(frozen=True)
class SecretBinding:
    """Names the one place a ciphertext may be used; it becomes the AEAD associated data."""

    workspace_id: str
    owner_kind: str
    owner_id: str
    name: str
    secret_id: str

    def associated_data(self, purpose: bytes) -> bytes:
        fields = [self.workspace_id, self.owner_kind, self.owner_id, self.name, self.secret_id]
        return b"actana/secret|" + purpose + b"|" + json.dumps(fields).encode()


@dataclass(frozen=True)
class MasterKey:
    """One master key. `repr` and `str` never show the key material."""

    key_id: str
    material: bytes = field(repr=False)

    def __str__(self) -> str:
        return f"MasterKey({self.key_id})"


def _key_id_for(material: bytes) -> str:
    # Derived from the key, so a wrong key can never pose as a right one with the same id.
    return hmac.new(material, b"actana master key id v1", hashlib.sha256).hexdigest()[
        : 2 * _KEY_ID_BYTES
    ]


def generate_master_key() -> str:
    """A new random master key in its printable form."""
    return KEY_PREFIX + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def parse_master_key(text: str, *, source: str) -> MasterKey:
    """Parse one printable master key; the error names `source`, never the value."""
    text = text.strip()
    if not text.startswith(KEY_PREFIX):
        raise ConfigError(
            f"the master key in {source} is malformed: it must start with {KEY_PREFIX!r}. "
            "Generate one with `actana keys generate`."
        )
    encoded = text[len(KEY_PREFIX) :]
    try:
        material = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        material = b""
    if len(material) != 32:
        raise ConfigError(
            f"the master key in {source} is malformed: after {KEY_PREFIX!r} it must hold 32 "
            "bytes in URL-safe base64 (43 characters). Generate one with `actana keys generate`."
        )
    return MasterKey(key_id=_key_id_for(material), material=material)


class Keyring:
    """The configured master keys: the first (newest) encrypts, every one decrypts."""

    def __init__(self, keys: Sequence[MasterKey]) -> None:
        if not keys:
            raise ConfigError("a keyring needs at least one master key")
        ids = [key.key_id for key in keys]
        if len(set(ids)) != len(ids):
            raise ConfigError("the same master key is configured twice; list each key once")
        self.primary = keys[0]
        self._by_id = {key.key_id: key for key in keys}

    @property
    def key_ids(self) -> list[str]:
        """Configured key ids, newest first."""
        return list(self._by_id)

    def __repr__(self) -> str:
        return f"Keyring(key_ids={self.key_ids})"

    def encrypt(self, plaintext: bytes, binding: SecretBinding) -> bytes:
        """Seal `plaintext` under a fresh data key wrapped by the newest master key."""
        key = self.primary
        header = bytes([FORMAT_VERSION]) + bytes.fromhex(key.key_id)
        dek = AESGCM.generate_key(bit_length=256)
        kek_nonce, dek_nonce = os.urandom(_NONCE), os.urandom(_NONCE)
        sealed_dek = AESGCM(key.material).encrypt(
            kek_nonce, dek, header + binding.associated_data(b"dek")
        )
        sealed = AESGCM(dek).encrypt(
            dek_nonce, plaintext, header + binding.associated_data(b"data")
        )
        return header + kek_nonce + sealed_dek + dek_nonce + sealed

    def decrypt(self, blob: bytes, binding: SecretBinding) -> bytes:
        """Open a blob made by `encrypt` for the same binding.

        Raises:
            KeyringError: unknown format or key, altered bytes, or a blob bound to another row.
        """
        key_id = self.key_id_of(blob)
        key = self._by_id.get(key_id)
        if key is None:
            raise KeyringError(
                f"secret {binding.secret_id} is encrypted under master key {key_id}, "
                "which is not configured"
            )
        header = blob[:_HEADER]
        kek_nonce = blob[_HEADER : _HEADER + _NONCE]
        sealed_dek = blob[_HEADER + _NONCE : _HEADER + _NONCE + _SEALED_DEK]
        dek_nonce = blob[_HEADER + _NONCE + _SEALED_DEK : _HEADER + 2 * _NONCE + _SEALED_DEK]
        sealed = blob[_HEADER + 2 * _NONCE + _SEALED_DEK :]
        try:
            dek = AESGCM(key.material).decrypt(
                kek_nonce, sealed_dek, header + binding.associated_data(b"dek")
            )
            return AESGCM(dek).decrypt(dek_nonce, sealed, header + binding.associated_data(b"data"))
        except InvalidTag:
            raise KeyringError(
                f"secret {binding.secret_id} failed authentication: it was altered or belongs "
                "to another row"
            ) from None

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        """The master key id a blob names in its header."""
        if len(blob) < _MIN_BLOB or blob[0] != FORMAT_VERSION:
            raise KeyringError("not an Actana secret blob (unknown format version or truncated)")
        return blob[1:_HEADER].hex()
