"""Inside the sandbox: a loopback listener that carries connections to the egress proxy.

The sandbox has no network of its own (container: `network none`; native: a bubblewrap net
namespace with only `lo`). Its one way out is the egress proxy the worker serves on
`egress.sock` in the run channel's directory, which checks every destination against the
environment's network policy. Programs expect an HTTP proxy at a TCP address, so this module
listens on 127.0.0.1:<ephemeral> inside the sandbox's own namespace and copies each connection
byte for byte to that socket: nothing is decided here, a sandbox process that bypasses this
listener reaches the same proxy and the same checks.

`start_forwarder` also gives the proxy variables (HTTP_PROXY, https_proxy, ALL_PROXY, ...) that
make curl, pip, git, urllib and requests use it; the runtime puts them in the environment every
child process inherits.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from actana.protocol.payloads import CHANNEL_EGRESS_SOCKET

_CHUNK = 64 * 1024
_ACCEPT_BACKLOG = 64


def egress_socket_path(channel: str) -> str | None:
    """Where the egress proxy's socket is, from `$ACTANA_CHANNEL` (`unix:/dir/channel.sock`):
    `/dir/egress.sock` when it exists, else None (a TCP channel, or a worker without one)."""
    if not channel.startswith("unix:"):
        return None
    path = Path(channel.removeprefix("unix:")).parent / CHANNEL_EGRESS_SOCKET
    return str(path) if path.exists() else None


def _relay(client: socket.socket, egress_path: str) -> None:
    """Copy bytes both ways between `client` and a new connection to the egress socket, until
    both sides are done; half-closes are passed on (a request may end with a shutdown)."""
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(egress_path)
    except OSError:
        upstream.close()
        client.close()
        return
    peers = {client: upstream, upstream: client}
    open_reads = {client, upstream}
    with selectors.DefaultSelector() as selector, client, upstream:
        for sock in open_reads:
            selector.register(sock, selectors.EVENT_READ)
        while open_reads:
            for key, _ in selector.select():
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = source.recv(_CHUNK)
                    if data:
                        peers[source].sendall(data)
                        continue
                    peers[source].shutdown(socket.SHUT_WR)
                except OSError:
                    return  # a reset on either side ends both
                selector.unregister(source)
                open_reads.discard(source)


@dataclass
class Forwarder:
    """A running loopback listener; `url` is the proxy URL, `env` the variables to export."""

    egress_path: str
    listener: socket.socket
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def env(self) -> dict[str, str]:
        """Proxy variables in both spellings (tools differ on which they read). NO_PROXY is
        empty: even `localhost` goes through the proxy, which decides."""
        names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
        env = {n: self.url for n in names} | {n.lower(): self.url for n in names}
        return env | {"NO_PROXY": "", "no_proxy": ""}

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=_relay, args=(client, self.egress_path), daemon=True).start()

    def close(self) -> None:
        """Stop accepting (connections being relayed end with the process)."""
        # shutdown() wakes the thread blocked in accept(); close() alone does not on Linux.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        if self._thread is not None:
            self._thread.join(timeout=1)


def start_forwarder(egress_socket: str) -> Forwarder:
    """Listen on 127.0.0.1:<ephemeral> and forward every connection to `egress_socket`.

    Raises:
        OSError: the listener cannot be opened (no loopback interface).
    """
    listener = socket.create_server(("127.0.0.1", 0), backlog=_ACCEPT_BACKLOG)
    forwarder = Forwarder(egress_socket, listener)
    forwarder._thread = threading.Thread(target=forwarder._serve, daemon=True, name="netproxy")
    forwarder._thread.start()
    return forwarder


def install_proxy_env(channel: str) -> Forwarder | None:
    """Start the forwarder for the run channel `channel` and export the proxy variables to
    every process started from now on (tools, the setup script); None when there is no egress
    socket (then nothing is exported, and nothing can get out either).

    Raises:
        OSError: the loopback listener cannot be opened.
    """
    egress = egress_socket_path(channel)
    if egress is None:
        return None
    forwarder = start_forwarder(egress)
    os.environ.update(forwarder.env)
    return forwarder
