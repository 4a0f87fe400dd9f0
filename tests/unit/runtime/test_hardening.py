"""Taking the tokens: gone from os.environ, from /proc/self/environ, and the process hidden."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="/proc and prctl are Linux's")

SCRIPT = """
import json, os, subprocess
from actana.runtime.hardening import forbid_inspection, is_dumpable, take_tokens
before = is_dumpable()
tokens = take_tokens()
with open("/proc/self/environ", "rb") as f:
    initial = f.read().decode("latin-1")
child = subprocess.run(["env"], capture_output=True, text=True).stdout
print(json.dumps({
    "tokens": [tokens.setup, tokens.run, tokens.upload],
    "missing": tokens.missing(),
    "in_os_environ": [n for n in os.environ if n.startswith("OTP_")],
    "initial_block": initial,
    "child_env": child,
    "dumpable_before": before,
    "forbidden": forbid_inspection(),
    "dumpable_after": is_dumpable(),
}))
"""


def run_script(env: dict[str, str]) -> dict[str, object]:
    import json

    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={"PATH": os.environ["PATH"], "KEEP": "me", **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_tokens_are_taken_out_of_every_copy_of_the_environment() -> None:
    seen = run_script(
        {"OTP_SETUP": "s3cr3t-setup", "OTP_RUN": "s3cr3t-run", "OTP_UPLOAD": "s3cr3t-up"}
    )
    assert seen["tokens"] == ["s3cr3t-setup", "s3cr3t-run", "s3cr3t-up"]
    assert seen["missing"] == []
    assert seen["in_os_environ"] == []
    for where in ("initial_block", "child_env"):
        text = str(seen[where])
        assert "s3cr3t" not in text, where
    assert "KEEP=me" in str(seen["initial_block"])  # the rest of the block is left alone


def test_the_runtime_becomes_uninspectable() -> None:
    seen = run_script({})
    assert seen["missing"] == ["OTP_SETUP", "OTP_RUN", "OTP_UPLOAD"]
    assert (seen["dumpable_before"], seen["forbidden"], seen["dumpable_after"]) == (
        True,
        True,
        False,
    )
