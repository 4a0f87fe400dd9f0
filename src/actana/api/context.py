"""What the API and the CLI share once start-up has built it."""

from __future__ import annotations

from dataclasses import dataclass, field

from actana.db.engine import Database
from actana.runs.backends import SandboxBackends
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
    _sandboxes: SandboxBackends | None = field(default=None, repr=False)

    @property
    def sandboxes(self) -> SandboxBackends:
        """The sandbox backends (native and docker), built once per process."""
        if self._sandboxes is None:
            self._sandboxes = SandboxBackends(self.settings)
        return self._sandboxes

    @property
    def native_backend(self) -> SandboxBackend:
        """The native sandbox backend (its host probed once per process)."""
        return self.sandboxes.native

    @property
    def docker_backend(self) -> SandboxBackend:
        return self.sandboxes.container

    @property
    def secrets(self) -> SecretStore:
        return SecretStore(self.keyring)

    def wake_workers(self) -> None:
        """Tell this process's idle workers that a run was queued."""
        self.live.wake_workers()

    def notify_cancel(self, run_id: str) -> None:
        """Tell this process's worker of a run that its cancel was requested."""
        self.live.notify_cancel(run_id)
