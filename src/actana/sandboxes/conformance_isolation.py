"""Conformance checks: what a sandbox sees and can reach (environment, files, other runs,
privileges, limits, network, the run channel)."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path

import anyio

from actana.protocol.payloads import ENV_CHANNEL, ENV_RUN_ID
from actana.sandboxes.base import SandboxLimits
from actana.sandboxes.conformance_kit import (
    ConformanceContext,
    check,
    expect,
    nonce,
    run_json,
    run_to_end,
)

CANARY = "ACTANA_CONFORMANCE_CANARY"
BACKEND_VARS = {"PATH", "LANG", "HOME", "PWD", "WORKSPACE_DIR"}
DUMP_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


@check
async def check_clean_environment(ctx: ConformanceContext) -> None:
    """Exactly the spec's variables plus the backend's few; nothing of the server's."""
    token = nonce()
    os.environ[CANARY] = token  # in the server's environment while the sandbox starts
    try:
        spec = ctx.spec(ctx.py(DUMP_ENV), env={"SPEC_VAR": token})
        spec.env[ENV_RUN_ID] = spec.run_id
        _, env = await run_json(ctx, spec)
    finally:
        del os.environ[CANARY]
    expect(CANARY not in env, "the server's environment leaked into the sandbox")
    expect(env.get("SPEC_VAR") == token, f"spec variable missing: {env}")
    extra = set(env) - BACKEND_VARS - set(spec.env)
    expect(not extra, f"unexpected variables: {sorted(extra)}")
    expect(set(env) >= BACKEND_VARS, f"missing: {sorted(BACKEND_VARS - set(env))}")
    expect(env["HOME"] == env["WORKSPACE_DIR"] == env["PWD"], f"HOME/PWD/WORKSPACE_DIR: {env}")


@check
async def check_working_directory(ctx: ConformanceContext) -> None:
    """cwd is $WORKSPACE_DIR; input files the trusted side wrote into `sandbox.workspace` before
    start() are the agent's to read, change and write next to, and what the agent writes can be
    read back by the trusted side while the sandbox lives."""
    token = nonce()
    code = (
        "import json, os, time; os.makedirs('out/deep'); open('out/deep/made.txt', 'w').write("
        f"'{token}'); seen = {{'cwd': os.getcwd(), 'ws': os.environ['WORKSPACE_DIR'],"
        " 'input': open('assets/input.txt').read()}; open('assets/input.txt', 'a').write('+');"
        " open('assets/output.txt', 'w').write('out'); print(json.dumps(seen), flush=True)\n"
        "deadline = time.time() + 20\n"
        "while not os.path.exists('go') and time.time() < deadline: time.sleep(0.01)"
    )
    async with ctx.sandbox(ctx.spec(ctx.py(code))) as sandbox:
        (sandbox.workspace / "assets").mkdir()  # as the trusted side does, before start()
        (sandbox.workspace / "assets" / "input.txt").write_text(f"in-{token}")
        await sandbox.start()
        chunks = sandbox.stdout_chunks()
        with anyio.fail_after(20):
            first = await anext(chunks)
        seen = json.loads(first)
        made = await sandbox.read_file("out/deep/made.txt")
        expect(made == token.encode(), "a file written inside cannot be read back")
        changed = await sandbox.read_file("assets/input.txt")
        expect(changed == f"in-{token}+".encode(), f"input not writable: {changed!r}")
        output = await sandbox.read_file("assets/output.txt")
        expect(output == b"out", f"output not readable from the trusted side: {output!r}")
        await sandbox.write_file("go", b"")
        rc = await sandbox.wait(timeout=20)
        await chunks.aclose()
        expect(rc == 0, f"exit {rc}: {await sandbox.stderr_tail()!r}")
    expect(os.path.realpath(seen["cwd"]) == os.path.realpath(seen["ws"]), f"cwd: {seen}")
    expect(seen["input"] == f"in-{token}", "the input file written before start() is not there")


@check
async def check_isolation_between_runs(ctx: ConformanceContext) -> None:
    """Run B can neither read run A's workspace nor A's environment (its tokens) via /proc."""
    secret = nonce()
    holder = (
        f"import sys, time; open('secret.txt', 'w').write('{secret}'); print('ready', flush=True);"
        " time.sleep(60)"
    )
    async with ctx.sandbox(ctx.spec(ctx.py(holder), env={"TOKEN_A": secret})) as a:
        await a.start()
        chunks = a.stdout_chunks()
        with anyio.fail_after(20):
            first = await anext(chunks)
        expect(first.startswith(b"ready"), f"run A did not start: {first!r}")
        probe = f"""
import json, os
target = {str(a.workspace)!r}
def attempt(f):
    try: f(); return True
    except OSError: return False
def environ_leak():
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            if b'{secret}' in open(f'/proc/{{pid}}/environ', 'rb').read(): return True
        except OSError: pass
    return False
print(json.dumps({{'read': attempt(lambda: open(target + '/secret.txt').read()),
    'list': attempt(lambda: os.listdir(target)), 'environ': environ_leak()}}))
"""
        _, seen = await run_json(ctx, ctx.spec(ctx.py(probe)))
        await chunks.aclose()
    expect(not any(seen.values()), f"run B reached run A: {seen}")


@check
async def check_root_only_file_unreadable(ctx: ConformanceContext) -> None:
    """A 0600 file of the server's user (like the master key) cannot be read: neither at a
    host path the sandbox can name, nor inside its own workspace (put there while it runs:
    what is in the workspace at start() is handed to the sandbox user)."""
    fd, outside = tempfile.mkstemp(prefix="master-", suffix=".key", dir=ctx.scratch)
    os.write(fd, b"key")
    os.close(fd)
    code = f"""
import json, os, time
print('waiting', flush=True)
deadline = time.time() + 20
while not os.path.exists('go') and time.time() < deadline: time.sleep(0.01)
def readable(p):
    try: open(p, 'rb').read(); return True
    except OSError: return False
print(json.dumps({{'outside': readable({outside!r}), 'workspace': readable('master.key')}}))
"""
    try:
        async with ctx.sandbox(ctx.spec(ctx.py(code))) as sandbox:
            await sandbox.start()
            chunks = sandbox.stdout_chunks()
            with anyio.fail_after(20):
                first = await anext(chunks)
            if sandbox.shares_workspace:
                # Natively the trusted side writes into the live workspace: its own 0600 file
                # there must stay its own. (A container's workspace holds nothing of the host.)
                key = sandbox.workspace / "master.key"
                key.write_bytes(b"key")
                key.chmod(0o600)
            await sandbox.write_file("go", b"")
            out = first + b"".join([c async for c in chunks])
            rc = await sandbox.wait(timeout=20)
            expect(rc == 0, f"exit {rc}: {out!r} {await sandbox.stderr_tail()!r}")
    finally:
        Path(outside).unlink()
    seen = json.loads(out.splitlines()[-1])
    expect(not any(seen.values()), f"a server-only 0600 file was readable: {seen}")


@check
async def check_runs_unprivileged(ctx: ConformanceContext) -> None:
    """Not root, no capabilities, no way to regain privileges (no_new_privs)."""
    code = (
        "import json, os; s = dict(l.split(':', 1) for l in open('/proc/self/status'));"
        "print(json.dumps({'uid': os.getuid(), 'euid': os.geteuid(),"
        " 'cap': s['CapEff'].strip(), 'nnp': s['NoNewPrivs'].strip()}))"
    )
    _, seen = await run_json(ctx, ctx.spec(ctx.py(code)))
    expect(seen["uid"] != 0 and seen["euid"] != 0, f"runs as root: {seen}")
    expect(int(seen["cap"], 16) == 0, f"has capabilities: {seen}")
    expect(seen["nnp"] == "1", f"no_new_privs not set: {seen}")


@check
async def check_rlimits_applied(ctx: ConformanceContext) -> None:
    """The spec's limits are the sandbox's rlimits (soft = hard), and they bite. Memory is
    either the address-space rlimit (native) or the memory cgroup's limit with no address-space
    rlimit (a container: RLIMIT_AS would break programs that reserve much virtual memory)."""
    limits = SandboxLimits(
        cpu_seconds=37,
        memory_bytes=900 << 20,
        max_processes=77,
        file_size_bytes=3 << 20,
        open_files=99,
    )
    code = """
import json, resource as r
names = ['CPU', 'AS', 'NPROC', 'FSIZE', 'NOFILE']
seen = {n: list(r.getrlimit(getattr(r, 'RLIMIT_' + n))) for n in names}
try:
    with open('big', 'wb') as f:  # the byte past the limit fails at the final flush
        f.write(b'x' * (3 * 2**20 + 1))
    seen['big_write'] = True
except OSError:
    seen['big_write'] = False
seen['cgroup'] = None
for path in ('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'):
    try:
        seen['cgroup'] = int(open(path).read())
        break
    except (OSError, ValueError):
        pass
print(json.dumps(seen))
"""
    _, seen = await run_json(ctx, ctx.spec(ctx.py(code), limits=limits))
    memory = limits.memory_bytes
    by_cgroup = seen["AS"] == [-1, -1] and seen["cgroup"] == memory
    expect(
        seen["AS"] == [memory, memory] or by_cgroup,
        f"memory not limited to {memory}: RLIMIT_AS {seen['AS']}, cgroup {seen['cgroup']}",
    )
    wanted = {
        "CPU": limits.cpu_seconds,
        "NPROC": limits.max_processes,
        "FSIZE": limits.file_size_bytes,
        "NOFILE": limits.open_files,
    }
    for name, value in wanted.items():
        expect(seen[name] == [value, value], f"RLIMIT_{name} is {seen[name]}, want {value}")
    expect(not seen["big_write"], "a file larger than file_size_bytes could be written")


@check
async def check_no_network(ctx: ConformanceContext) -> None:
    """No route anywhere: not even to a port the host listens on at 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code = f"""
import json, socket
try:
    socket.create_connection(('127.0.0.1', {port}), timeout=3).close(); reached = True
except OSError:
    reached = False
print(json.dumps({{'reached': reached, 'ifaces': [n for _, n in socket.if_nameindex()]}}))
"""
        _, seen = await run_json(ctx, ctx.spec(ctx.py(code)))
    expect(not seen["reached"], "the sandbox reached a host port on 127.0.0.1")
    expect(set(seen["ifaces"]) <= {"lo"}, f"network interfaces: {seen['ifaces']}")


@check
async def check_channel_socket(ctx: ConformanceContext) -> None:
    """The run channel (a host unix socket) is reachable at the path ACTANA_CHANNEL names."""
    directory = Path(tempfile.mkdtemp(prefix="chan-", dir=ctx.scratch))
    directory.chmod(0o755)
    path = directory / "c.sock"
    received: list[bytes] = []

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            received.append(await stream.receive(1))
            await stream.send(b"y")

    code = (
        "import os, socket; s = socket.socket(socket.AF_UNIX);"
        f" s.connect(os.environ['{ENV_CHANNEL}'].removeprefix('unix:')); s.sendall(b'x');"
        " print(s.recv(1).decode())"
    )
    try:
        listener = await anyio.create_unix_listener(path)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, serve)
            spec = ctx.spec(ctx.py(code), env={ENV_CHANNEL: f"unix:{path}"}, channel_socket=path)
            async with ctx.sandbox(spec) as sandbox:
                rc, out = await run_to_end(sandbox)
                tail = await sandbox.stderr_tail()
            tg.cancel_scope.cancel()
    finally:
        path.unlink(missing_ok=True)
        directory.rmdir()
    expect(rc == 0 and out.strip() == b"y", f"exit {rc}, stdout {out!r}, stderr {tail!r}")
    expect(received == [b"x"], f"the host side received {received}")
