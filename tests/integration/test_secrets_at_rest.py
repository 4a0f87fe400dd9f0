"""Secrets at rest, attacked through the real database (SQLite file bytes, PostgreSQL columns)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select, text

from actana.bootstrap import build_context
from actana.db.models import MasterKeyCanary, Secret
from actana.exceptions import ConfigError, KeyringError
from actana.security.keyring import generate_master_key
from actana.security.master_keys import load_keyring, verify_keyring
from actana.security.rotation import rotate

CANARY = "sk-canary-7f3e9a1b2c4d"


def _raw_database_bytes(context) -> bytes:
    """Everything the database holds, as bytes an attacker with a dump would see."""
    if context.database.is_sqlite:
        path = Path(context.database.engine.url.database)
        with context.database.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(FULL)")
        files = [path, path.with_name(path.name + "-wal")]
        return b"".join(p.read_bytes() for p in files if p.exists())
    with context.database.engine.connect() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        dump = [
            str(row).encode()
            for table in list(tables)
            for row in conn.execute(text(f'SELECT t::text FROM "{table}" t')).scalars()
        ]
        raw = conn.execute(text("SELECT ciphertext FROM secrets")).scalars()
        dump.extend(bytes(blob) for blob in raw)
    return b"\n".join(dump)


def _create_endpoint(tenant, name: str, key: str) -> str:
    r = tenant.client.post(
        tenant.path("/model-endpoints"),
        json={"name": name, "provider": "anthropic", "model": "claude-x", "api_key": key},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_plaintext_never_in_the_raw_database(context, tenant):
    _create_endpoint(tenant, "one", CANARY)
    env = tenant.client.post(
        tenant.path("/environments"),
        json={
            "name": "prod",
            "variables": [{"name": "TOKEN", "value": CANARY + "-env", "secret": True}],
        },
    )
    assert env.status_code == 201, env.text
    raw = _raw_database_bytes(context)
    assert b"sec_" in raw  # the dump really holds the secrets table
    assert CANARY.encode() not in raw
    assert (CANARY + "-env").encode() not in raw


def test_same_plaintext_twice_gives_different_ciphertexts(context, tenant):
    first = _create_endpoint(tenant, "one", CANARY)
    second = _create_endpoint(tenant, "two", CANARY)
    with context.database.session() as session:
        blobs = {s.owner_id: s.ciphertext for s in session.scalars(select(Secret))}
    assert blobs[first] != blobs[second]


def test_flipped_byte_in_the_database_fails_to_decrypt(context, tenant):
    endpoint = _create_endpoint(tenant, "one", CANARY)
    with context.database.session() as session:
        secret = session.scalar(select(Secret).where(Secret.owner_id == endpoint))
        blob = bytearray(secret.ciphertext)
        blob[-5] ^= 0x80
        secret.ciphertext = bytes(blob)
    with context.database.session() as session, pytest.raises(KeyringError, match="altered"):
        context.secrets.get(session, "model_endpoint", endpoint, "api_key")


@pytest.mark.parametrize("cross_tenant", [False, True])
def test_ciphertext_copied_to_another_row_fails(context, tenant, other_tenant, cross_tenant):
    source = _create_endpoint(tenant, "one", CANARY)
    target_tenant = other_tenant if cross_tenant else tenant
    target = _create_endpoint(target_tenant, "two", "sk-other")
    with context.database.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE secrets SET ciphertext ="
                " (SELECT ciphertext FROM secrets WHERE owner_id = :s) WHERE owner_id = :t"
            ),
            {"s": source, "t": target},
        )
    with context.database.session() as session:
        assert context.secrets.get(session, "model_endpoint", source, "api_key") == CANARY
        with pytest.raises(KeyringError, match="another row"):
            context.secrets.get(session, "model_endpoint", target, "api_key")


def _seed_secrets(context, count: int) -> dict[str, str]:
    values = {}
    with context.database.session() as session:
        for i in range(count):
            owner = f"me_seed{i:04d}"
            values[owner] = f"value-{i}-{os.urandom(4).hex()}"
            context.secrets.put(
                session,
                workspace_id=_workspace(context),
                owner_kind="model_endpoint",
                owner_id=owner,
                name="api_key",
                value=values[owner],
                actor="test",
            )
    return values


def _workspace(context) -> str:
    from actana.crew.workspaces import create_workspace
    from actana.db.models import Workspace

    with context.database.session() as session:
        existing = session.scalar(select(Workspace))
        if existing is not None:
            return existing.id
        ws, _ = create_workspace(session, "seed", actor="test")
        return ws.id


def _all_readable(context, values: dict[str, str]) -> None:
    with context.database.session() as session:
        for owner, value in values.items():
            assert context.secrets.get(session, "model_endpoint", owner, "api_key") == value


def _key_ids(context) -> dict[str, int]:
    with context.database.session() as session:
        counts: dict[str, int] = {}
        for key_id in session.scalars(select(Secret.key_id)):
            counts[key_id] = counts.get(key_id, 0) + 1
        return counts


class Crash(Exception):
    pass


def test_rotation_interrupted_then_resumed(settings, master_key, build):
    old = build(settings)
    values = _seed_secrets(old, 40)
    new_key = generate_master_key()
    settings.master_key = SecretStr(f"{new_key},{master_key}")
    both = build(settings)
    new_id = both.keyring.primary.key_id

    def crash_after_three(_rows: int, total: int) -> None:
        if total >= 15:
            raise Crash

    with pytest.raises(Crash):
        rotate(both.database, both.keyring, batch_size=5, on_batch=crash_after_three)
    counts = _key_ids(both)
    assert counts[new_id] == 15
    assert counts[old.keyring.primary.key_id] == 25
    _all_readable(both, values)

    # Dropping the old key now must be refused: rows still use it.
    settings.master_key = SecretStr(new_key)
    with pytest.raises(ConfigError, match="dropped while rows still use it"):
        build_context(settings)

    report = rotate(both.database, both.keyring, batch_size=5)
    assert report.rewrapped == 25  # only what was left: nothing wrapped twice
    assert _key_ids(both) == {new_id: 40}
    assert report.retired_key_ids == [old.keyring.primary.key_id]
    _all_readable(both, values)

    only_new = build(settings)  # now the old key can go
    _all_readable(only_new, values)
    with only_new.database.session() as session:
        assert [c.key_id for c in session.scalars(select(MasterKeyCanary))] == [new_id]


def test_wrong_key_refused_at_start(settings, context):
    _seed_secrets(context, 1)
    settings.master_key = SecretStr(generate_master_key())
    with pytest.raises(ConfigError, match="wrong") as caught:
        build_context(settings)
    assert settings.master_key.get_secret_value().split(":")[1] not in caught.value.message


def test_wrong_key_refused_even_with_no_secrets_yet(settings, context):
    settings.master_key = SecretStr(generate_master_key())
    with pytest.raises(ConfigError, match="wrong"):
        build_context(settings)


def test_altered_canary_is_refused(settings, context):
    with context.database.session() as session:
        canary = session.scalar(select(MasterKeyCanary))
        canary.ciphertext = canary.ciphertext[:-1] + bytes([canary.ciphertext[-1] ^ 1])
    with pytest.raises(ConfigError, match="canary"):
        verify_keyring(context.database, context.keyring)


def test_dev_mode_generates_one_private_key(tmp_path, database_url):
    from actana.settings import Settings

    settings = Settings(
        _env_file=None, data_dir=tmp_path / "dev", database_url=database_url, dev_mode=True
    )
    first = load_keyring(settings)
    mode = stat.S_IMODE(settings.dev_key_file.stat().st_mode)
    assert mode == 0o600
    assert load_keyring(settings).primary.key_id == first.primary.key_id


def test_key_file_must_be_private(tmp_path, database_url):
    from actana.settings import Settings

    key_file = tmp_path / "keys"
    key_file.write_text(f"# newest first\n{generate_master_key()}\n")
    key_file.chmod(0o644)
    settings = Settings(_env_file=None, master_key_file=key_file, database_url=database_url)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_keyring(settings)
    key_file.chmod(0o600)
    assert len(load_keyring(settings).key_ids) == 1
