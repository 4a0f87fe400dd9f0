"""Whether a sandbox's isolation lets the egress proxy enforce a policy, on the isolation texts
the backends really report."""

from __future__ import annotations

from pathlib import Path

import pytest

from actana.runs.egress import unenforced
from actana.runs.egress_policy import EgressPolicy
from actana.sandboxes.docker import ISOLATION as DOCKER_ISOLATION
from actana.sandboxes.registry import get_backend

NONE, ALLOW, OPEN = (EgressPolicy.build(m, ["example.com"]) for m in ("none", "allowlist", "open"))


def native_isolation(tmp_path: Path, bwrap: bool) -> str:
    backend = get_backend("native", root_dir=tmp_path, use_bwrap="never")
    return str(backend.isolation(bwrap=bwrap, uid=65534))  # type: ignore[attr-defined]


@pytest.mark.parametrize("policy", [NONE, ALLOW, OPEN])
def test_sandboxes_with_their_own_network_stack_are_enforced(tmp_path: Path, policy) -> None:
    assert unenforced(policy, DOCKER_ISOLATION) is None
    assert unenforced(policy, native_isolation(tmp_path, bwrap=True)) is None


def test_a_native_sandbox_on_the_hosts_network_refuses_an_allowlist(tmp_path: Path) -> None:
    isolation = native_isolation(tmp_path, bwrap=False)
    assert "net" not in isolation
    level, message = unenforced(ALLOW, isolation) or ("", "")
    assert level == "error"
    assert message.startswith("the network policy allowlist cannot be enforced: this sandbox")
    assert "use the container flavor" in message


@pytest.mark.parametrize("policy", [NONE, OPEN])
def test_none_and_open_go_on_with_a_warning(tmp_path: Path, policy) -> None:
    level, message = unenforced(policy, native_isolation(tmp_path, bwrap=False)) or ("", "")
    assert level == "warn"
    assert f"the network policy {policy.mode} is not enforced" in message
