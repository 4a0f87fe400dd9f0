"""What the API and the CLI share once start-up has built it."""

from __future__ import annotations

from dataclasses import dataclass, field

from actana.db.engine import Database
from actana.runs.backends import native_backend
from actana.runs.live import LiveRuns
from actana.sandboxes import SandboxBackend
from actana.security.keyring import Keyring
from actana.security.secret_store import SecretStore
from actana.settings import Settings


@dataclass
class AppContext:
    """Settings plus the long-lived handles built from them, passed down instead of globals."""

    settings: Settings
    database: Database
    keyring: Keyring
    live: LiveRuns = field(default_factory=LiveRuns)
    _native: SandboxBackend | None = field(default=None, repr=False)

    @property
    def native_backend(self) -> SandboxBackend:
        """The native sandbox backend, built (and its host probed) once per process."""
        if self._native is None:
            self._native = native_backend(self.settings)
        return self._native

    @property
    def secrets(self) -> SecretStore:
        return SecretStore(self.keyring)

    def wake_workers(self) -> None:
        """Tell this process's idle workers that a run was queued."""
        self.live.wake_workers()

    def notify_cancel(self, run_id: str) -> None:
        """Tell this process's worker of a run that its cancel was requested."""
        self.live.notify_cancel(run_id)
