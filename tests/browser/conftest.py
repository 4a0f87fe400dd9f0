"""Fixtures for the browser tests: a real headless Chromium driven by Playwright, pointed at a
real server with workers, a workspace signed in through the login page, and scripted agents on
the native sandbox (so that these tests do not depend on the Docker image).

The browser is Debian's `chromium` package (ACTANA_TEST_CHROMIUM names another binary), driven
through Playwright's `executable_path`: Playwright never downloads a browser of its own
(scripts/ensure-chromium.sh installs the package). Without one the tests skip with a reason;
CI sets ACTANA_TEST_REQUIRE_BROWSER=1 so that they fail instead, like Docker and PostgreSQL.

Every page a test opens is watched: a console error (a CSP violation is one), an uncaught script
error or a dialog fails the test at teardown, whatever the test itself checked.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)

from actana.api.context import AppContext
from tests.conftest import LiveServer, Tenant, make_tenant

REQUIRE_BROWSER = os.environ.get("ACTANA_TEST_REQUIRE_BROWSER") == "1"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
# Playwright waits this long for a selector or a condition before failing (ms). Runs on the
# native sandbox finish in about a second; the margin is for a loaded CI machine.
WAIT_MS = 20_000


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: these tests are about the pages, and every database test already runs on
    both databases; doing each browser test twice would double the slowest tier for nothing."""
    return f"sqlite:///{tmp_path / 'actana.db'}"


def chromium_path() -> str:
    """Debian's chromium (or ACTANA_TEST_CHROMIUM); skips, or fails in CI, when there is none."""
    named = os.environ.get("ACTANA_TEST_CHROMIUM", "")
    # A named binary that is not executable is reported, not replaced by the one on PATH.
    usable = named if os.access(named, os.X_OK) else None
    found = usable if named else shutil.which("chromium")
    if found:
        return found
    message = (
        f"ACTANA_TEST_CHROMIUM={named} is not an executable file"
        if named
        else "no chromium on PATH (scripts/ensure-chromium.sh installs Debian's package)"
    )
    if REQUIRE_BROWSER:
        pytest.fail(f"ACTANA_TEST_REQUIRE_BROWSER=1, but {message}")
    pytest.skip(message)


# Package scope, not session: Playwright's sync API keeps an event loop running in the main
# thread for as long as it lives, and every later test that calls asyncio.run would fail with
# "cannot be called from a running event loop". It stops when the browser tests are done.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One headless Chromium for the browser tests; each test gets a fresh context (cookies,
    storage)."""
    args = []
    if os.geteuid() == 0:
        # Chromium refuses to start as root with its own sandbox on (it needs an unprivileged
        # user for its setuid/namespace sandbox). As root (CI containers) it runs without it;
        # it only ever loads pages of the test server on loopback.
        args.append("--no-sandbox")
    browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=args)
    yield browser
    browser.close()


@dataclass
class PageWatch:
    """Everything a page said that it should not have: dialogs, console errors, script errors."""

    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def expect_console_error(self, pattern: str) -> None:
        """Tolerate console errors matching `pattern` (say, the 404 a test asks for)."""
        self.expected.append(re.compile(pattern))

    def attach(self, page: Page) -> None:
        """Register the listeners; call it before the page navigates anywhere."""
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        text = f"{message.text} ({message.location.get('url', '')})"
        if message.type == "error" and not any(p.search(text) for p in self.expected):
            self.console_errors.append(text)

    def problems(self) -> list[str]:
        return (
            [f"dialog {d}" for d in self.dialogs]
            + [f"console error {c}" for c in self.console_errors]
            + [f"script error {e}" for e in self.page_errors]
        )


@pytest.fixture
def server(worker_server: LiveServer) -> LiveServer:
    """The real app with two in-process workers (runs really execute)."""
    return worker_server


@pytest.fixture
def workspace(context: AppContext, server: LiveServer) -> Iterator[Tenant]:
    tenant = make_tenant(context, server, "browser")
    yield tenant
    tenant.client.close()


@pytest.fixture
def browser_context(browser: Browser, server: LiveServer) -> Iterator[BrowserContext]:
    ctx = browser.new_context(base_url=server.url, viewport=VIEWPORT, accept_downloads=True)
    ctx.set_default_timeout(WAIT_MS)
    yield ctx
    ctx.close()


@pytest.fixture
def watch() -> PageWatch:
    return PageWatch()


@pytest.fixture
def page(browser_context: BrowserContext, watch: PageWatch) -> Iterator[Page]:
    """A fresh page, watched from before its first navigation; fails the test on any problem."""
    page = browser_context.new_page()
    watch.attach(page)
    yield page
    problems = watch.problems()
    assert not problems, "the page misbehaved:\n" + "\n".join(problems)


def sign_in(page: Page, api_key: str) -> None:
    """Sign in through the login page, as a person would; ends on the runs page."""
    page.goto("/ui/login")
    page.fill("#api_key", api_key)
    page.click("#login-form button[type=submit]")
    page.locator("#workspace-name").wait_for()
    assert "/ui/login" not in page.url, page.url


@pytest.fixture
def signed_in(page: Page, workspace: Tenant) -> Page:
    sign_in(page, workspace.api_key)
    return page


@dataclass
class Crew:
    """Makes scripted native agents in the workspace, through the public API."""

    tenant: Tenant
    made: int = 0

    def agent(self, script: list[dict[str, Any]], name: str | None = None, **fields: Any) -> str:
        self.made += 1
        return self.tenant.scripted_agent(name or f"agent-{self.made}", script, **fields)

    def start(self, agent_id: str, prompt: str = "go") -> str:
        t = self.tenant
        r = t.client.post(t.path(f"/agents/{agent_id}/runs"), json={"prompt": prompt})
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    def run(self, run_id: str) -> dict[str, Any]:
        r = self.tenant.client.get(self.tenant.path(f"/runs/{run_id}"))
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture
def crew(workspace: Tenant) -> Crew:
    return Crew(workspace)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        tick.wait(0.02)
    return value


def sandbox_workspace(context: AppContext, run_id: str) -> Path:
    """The host folder of a live native run's workspace (`<root>/<run_id>/workspace`), found
    under the data dir once the sandbox exists. Tests gate a step on a file they put there."""

    def found() -> Path | None:
        return next(iter(context.settings.data_dir.rglob(f"{run_id}/workspace")), None)

    return Path(wait_until(found, 20, f"the sandbox workspace of {run_id}"))


def release(workspace: Path, name: str = "release") -> None:
    """Create the file a `gate_command` waits for (readable by the sandbox's own uid)."""
    gate = workspace / name
    gate.write_text("go\n")
    gate.chmod(0o644)


def gate_command(name: str = "release") -> str:
    """A bash command that waits until the test creates `name` in the workspace (the run's own
    deadline, 30 s by default, bounds it if the test never does)."""
    return f"until [ -e {name} ]; do sleep 0.05; done; echo released"
