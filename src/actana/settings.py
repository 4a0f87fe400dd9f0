"""Deployment settings: one object, read from `ACTANA_*` environment variables (or `.env`).

Build it once at start-up (`Settings()`) and pass it down; library code never reads the
environment itself, which keeps tests free to run many differently configured apps side by side.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from actana import __version__


class Settings(BaseSettings):
    """Everything a deployment can configure."""

    model_config = SettingsConfigDict(
        env_prefix="ACTANA_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Path(".actana")
    """Where the embedded database, the dev master key and run files live."""

    database_url: str | None = None
    """SQLAlchemy URL. Default: a SQLite file in the data dir. Postgres:
    `postgresql+psycopg://user:password@host/dbname`."""

    master_key: SecretStr | None = None
    """One or more master keys (comma-separated, newest first). The newest encrypts; all decrypt.
    Generate one with `actana keys generate`."""

    master_key_file: Path | None = None
    """A file holding the master keys, one per line, newest first. Must not be readable by group
    or others."""

    dev_mode: bool = False
    """Development mode: a master key is generated once into the data dir when none is given."""

    host: str = "127.0.0.1"
    port: int = Field(default=8321, ge=0, le=65535)
    log_level: str = "info"

    max_execution_time_sec: int = Field(
        default=30,
        ge=1,
        le=24 * 3600,
        validation_alias=AliasChoices("ACTANA_MAX_EXECUTION_TIME_SEC", "MAX_EXECUTION_TIME_SEC"),
    )
    """Upper bound on a run's execution phase; an agent's `timeout_sec` may only lower it."""

    skill_bundle_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    """Largest accepted skill bundle upload (compressed) and its largest unpacked total."""

    skill_bundle_max_entries: int = Field(default=1000, ge=1)

    keys_rotate_batch_size: int = Field(default=200, ge=1)

    workers: int = Field(default=2, ge=0, le=64)
    """Workers `actana server` runs in-process (0: the server only queues; run `actana worker`)."""

    max_concurrent_runs: int = Field(default=4, ge=1)
    """Sandboxes alive at once across all workspaces (queue_acquisition waits for a slot)."""

    max_concurrent_runs_per_workspace: int = Field(default=2, ge=1)

    queue_wait_max_sec: int = Field(default=600, ge=1)
    """How long a claimed run may wait for a sandbox slot before it fails."""

    worker_stale_after_sec: int = Field(default=30, ge=2)
    """A worker silent this long is dead: its runs are failed and its sandboxes removed."""

    max_event_line_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Longest NDJSON line accepted from a sandbox; longer ones are dropped with a warning."""

    max_model_calls_per_run: int = Field(default=100, ge=1)
    """Model calls a run may make, unless its agent sets `max_model_calls`."""

    max_input_tokens_per_run: int = Field(default=1_000_000, ge=1)
    """Input (prompt) tokens a run may use over all its model calls, unless its agent sets
    `max_input_tokens`. Every call resends the conversation, so this grows fastest."""

    max_output_tokens_per_run: int = Field(default=100_000, ge=1)
    """Output tokens a run may use, unless its agent sets `max_output_tokens`."""

    model_retry_attempts: int = Field(default=4, ge=1, le=20)
    """Upstream attempts per model call (1: no retry). Only 429, 5xx and dropped connections
    are retried, only before anything was streamed, and only within the run's deadline."""

    model_retry_base_sec: float = Field(default=0.5, ge=0)
    """First retry waits up to this long; each further one up to twice as long (full jitter)."""

    model_retry_max_sec: float = Field(default=8.0, ge=0)
    """Longest wait between two attempts, unless the upstream's Retry-After asks for more."""

    model_endpoint_test_timeout_sec: float = Field(default=20.0, gt=0, le=300)
    """How long `POST model-endpoints/{id}/test` waits for the upstream's answer."""

    sandbox_fallback_native: bool = False
    """Let runs of the `container` flavor fall back to the native sandbox when no container
    backend is reachable (on in the demo; off in production, where such runs fail instead)."""

    runtime_command: list[str] | None = None
    """Argv that starts the in-sandbox runtime (default: this interpreter, `-I -m actana.runtime`).
    Only for testing alternative runtimes."""

    native_bwrap: str = Field(default="auto", pattern="^(auto|always|never)$")
    """Whether the native sandbox runs inside bubblewrap namespaces."""

    sandbox_uid: int = Field(default=65534, ge=1)
    """When the server runs as root and no uid pool is set, sandboxes run as this uid (and gid)."""

    sandbox_uid_pool_start: int | None = Field(default=200_000, ge=1)
    """When the server runs as root, each live sandbox gets its own uid from
    [start, start + size), so runs cannot see each other even without bubblewrap. None: share
    `sandbox_uid`."""

    sandbox_uid_pool_size: int = Field(default=256, ge=1)

    docker_url: str | None = None
    """Docker daemon address (e.g. unix:///var/run/docker.sock); None: DOCKER_HOST or the
    default socket."""

    sandbox_image_name: str = "actana-sandbox"
    sandbox_image_tag: str = __version__
    """The container flavor's image is `name:tag`; `actana sandbox build-image` builds it."""

    sandbox_image_packages: list[str] = Field(default_factory=lambda: ["mcp>=1.25,<2"])
    """Python packages (pip requirement specifiers) installed into the sandbox image, e.g. the
    mcp SDK for stdio MCP servers. Installed at build time with this host's pip for the image's
    Python (same minor version); part of the image's fingerprint, so a change rebuilds it. As an
    environment variable: a JSON list."""

    sandbox_base_image: str = "python:3.11-slim-bookworm"
    """Base of the sandbox image when it can be pulled; otherwise one is built from Debian's
    packages with debootstrap (`sandbox_debian_mirror`, `sandbox_debian_suite`)."""

    sandbox_debian_mirror: str = "http://deb.debian.org/debian"
    sandbox_debian_suite: str = "bookworm"

    container_memory_mb: int = Field(default=1024, ge=32)
    """Memory cgroup limit of one container sandbox (also its RLIMIT_AS)."""

    container_pids: int = Field(default=256, ge=8)
    """Most processes (and threads) one container sandbox may have at once."""

    container_cpus: float = Field(default=1.0, gt=0)
    container_workspace_mb: int = Field(default=512, ge=1)
    """Size of the tmpfs that holds a container sandbox's workspace."""

    container_tmp_mb: int = Field(default=64, ge=1)
    container_uid_pool_start: int = Field(default=300_000, ge=1000)
    """Each container sandbox runs as its own uid from [start, start + size)."""

    container_uid_pool_size: int = Field(default=50_000, ge=16)
    container_warm_pool: int = Field(default=0, ge=0, le=64)
    """Containers kept created and started, not yet given to any run (0: none)."""

    tool_timeout_sec: int = Field(default=60, ge=1)
    tool_output_bytes: int = Field(default=64 * 1024, ge=1024)
    asset_max_files: int = Field(default=20, ge=1)
    asset_max_file_bytes: int = Field(default=25 * 1024 * 1024, ge=1)
    asset_max_total_bytes: int = Field(default=50 * 1024 * 1024, ge=1)

    egress_allowed_networks: list[str] = Field(default_factory=list)
    """Networks the egress proxy may reach although they are private, loopback or link-local
    (e.g. `["10.20.0.0/16"]` for an internal package mirror). Default: none. JSON list in the
    environment: `ACTANA_EGRESS_ALLOWED_NETWORKS='["127.0.0.0/8"]'`. The domain allowlist still
    applies; only the private-range rule is lifted."""

    egress_connect_timeout_sec: float = Field(default=10.0, gt=0, le=300)
    """Name resolution plus TCP connect to a destination, per proxied connection."""

    egress_idle_timeout_sec: float = Field(default=60.0, gt=0, le=3600)
    """A proxied connection with no byte in either direction for this long is closed."""

    egress_max_connections: int = Field(default=32, ge=1, le=4096)
    """Open proxied connections per run; more are answered 429."""

    egress_max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    """Largest request head (request line plus headers) the egress proxy reads."""

    egress_max_log_lines: int = Field(default=200, ge=1)
    """Egress `log` lines (one per connection) written into a run's stream; past this they are
    counted and reported in one line at the run's end."""

    web_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    """How long a web UI sign-in lasts (absolute, from sign-in); revoking its API key ends it
    sooner."""

    web_trust_forwarded_proto: bool = False
    """Believe `X-Forwarded-Proto` when deciding whether the web session cookie is `Secure`
    (turn on behind a TLS-terminating proxy that sets it; off, a client could forge it)."""

    @field_validator("egress_allowed_networks")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"egress_allowed_networks: {entry!r} is not a network like 10.0.0.0/8"
                ) from None
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL to connect to, defaulting to SQLite inside the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'actana.db').resolve()}"

    @property
    def runs_dir(self) -> Path:
        """Each run's own folder lives under here: runs/<workspace>/<run>/."""
        return self.data_dir / "runs"

    @property
    def sandboxes_dir(self) -> Path:
        """Native sandboxes' workspaces and per-run channel sockets."""
        return self.data_dir / "sandboxes"

    @property
    def containers_dir(self) -> Path:
        """Container sandboxes' staging folders (input files until the handover)."""
        return self.data_dir / "containers"

    @property
    def sandbox_image(self) -> str:
        return f"{self.sandbox_image_name}:{self.sandbox_image_tag}"

    @property
    def dev_key_file(self) -> Path:
        """Where dev mode keeps its generated master key."""
        return self.data_dir / "master.key"
