"""The conformance battery: what every sandbox backend must do, checked with real sandboxes.

Each check is an async function taking a `ConformanceContext`; it starts small sandboxes
(`python -c`, `/bin/sh -c`) and raises `ConformanceFailure` with what it saw when the backend
falls short. The checks live in `conformance_isolation` (what a sandbox can see and reach) and
`conformance_lifecycle` (streaming, exit codes, timeouts, kill, caps, cleanup).

A test module parametrises `CHECKS` over its backends, each with a `known_failures` set whose
every entry is explained (tests/integration/sandboxes/test_conformance.py)::

    ctx = ConformanceContext(
        make_backend=lambda: get_backend("native", root_dir=root),
        python=sys.executable,
        scratch=scratch_dir,
    )
    await run_check("kill_takes_all_children", ctx)

`run_battery` runs them all and reports, for an operator's self-check of a host.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from actana.sandboxes import conformance_isolation, conformance_lifecycle
from actana.sandboxes.conformance_kit import (
    REGISTRY,
    CheckFn,
    ConformanceContext,
    ConformanceFailure,
)

# Importing the check modules registered them; name them so the import is visibly needed.
CHECK_MODULES = (conformance_isolation, conformance_lifecycle)
CHECKS: dict[str, CheckFn] = dict(REGISTRY)
"""Every check by name: isolation checks first, then lifecycle checks."""


async def run_check(name: str, ctx: ConformanceContext) -> None:
    """Run one check by name.

    Raises:
        KeyError: no check of that name.
        ConformanceFailure: the backend failed it.
    """
    await CHECKS[name](ctx)


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    expected_to_fail: bool
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        """As expected: a pass, or a failure listed in known_failures (and not a pass of one)."""
        return self.passed != self.expected_to_fail


async def run_battery(
    ctx: ConformanceContext, known_failures: Iterable[str] = ()
) -> list[CheckResult]:
    """Run every check; failures are collected, not raised.

    A check in `known_failures` that passes is reported as not ok: the list must stay true.

    Raises:
        KeyError: `known_failures` names a check that does not exist.
    """
    known = set(known_failures)
    if unknown := known - set(CHECKS):
        raise KeyError(f"unknown checks in known_failures: {sorted(unknown)}")
    results = []
    for name, fn in CHECKS.items():
        started = time.monotonic()
        error = None
        try:
            await fn(ctx)
        except ConformanceFailure as e:
            error = str(e)
        except Exception as e:
            # Any other exception is a failure of the backend too (e.g. SandboxUnavailableError).
            error = f"{type(e).__name__}: {e}"
        seconds = time.monotonic() - started
        results.append(CheckResult(name, error is None, name in known, seconds, error))
    return results


__all__ = [
    "CHECKS",
    "CheckResult",
    "ConformanceContext",
    "ConformanceFailure",
    "run_battery",
    "run_check",
]
