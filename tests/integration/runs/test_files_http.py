"""Run files over HTTP: input uploads go through the asset rules (names, duplicates, count,
extension, size) before a run exists, a rejected upload leaves neither a run nor a folder, and
outputs from the sandbox get the same rules (too many files, symlinks)."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.runs.conftest import Runner, finished_steps

MAX_FILE_BYTES = 4096


@pytest.fixture
def settings(settings):
    settings.asset_max_file_bytes = MAX_FILE_BYTES  # small files are enough to break the cap
    return settings


def _multipart(files: list[tuple[str, bytes]], prompt: str = "go") -> tuple[bytes, str]:
    """A multipart/form-data body built by hand, file names sent as raw UTF-8 (as browsers
    do), so that what the server receives does not depend on a client library's escaping."""
    boundary = f"----actana-test-{secrets.token_hex(8)}"
    field = f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n{prompt}\r\n'
    parts = [field.encode()]
    for name, data in files:
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _post_run(runner: Runner, agent: str, files: list[tuple[str, bytes]]) -> httpx.Response:
    body, content_type = _multipart(files)
    t = runner.tenant
    return t.client.post(
        t.path(f"/agents/{agent}/runs"), content=body, headers={"Content-Type": content_type}
    )


def _run_total(runner: Runner) -> int:
    t = runner.tenant
    return int(t.client.get(t.path("/runs")).json()["total"])


def _run_folders(runner: Runner) -> set[Path]:
    folder = runner.context.settings.runs_dir / runner.tenant.id
    return set(folder.iterdir()) if folder.exists() else set()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_input_names_are_sanitised_deduplicated_and_seen_by_the_agent(runner):
    uploads = [
        ("../../etc/passwd.txt", b"not the passwd file\n"),
        ("résumé.pdf", b"%PDF-1.4 tiny\n"),
        ("a/b.csv", b"x,y\n1,2\n"),
        ("notes.txt", b"first\n"),
        ("notes.txt", b"second\n"),
        ("NOTES.txt", b"third\n"),
    ]
    stored_names = ["passwd.txt", "resume.pdf", "b.csv", "notes.txt", "notes-1.txt", "NOTES-2.txt"]
    script = [
        {"tool_calls": [{"name": "list_dir", "args": {"path": "assets"}}]},
        {"tool_calls": [{"name": "read_file", "args": {"path": "assets/NOTES-2.txt"}}]},
        {"text": "listed"},
    ]
    agent = runner.agent(script)
    response = _post_run(runner, agent, uploads)
    assert response.status_code == 202, response.text
    run = response.json()
    expected = [
        {"name": name, "size": len(data), "sha256": _sha(data)}
        for name, (_, data) in zip(stored_names, uploads, strict=True)
    ]
    assert run["input_files"] == expected

    final = runner.wait(run["id"])
    assert final["status"] == "succeeded", final
    listing, read = finished_steps(runner.stored(final))
    assert listing["status"] == "succeeded", listing
    entries = {e["name"]: e for e in listing["result"]["entries"]}
    assert sorted(entries) == sorted(stored_names), (
        "the agent sees the inputs by their stored names"
    )
    for item in expected:
        assert entries[item["name"]]["type"] == "file"
        assert entries[item["name"]]["size"] == item["size"]
    assert read["result"]["content"] == "third\n", "duplicates keep upload order"


@pytest.mark.parametrize(
    ("case", "status", "rule", "culprit"),
    [
        ("21 files", 413, "too_many_files", "f20.txt"),
        ("a disallowed extension", 422, "extension", "tool.exe"),
        ("an oversized file", 413, "file_too_large", "big.txt"),
    ],
)
def test_a_rejected_upload_creates_no_run_and_leaves_no_folder(runner, case, status, rule, culprit):
    uploads = {
        "21 files": [(f"f{i}.txt", b"x" * 100) for i in range(21)],
        "a disallowed extension": [("fine.txt", b"ok"), ("tool.exe", b"MZ"), ("late.txt", b"z")],
        "an oversized file": [("small.txt", b"ok"), ("big.txt", b"y" * (MAX_FILE_BYTES + 1))],
    }[case]
    agent = runner.agent([{"text": "never runs"}])
    before_total, before_folders = _run_total(runner), _run_folders(runner)

    response = _post_run(runner, agent, uploads)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == rule, error
    assert rule in error["message"], f"the message should name the rule: {error['message']}"
    assert f"'{culprit}'" in error["message"], f"the message should name the file: {error}"

    assert _run_total(runner) == before_total, f"{case}: a run was created anyway"
    assert _run_folders(runner) == before_folders, f"{case}: a run folder was left behind"
    leftovers = list(runner.context.settings.runs_dir.rglob("*.txt"))
    assert leftovers == [], f"{case}: files of the rejected upload remain: {leftovers}"


def _outputs_run(runner: Runner, command: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    script = [
        {"tool_calls": [{"name": "bash", "args": {"command": command}}]},
        {"text": "made outputs"},
    ]
    run = runner.start(runner.agent(script))
    final = runner.wait(run["id"])
    return final, runner.stored(final)


def test_too_many_output_files_are_refused_and_the_run_still_ends(runner):
    final, lines = _outputs_run(
        runner, "for i in $(seq 1 25); do echo $i > assets/out$i.txt; done; ls assets | wc -l"
    )
    assert final["status"] == "succeeded", final
    assert final["message"] == "made outputs"
    (step,) = finished_steps(lines)
    assert step["result"]["stdout"].strip() == "25"
    warns = [line["message"] for line in lines if line["type"] == "log" and line["level"] == "warn"]
    refused = [w for w in warns if "could not be uploaded" in w]
    assert len(refused) == 1, warns
    assert "too_many_files" in refused[0], refused
    (upload,) = [line for line in lines if line.get("phase") == "result_upload"]
    assert upload["outcome"] == "error", upload

    assert final["output_files"] == []
    t = runner.tenant
    assert t.client.get(t.path(f"/runs/{final['id']}/files")).json() == []
    result = json.loads((runner.run_dir(final) / "result.json").read_text())
    assert result["files"] == []
    assert not (runner.run_dir(final) / "outputs").exists(), "a refused upload stores nothing"


def test_a_symlink_in_assets_is_not_uploaded(runner):
    final, _ = _outputs_run(
        runner,
        "ln -s /etc/passwd assets/passwd.txt && echo real > assets/real.txt"
        " && ln -s real.txt assets/alias.txt && ls -l assets",
    )
    assert final["status"] == "succeeded", final
    real = {"name": "real.txt", "size": 5, "sha256": _sha(b"real\n")}
    assert final["output_files"] == [real]
    outputs = runner.run_dir(final) / "outputs"
    assert sorted(p.name for p in outputs.iterdir()) == ["real.txt"]
    t = runner.tenant
    for name in ("passwd.txt", "alias.txt"):
        missing = t.client.get(t.path(f"/runs/{final['id']}/files/{name}"))
        assert missing.status_code == 404, f"{name}: {missing.status_code}"
    passwd = Path("/etc/passwd").read_bytes()
    assert all(p.read_bytes() != passwd for p in outputs.iterdir())
