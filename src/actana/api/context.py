"""What the API and the CLI share once start-up has built it."""

from __future__ import annotations

from dataclasses import dataclass

from actana.db.engine import Database
from actana.security.keyring import Keyring
from actana.security.secret_store import SecretStore
from actana.settings import Settings


@dataclass
class AppContext:
    """Settings plus the long-lived handles built from them, passed down instead of globals."""

    settings: Settings
    database: Database
    keyring: Keyring

    @property
    def secrets(self) -> SecretStore:
        return SecretStore(self.keyring)
