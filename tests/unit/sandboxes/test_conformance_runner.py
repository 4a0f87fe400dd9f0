"""The battery's runner and registry (the checks themselves run in tests/integration)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from actana.sandboxes import SandboxBackend, conformance
from actana.sandboxes.conformance import ConformanceContext, ConformanceFailure, run_battery


async def passes(ctx: ConformanceContext) -> None:
    pass


async def fails(ctx: ConformanceContext) -> None:
    raise ConformanceFailure("saw something else")


async def crashes(ctx: ConformanceContext) -> None:
    raise OSError("backend fell over")


def ctx() -> ConformanceContext:
    def no_backend() -> SandboxBackend:
        raise AssertionError("the fake checks need no backend")

    return ConformanceContext(make_backend=no_backend, python="python3", scratch=Path("/tmp"))


def test_every_required_check_is_registered() -> None:
    required = {
        "clean_environment", "working_directory", "isolation_between_runs",
        "root_only_file_unreadable", "runs_unprivileged", "rlimits_applied", "no_network",
        "channel_socket", "exit_codes", "stdout_streams_incrementally", "wait_timeout_then_kill",
        "kill_takes_all_children", "output_cap", "remove_deletes_everything",
        "list_own_finds_leftovers",
    }  # fmt: skip
    assert required == set(conformance.CHECKS)


def test_run_battery_collects_and_judges_known_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    checks = {"a": passes, "b": fails, "c": crashes, "d": passes, "e": fails}
    monkeypatch.setattr(conformance, "CHECKS", checks)
    results = {r.name: r for r in anyio.run(run_battery, ctx(), {"d", "e"})}
    assert [results[n].passed for n in "abcde"] == [True, False, False, True, False]
    assert [results[n].ok for n in "abcde"] == [True, False, False, False, True]
    assert results["b"].error == "saw something else"
    assert results["c"].error == "OSError: backend fell over"


def test_run_battery_rejects_unknown_known_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conformance, "CHECKS", {"a": passes})
    with pytest.raises(KeyError, match="typo"):
        anyio.run(run_battery, ctx(), {"typo"})
