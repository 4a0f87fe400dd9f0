"""Taking the one-time tokens out of the environment, and closing the ways back to them.

The sandbox backend hands the three OTPs over in the runtime's environment. Deleting them from
`os.environ` keeps them out of every child's environment, but the kernel still serves the
*initial* environment block from `/proc/<pid>/environ` (and all of memory from
`/proc/<pid>/mem`) to any process of the same uid: a tool, or a child it left in the background.
Two things close that:

- `prctl(PR_SET_DUMPABLE, 0)`: the kernel then refuses same-uid processes access to our
  `/proc/<pid>/environ`, `fd/` and `mem` (only CAP_SYS_PTRACE holders still pass);
- overwriting the token values in the initial environment block itself, so that even a
  privileged reader (root in the sandbox has CAP_SYS_PTRACE) sees only NUL bytes there.

`ctypes` is the only way to reach `prctl` and that memory from the standard library. Every step
is best effort: on a platform without them the runtime still runs.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from functools import cache

from actana.protocol.payloads import ENV_OTP_RUN, ENV_OTP_SETUP, ENV_OTP_UPLOAD, TOKEN_ENV_VARS

# <linux/prctl.h>
_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36


@dataclass
class Tokens:
    """The run's one-time tokens; each is blanked once redeemed, to hold it no longer than needed.

    Attributes:
        setup: OTP_SETUP, for GET /sandbox/v1/env.
        run: OTP_RUN, for GET /sandbox/v1/config.
        upload: OTP_UPLOAD, for POST /sandbox/v1/results.
    """

    setup: str
    run: str
    upload: str

    def missing(self) -> list[str]:
        """Names of the environment variables that did not hold a token."""
        names = zip(TOKEN_ENV_VARS, (self.setup, self.run, self.upload), strict=True)
        return [name for name, value in names if not value]


@cache
def _libc() -> ctypes.CDLL | None:
    try:
        # dlopen(NULL): the symbols of the running program, libc's prctl and environ among them.
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _scrub_initial_environ(libc: ctypes.CDLL, names: tuple[str, ...]) -> None:
    """Overwrite the values of `names` with NULs where `environ` points (the initial block)."""
    try:
        environ = ctypes.POINTER(ctypes.c_void_p).in_dll(libc, "environ")
    except ValueError:  # no such symbol on this libc
        return
    prefixes = [name.encode() + b"=" for name in names]
    index = 0
    while (address := environ[index]) is not None:
        entry = ctypes.string_at(address)
        for prefix in prefixes:
            if entry.startswith(prefix) and len(entry) > len(prefix):
                ctypes.memset(address + len(prefix), 0, len(entry) - len(prefix))
        index += 1


def take_tokens() -> Tokens:
    """Read the three OTPs, wipe them from the process's environment and memory-visible block.

    Must run before anything else starts a thread or a child: `environ` is read and written
    without a lock, and a child started earlier would inherit the tokens.

    Returns:
        The tokens (empty strings for the ones that were not set).
    """
    tokens = Tokens(
        setup=os.environ.get(ENV_OTP_SETUP, ""),
        run=os.environ.get(ENV_OTP_RUN, ""),
        upload=os.environ.get(ENV_OTP_UPLOAD, ""),
    )
    libc = _libc()
    if libc is not None:
        # Before the del below: unsetenv drops the pointer to the string, not the string.
        _scrub_initial_environ(libc, TOKEN_ENV_VARS)
    for name in TOKEN_ENV_VARS:
        os.environ.pop(name, None)
    return tokens


def _prctl(option: int, value: int) -> int:
    libc = _libc()
    if libc is None or not hasattr(libc, "prctl"):
        return -1
    result = libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0)
    return int(result)


def forbid_inspection() -> bool:
    """`prctl(PR_SET_DUMPABLE, 0)`: same-uid processes can no longer read our /proc entries.

    Returns:
        Whether the kernel accepted it (False off Linux).
    """
    return _prctl(_PR_SET_DUMPABLE, 0) == 0


def is_dumpable() -> bool:
    """`prctl(PR_GET_DUMPABLE)`: whether same-uid processes may still inspect us."""
    return _prctl(_PR_GET_DUMPABLE, 0) != 0


def set_child_subreaper(enabled: bool) -> bool:
    """Become (or stop being) the reaper of orphaned descendants.

    A tool's background children are orphaned when the tool's shell dies; as subreaper the
    runtime inherits and reaps them itself, so that once a tool returns, no process of its
    process group is left, not even as a zombie waiting for init.

    Args:
        enabled: True to become the subreaper, False to stop.

    Returns:
        Whether the kernel accepted it (False off Linux).
    """
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1 if enabled else 0) == 0
