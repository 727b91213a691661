"""Real-browser console tests: a demo merchant, the real app in a subprocess, headless Debian Chromium.

Playwright drives the Chromium that ``scripts/chromium.sh`` installs (Debian's, at /usr/bin/chromium);
``playwright install`` is never run (it downloads a browser, which this network refuses). Without
Chromium the browser tests skip on a developer's machine and fail under CI.

Every page talks only to the test server: a request to any other host (a CDN, say) is refused and fails
the test, since the console serves its scripts from the package. ``shot(page, name)`` keeps full-page
screenshots under ``test-artifacts/console/<test>/``, and a failing test leaves ``failure.png`` there.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, ViewportSize, sync_playwright

from tests.api.conftest import demo_merchant
from tests.console.accounts import add_role_users
from tests.live import free_port

CONSOLE_PEOPLE = 3000
CONSOLE_SEED = 20261125
SERVER_START_TIMEOUT = 90.0
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps calling Google's hosts, which this closed network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def chromium_path() -> str | None:
    """Debian's Chromium, or None when it is not installed."""
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


@dataclass
class ConsoleServer:
    """The app under test, served by uvicorn in its own process on 127.0.0.1."""

    base_url: str
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"


@pytest.fixture(scope="session")
def console_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo merchant (facts, OneID, portrait) with a console user of each role, built once per test run; its
    data folder. Tests share it and write to it (the authorisation matrix posts to every route), so a copy as built is
    kept beside it: ``copy_merchant`` copies that one."""
    root = demo_merchant(tmp_path_factory.mktemp("console-data"), people=CONSOLE_PEOPLE, seed=CONSOLE_SEED)
    add_role_users(root)
    copy_merchant(root, _as_built(root))
    return root


def _as_built(root: Path) -> Path:
    return root.with_name(f"{root.name}-as-built")


def copy_merchant(source: Path, target: Path) -> Path:
    """A private copy of a merchant's data folder; of the console merchant, as it was built, whatever other tests
    have written to it since. The state database is copied through SQLite's backup (consistent even while another
    connection has it open in WAL mode)."""
    origin = _as_built(source) if _as_built(source).exists() else source
    shutil.copytree(origin, target, ignore=shutil.ignore_patterns("state.db", "state.db-wal", "state.db-shm"))
    with sqlite3.connect(origin / "state.db") as src, sqlite3.connect(target / "state.db") as dst:
        src.backup(dst)
    src.close()
    dst.close()
    return target


@pytest.fixture(scope="session")
def console_server(console_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """``uvicorn omnicrm.api.app:create_app --factory`` over ``console_data``, stopped at the end of the run."""
    with serving(console_data, tmp_path_factory.mktemp("console-server")) as server:
        yield server


@contextmanager
def serving(data_dir: Path, folder: Path, **env: str) -> Iterator[ConsoleServer]:
    """``uvicorn omnicrm.api.app:create_app --factory`` over ``data_dir`` on 127.0.0.1 (log in ``folder``), with
    ``env`` as extra ``OMNICRM_*`` settings; stopped when the block ends. No stray ./omnicrm.toml is read."""
    port = free_port()
    log = folder / "server.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OMNICRM_")}
    environment.update(
        OMNICRM_DATA_DIR=str(data_dir),
        OMNICRM_LOADER_INTERVAL_SECONDS="0",
        OMNICRM_LOG_LEVEL="WARNING",
        OMNICRM_CONFIG=str(folder / "no-omnicrm.toml"),
        **env,
    )
    command = [sys.executable, "-m", "uvicorn", "omnicrm.api.app:create_app", "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT)
    server = ConsoleServer(base_url=f"http://127.0.0.1:{port}", data_dir=data_dir, log=log, proc=proc)
    try:
        _wait_for_health(server)
        yield server
    finally:
        _stop(proc)


def _wait_for_health(server: ConsoleServer) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(
                f"the console server exited with code {server.proc.returncode} before answering /health; "
                f"its output:\n{server.log_tail()}",
                pytrace=False,
            )
        try:
            answer = httpx.get(server.base_url + "/health", timeout=2)
            if answer.status_code == 200:
                return
            last_error = f"HTTP {answer.status_code}: {answer.text[:200]}"
        except httpx.HTTPError as exc:
            last_error = repr(exc)
        time.sleep(0.2)
    pytest.fail(
        f"the console server at {server.base_url} did not answer /health within {SERVER_START_TIMEOUT:.0f}s "
        f"(last: {last_error}); its output:\n{server.log_tail()}",
        pytrace=False,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium through Playwright, one per test run."""
    executable = chromium_path()
    if executable is None:
        message = "Chromium is not installed: run `bash scripts/chromium.sh` (Debian's chromium + chromium-driver)"
        if _in_ci():
            pytest.fail(message + " — CI must run the browser tests", pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so that ``page`` knows at teardown whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _artifact_dir(request: pytest.FixtureRequest) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_") or "test"
    return request.config.rootpath / "test-artifacts" / "console" / name


@pytest.fixture
def page(browser: Browser, console_server: ConsoleServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context and page per test (1280x900, English), with ``base_url`` set to the server.

    Requests to any host but the server are refused and fail the test (the console uses no CDN).
    """
    server_host = urlsplit(console_server.base_url).netloc
    failure_shot = _artifact_dir(request) / "failure.png"
    failure_shot.unlink(missing_ok=True)
    offsite: list[str] = []

    def refuse(route: Route) -> None:
        offsite.append(route.request.url)
        route.abort("blockedbyclient")

    context = browser.new_context(viewport=VIEWPORT, base_url=console_server.base_url, locale="en-US")
    context.route(lambda url: urlsplit(url).netloc != server_host, refuse)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed and not tab.is_closed():
        failure_shot.parent.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(failure_shot), full_page=True)
    context.close()
    assert not offsite, f"the page asked for addresses outside the test server: {offsite}"


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """``shot(page, name)``: a full-page screenshot at test-artifacts/console/<test>/<nn>-<name>.png."""
    folder = _artifact_dir(request)
    shutil.rmtree(folder, ignore_errors=True)
    count = 0

    def take(tab: Page, name: str) -> Path:
        nonlocal count
        count += 1
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{count:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', name).strip('-')}.png"
        tab.screenshot(path=str(path), full_page=True)
        return path

    return take
