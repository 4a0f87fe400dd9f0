"""Network policy in real runs, on the native flavor and on the container flavor (Docker): what
the sandbox's programs and the web tools can reach under none / allowlist / open, that each
refusal answers 403 and is a warn `log` line of the run, each allowed connection an info line,
and that nothing gets out without the proxy."""

from __future__ import annotations

from typing import Any

from tests.integration.network.conftest import ORIGIN_BODY


def probe(urls: list[str], direct: list[tuple[str, int]] = ()) -> str:  # type: ignore[assignment]
    """Python run by the `python` tool: urllib honours the proxy variables the runtime set for
    every child process; `direct` are TCP connections tried without the proxy."""
    return f"""
import socket, urllib.error, urllib.request
for url in {urls!r}:
    try:
        with urllib.request.urlopen(url, timeout=15) as r:
            print("OK", url, r.status, r.read().decode(errors="replace")[:200].replace("\\n", " "))
    except urllib.error.HTTPError as e:
        print("HTTP", url, e.code, e.read().decode(errors="replace").strip())
    except Exception as e:
        print("ERR", url, type(e).__name__, e)
for host, port in {list(direct)!r}:
    try:
        socket.create_connection((host, port), timeout=3).close()
        print("DIRECT-OK", host, port)
    except OSError as e:
        print("DIRECT-FAIL", host, port, e)
"""


def run_steps(runner: Any, environment: str, calls: list[dict[str, Any]]) -> tuple[dict, list]:
    script = [{"tool_calls": [call]} for call in calls] + [{"text": "done"}]
    agent = runner.agent(script, environment_id=environment)
    final = runner.wait(runner.start(agent)["id"])
    return final, runner.stored(final)


def step_results(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ending line of every step, in order."""
    return [line for line in lines if line["type"] == "step" and line["status"] != "running"]


def output_of(step: dict[str, Any]) -> dict[str, str]:
    """url (or host) -> the probe's line for it."""
    assert step["status"] == "succeeded", step
    found: dict[str, str] = {}
    for line in step["result"]["stdout"].splitlines():
        kind, key, *_ = line.split(" ")
        found[key if kind != "DIRECT-FAIL" and kind != "DIRECT-OK" else f"direct:{key}"] = line
    return found


def egress_lines(lines: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (line["level"], line["message"])
        for line in lines
        if line["type"] == "log" and line["message"].startswith("egress")
    ]


def test_allowlist_lets_listed_names_through_and_refuses_the_rest(net_runner, origin):
    env = net_runner.environment("allowlist", ["localhost"])
    ok = f"http://localhost:{origin}/ok"
    refused = [
        f"http://127.0.0.1:{origin}/",  # raw IP, even of an exempt network
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://2130706433/",  # 127.0.0.1 as a number
        "http://0x7f.1/",  # and in hex
        "http://10.0.0.1/",
        "https://example.com/",  # not listed (CONNECT)
    ]
    direct = [("127.0.0.1", origin), ("10.0.0.1", 80), ("1.1.1.1", 80)]
    calls = [
        {"name": "python", "args": {"code": probe([ok, *refused], direct)}},
        {"name": "http_request", "args": {"url": ok}},
        {"name": "web_fetch", "args": {"url": f"http://localhost:{origin}/page"}},
        {"name": "http_request", "args": {"url": "http://169.254.169.254/latest/meta-data/"}},
        {"name": "web_fetch", "args": {"url": f"http://localhost:{origin}/to-metadata"}},
    ]  # fmt: skip
    final, lines = run_steps(net_runner, env, calls)
    assert final["status"] == "succeeded", final
    steps = step_results(lines)
    seen = output_of(steps[0])
    assert seen[ok].startswith(f"OK {ok} 200")
    assert ORIGIN_BODY in seen[ok]
    for url in refused:
        if url.startswith("https"):
            assert seen[url].startswith(f"ERR {url} URLError"), seen[url]
            assert "Tunnel connection failed: 403" in seen[url]
        else:
            assert seen[url].startswith(f"HTTP {url} 403 egress refused: GET "), seen[url]
    assert "raw IP addresses are refused" in seen[refused[0]]
    assert "IP address in disguise" in seen["http://2130706433/"]
    # Without the proxy nothing answers: the sandbox has no network, not even the host's
    # loopback where the origin listens.
    for host in ("127.0.0.1", "10.0.0.1", "1.1.1.1"):
        assert seen[f"direct:{host}"].startswith("DIRECT-FAIL"), seen[f"direct:{host}"]

    assert steps[1]["status"] == "succeeded", steps[1]
    assert steps[1]["result"]["status"] == 200
    assert ORIGIN_BODY in steps[1]["result"]["body"]
    assert steps[2]["status"] == "succeeded", steps[2]
    assert ORIGIN_BODY in steps[2]["result"]["text"]
    assert steps[3]["status"] == "failed"
    assert "raw IP addresses are refused" in steps[3]["error"]
    assert steps[4]["status"] == "failed"
    assert "redirected to http://169.254.169.254/latest/meta-data/" in steps[4]["error"]

    logged = egress_lines(lines)
    infos = [m for level, m in logged if level == "info"]
    warns = [m for level, m in logged if level == "warn"]
    assert f"egress: GET {ok} -> 127.0.0.1" in " ".join(infos)
    assert len(infos) == 4  # probe, http_request, web_fetch, the first hop of the redirect
    assert (
        f"egress refused: GET http://127.0.0.1:{origin}/: raw IP addresses are refused"
        in " | ".join(warns)
    )
    assert (
        "egress refused: CONNECT example.com:443: not in the environment's allowed domains" in warns
    )
    assert any(m.startswith("egress refused: GET http://169.254.169.254/") for m in warns)
    assert len(warns) == len(refused) + 2


def test_none_refuses_everything_and_says_so(net_runner, origin):
    env = net_runner.environment("none")
    ok = f"http://localhost:{origin}/ok"
    calls = [
        {"name": "python", "args": {"code": probe([ok])}},
        {"name": "http_request", "args": {"url": ok}},
    ]
    final, lines = run_steps(net_runner, env, calls)
    assert final["status"] == "succeeded", final
    steps = step_results(lines)
    line = output_of(steps[0])[ok]
    assert line.startswith(f"HTTP {ok} 403 egress refused: GET {ok}: the network policy is none")
    assert steps[1]["status"] == "failed"
    assert "network policy is none" in steps[1]["error"]
    assert egress_lines(lines) == [
        ("warn", f"egress refused: GET {ok}: the network policy is none (no egress at all)")
    ]


def test_open_allows_public_names_but_not_private_ranges(net_runner, origin):
    env = net_runner.environment("open")
    ok = f"http://localhost:{origin}/ok"
    calls = [
        {"name": "python", "args": {"code": probe([ok, "http://192.168.0.1/", "http://[::ffff:169.254.169.254]/"])}},
        {"name": "web_fetch", "args": {"url": ok}},
    ]  # fmt: skip
    final, lines = run_steps(net_runner, env, calls)
    assert final["status"] == "succeeded", final
    steps = step_results(lines)
    seen = output_of(steps[0])
    assert seen[ok].startswith(f"OK {ok} 200")
    assert "private address" in seen["http://192.168.0.1/"]
    assert "link-local address" in seen["http://[::ffff:169.254.169.254]/"]
    assert ORIGIN_BODY in steps[1]["result"]["text"]
    assert [level for level, _ in egress_lines(lines)].count("info") == 2
    assert [level for level, _ in egress_lines(lines)].count("warn") == 2
