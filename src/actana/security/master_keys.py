"""Where the master keys come from, and the start-up check that they are the right ones."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from actana.db.engine import Database
from actana.db.models import MasterKeyCanary, Secret
from actana.exceptions import ConfigError, KeyringError
from actana.security.audit import record_audit
from actana.security.keyring import (
    Keyring,
    MasterKey,
    SecretBinding,
    generate_master_key,
    parse_master_key,
)
from actana.settings import Settings

log = logging.getLogger(__name__)

CANARY_PLAINTEXT = b"actana master key canary v1"
_NO_KEY_HELP = (
    "no master key is configured. Set ACTANA_MASTER_KEY (generate one with "
    "`actana keys generate`) or ACTANA_MASTER_KEY_FILE; for a throwaway local setup run with "
    "ACTANA_DEV_MODE=1, which keeps a generated key in the data dir."
)


def canary_binding(key_id: str) -> SecretBinding:
    return SecretBinding("-", "master_key_canary", key_id, "canary", key_id)


def _read_key_file(path: Path) -> list[MasterKey]:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"the master key file {path} does not exist") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the master key file {path} is readable by group or others "
            f"(mode {stat.S_IMODE(mode):o}); run `chmod 600 {path}`"
        )
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    keys = [line for line in lines if line and not line.startswith("#")]
    if not keys:
        raise ConfigError(f"the master key file {path} holds no key")
    return [parse_master_key(text, source=f"{path} (key {i + 1})") for i, text in enumerate(keys)]


def _dev_key(path: Path) -> list[MasterKey]:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two processes starting together must not each write a different key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(generate_master_key() + "\n")
            log.warning("dev mode: generated a master key at %s (keep it with the data)", path)
    return _read_key_file(path)


def load_keyring(settings: Settings) -> Keyring:
    """Build the keyring from the settings, failing with a message that says what to fix."""
    if settings.master_key is not None:
        texts = [t for t in settings.master_key.get_secret_value().split(",") if t.strip()]
        if not texts:
            raise ConfigError("ACTANA_MASTER_KEY is empty. " + _NO_KEY_HELP)
        keys = [
            parse_master_key(text, source=f"ACTANA_MASTER_KEY (key {i + 1})")
            for i, text in enumerate(texts)
        ]
    elif settings.master_key_file is not None:
        keys = _read_key_file(settings.master_key_file)
    elif settings.dev_mode:
        keys = _dev_key(settings.dev_key_file)
    else:
        raise ConfigError(_NO_KEY_HELP)
    return Keyring(keys)


def key_ids_in_use(database: Database) -> dict[str, int]:
    """How many secrets each master key id still protects."""
    with database.session() as session:
        rows = session.execute(select(Secret.key_id, func.count()).group_by(Secret.key_id))
        return {key_id: count for key_id, count in rows}


def verify_keyring(database: Database, keyring: Keyring) -> None:
    """Refuse a keyring that cannot read what the database holds.

    Every stored canary whose key is configured must decrypt; every key id still named by a
    canary or a secret must be configured. A fresh database gets a canary for the newest key.

    Raises:
        ConfigError: with what to do about it.
    """
    with database.session() as session:
        canaries = list(session.scalars(select(MasterKeyCanary)))
    for canary in canaries:
        if canary.key_id not in keyring.key_ids:
            continue
        try:
            plaintext = keyring.decrypt(canary.ciphertext, canary_binding(canary.key_id))
        except KeyringError:
            plaintext = b""
        if plaintext != CANARY_PLAINTEXT:
            raise ConfigError(
                f"master key {canary.key_id} does not decrypt its stored canary: the canary was "
                "altered; restore the database from a backup"
            )
    required = {c.key_id for c in canaries} | set(key_ids_in_use(database))
    missing = sorted(required - set(keyring.key_ids))
    if missing:
        raise ConfigError(
            f"the database holds secrets under master key id(s) {', '.join(missing)}, which "
            f"the configured key(s) ({', '.join(keyring.key_ids)}) are not. The configured key "
            "is wrong, or an old key was dropped while rows still use it: configure the key(s) "
            "used before (newest first, comma-separated), and run `actana keys rotate` before "
            "dropping an old one."
        )
    if keyring.primary.key_id not in {c.key_id for c in canaries}:
        _store_canary(database, keyring)


def _store_canary(database: Database, keyring: Keyring) -> None:
    key_id = keyring.primary.key_id
    blob = keyring.encrypt(CANARY_PLAINTEXT, canary_binding(key_id))
    try:
        with database.session() as session:
            session.add(MasterKeyCanary(key_id=key_id, ciphertext=blob))
            record_audit(session, "master_key.added", actor="system", target=key_id)
    except IntegrityError:
        # Another process stored it first; its canary is as good as ours.
        log.debug("canary for %s was stored concurrently", key_id)
