"""Conformance checks: the life of a sandbox (streaming, exit codes, timeouts, kill, output cap,
removal, and finding leftovers after a restart)."""

from __future__ import annotations

import time

import anyio

from actana.sandboxes.base import SandboxLimits
from actana.sandboxes.conformance_kit import (
    ConformanceContext,
    ConformanceFailure,
    check,
    expect,
    expect_no_processes,
    nonce,
    processes_matching,
    run_to_end,
)
from actana.sandboxes.errors import OutputLimitExceededError

SH = "/bin/sh"


@check
async def check_exit_codes(ctx: ConformanceContext) -> None:
    """Exit codes come back as-is; death by signal N as -N; stderr is kept for diagnosis."""
    cases = [
        ([SH, "-c", "exit 0"], 0),
        ([SH, "-c", "echo oops-stderr >&2; exit 7"], 7),
        (ctx.py("import os, signal; os.kill(os.getpid(), signal.SIGTERM)"), -15),
    ]
    for command, want in cases:
        async with ctx.sandbox(ctx.spec(command)) as sandbox:
            code, _ = await run_to_end(sandbox)
            tail = await sandbox.stderr_tail()
        expect(code == want, f"{command[-1]!r}: exit {code}, want {want}; stderr {tail!r}")
        if want == 7:
            expect(b"oops-stderr" in tail, f"stderr not kept: {tail!r}")


@check
async def check_stdout_streams_incrementally(ctx: ConformanceContext) -> None:
    """The first chunk arrives while the process still runs (it waits for our reply)."""
    code = (
        "import os, sys, time; print('first', flush=True); deadline = time.time() + 20\n"
        "while not os.path.exists('go') and time.time() < deadline: time.sleep(0.01)\n"
        "print('second' if os.path.exists('go') else 'no-go')"
    )
    async with ctx.sandbox(ctx.spec(ctx.py(code))) as sandbox:
        await sandbox.start()
        chunks = sandbox.stdout_chunks()
        with anyio.fail_after(20):
            first = await anext(chunks)
        expect(first == b"first\n", f"first chunk {first!r}")
        await sandbox.write_file("go", b"")  # only now may the process finish
        rest = b"".join([c async for c in chunks])
        code_ = await sandbox.wait(timeout=20)
    expect(code_ == 0 and rest == b"second\n", f"exit {code_}, then {rest!r}")


@check
async def check_wait_timeout_then_kill(ctx: ConformanceContext) -> None:
    """wait(timeout) raises TimeoutError and leaves the sandbox running; kill() ends it all."""
    token = nonce()
    async with ctx.sandbox(ctx.spec([SH, "-c", f"sleep 600.{token}"])) as sandbox:
        await sandbox.start()
        started = time.monotonic()
        try:
            await sandbox.wait(timeout=0.3)
        except TimeoutError:
            pass
        else:
            raise ConformanceFailure("wait(timeout=0.3) returned for a sleeping process")
        elapsed = time.monotonic() - started
        expect(0.25 <= elapsed < 5, f"wait(timeout=0.3) took {elapsed:.2f}s")
        expect(processes_matching(token), "the sandbox died on a wait timeout")
        await sandbox.kill()
        await expect_no_processes(token, "after kill()")
        with anyio.fail_after(5):
            code = await sandbox.wait()
        expect(code < 0, f"a killed sandbox exited with {code}")
        await sandbox.kill()  # idempotent


@check
async def check_kill_takes_all_children(ctx: ConformanceContext) -> None:
    """kill() takes the whole tree: background children and grandchildren, not just the top."""
    token = nonce()
    script = f"sleep 600.{token} & (sleep 600.{token} &) ; echo started; wait"
    async with ctx.sandbox(ctx.spec([SH, "-c", script])) as sandbox:
        await sandbox.start()
        chunks = sandbox.stdout_chunks()
        with anyio.fail_after(20):
            first = await anext(chunks)
        expect(first.startswith(b"started"), f"first chunk {first!r}")
        with anyio.fail_after(5):
            while len(processes_matching(token)) < 2:  # `sleep` may not have exec'd yet
                await anyio.sleep(0.01)
        await sandbox.kill()
        await expect_no_processes(token, "after kill()")


@check
async def check_output_cap(ctx: ConformanceContext) -> None:
    """A sandbox printing forever is cut at output_bytes exactly, and killed."""
    token = nonce()
    cap = 256 * 1024 + 17  # not a multiple of any buffer size
    code = f"import sys  # {token}\nwhile True: sys.stdout.buffer.write(b'x' * 65536)"
    spec = ctx.spec(ctx.py(code), limits=SandboxLimits(output_bytes=cap))
    async with ctx.sandbox(spec) as sandbox:
        await sandbox.start()
        received = 0
        try:
            with anyio.fail_after(20):
                async for chunk in sandbox.stdout_chunks():
                    received += len(chunk)
        except OutputLimitExceededError:
            pass
        else:
            raise ConformanceFailure("stdout ended without OutputLimitExceededError")
        expect(received == cap, f"received {received} bytes, cap {cap}")
        with anyio.fail_after(5):
            rc = await sandbox.wait()
        expect(rc < 0, f"the sandbox was not killed (exit {rc})")
        await expect_no_processes(token, "after the output cap")


@check
async def check_remove_deletes_everything(ctx: ConformanceContext) -> None:
    """remove() deletes the workspace, even files and dirs the sandbox made read-only."""
    script = (
        "mkdir -p a/b && echo x > a/b/f && ln -s /etc/hostname a/link && chmod 400 a/b/f"
        " && chmod 500 a/b a && chmod 500 ."
    )
    async with ctx.sandbox(ctx.spec([SH, "-c", script])) as sandbox:
        code, _ = await run_to_end(sandbox)
        expect(code == 0, f"exit {code}: {await sandbox.stderr_tail()!r}")
        if sandbox.shares_workspace:
            expect((sandbox.workspace / "a" / "b" / "f").exists(), "setup failed")
        await sandbox.remove()
        expect(not sandbox.workspace.exists(), "the workspace survived remove()")
        await sandbox.remove()  # idempotent
        await sandbox.kill()
    refs = await ctx.backend.list_own(ctx.worker_id)
    expect(sandbox.run_id not in {r.run_id for r in refs}, "host state survived remove()")


@check
async def check_list_own_finds_leftovers(ctx: ConformanceContext) -> None:
    """A sandbox created and never removed is found by a fresh backend and removed by ref,
    processes included."""
    token = nonce()
    worker = f"conf-worker-{token}"
    spec = ctx.spec([SH, "-c", f"sleep 600.{token}"], worker_id=worker)
    leftover = await ctx.backend.create(spec)
    try:
        await leftover.start()
        with anyio.fail_after(5):
            while not processes_matching(token):
                await anyio.sleep(0.01)
        fresh = ctx.make_backend()  # as after a worker restart
        refs = await fresh.list_own(worker)
        expect([r.run_id for r in refs] == [spec.run_id], f"list_own({worker!r}) = {refs}")
        others = await fresh.list_own(f"{worker}-other")
        expect(not others, f"list_own of another worker found {others}")
        await fresh.remove_by_ref(refs[0])
        await expect_no_processes(token, "after remove_by_ref()")
        expect(not leftover.workspace.exists(), "the workspace survived remove_by_ref()")
        expect(not await fresh.list_own(worker), "still listed after remove_by_ref()")
        await fresh.remove_by_ref(refs[0])  # idempotent
    finally:
        with anyio.CancelScope(shield=True):
            await leftover.remove()
