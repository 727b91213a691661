"""``omnicrm demo``: the demo merchant lands in facts, a second run is a no-op, and the API serves it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pytest
from typer.testing import CliRunner

from omnicrm.cli.main import app
from omnicrm.settings import Settings
from omnicrm.store.facts import FactsStore
from tests.live import free_port


def count(facts: FactsStore, kind: str) -> int:
    return int(duckdb.sql(f"SELECT count(*) FROM read_parquet('{facts.glob(kind)}')").fetchall()[0][0])


def test_demo_imports_every_export_once(settings: Settings) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["demo", "--people", "300", "--seed", "7", "--no-serve"])
    assert first.exit_code == 0, first.output
    facts = FactsStore(settings.facts_dir)
    counts = {kind: count(facts, kind) for kind in ("order_line", "person", "event", "message")}
    assert all(n > 0 for n in counts.values()), counts
    sources = {
        r[0] for r in duckdb.sql(f"SELECT DISTINCT source FROM read_parquet('{facts.glob('order_line')}')").fetchall()
    }
    assert sources == {"tmall", "jd", "pos"}

    second = runner.invoke(app, ["demo", "--people", "300", "--seed", "7", "--no-serve"])
    assert second.exit_code == 0, second.output
    assert "8 of 8 exports were already imported" in second.output
    assert {kind: count(facts, kind) for kind in counts} == counts


@pytest.mark.slow
def test_demo_serves_the_api(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "OMNICRM_DATA_DIR": str(tmp_path / "data"), "OMNICRM_LOG_LEVEL": "WARNING"}
    log = open(tmp_path / "demo.log", "wb")  # noqa: SIM115 - closed below
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "omnicrm", "demo", "--people", "2000", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        health = None
        while time.monotonic() - started < 300 and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert health is not None and health.status_code == 200, (tmp_path / "demo.log").read_text()
        res = httpx.post(
            f"http://127.0.0.1:{port}/v1/track",
            auth=("wk_demo_web", ""),
            json={"userId": "M10000001", "event": "Products Searched", "properties": {"query": "碎花连衣裙"}},
        )
        assert res.status_code == 200, res.text
        assert "/docs" in (tmp_path / "demo.log").read_text()
        # the console: the demo made one user per role and printed how to log in
        users = dict(line.split(" ", 1) for line in (tmp_path / "data" / "demo-users.txt").read_text().splitlines())
        assert set(users) == {"admin", "marketer", "agent", "clerk"}
        assert f"log in as admin / {users['admin']}" in (tmp_path / "demo.log").read_text()
        base = f"http://127.0.0.1:{port}/console"
        form = httpx.get(f"{base}/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token, form.text
        done = httpx.post(
            f"{base}/login",
            data={"username": "admin", "password": users["admin"], "login_token": token.group(1)},
            headers={"Cookie": f"omnicrm_login_csrf={form.cookies['omnicrm_login_csrf']}"},  # Secure: httpx keeps it
        )
        assert done.status_code == 303, done.text
        session = done.cookies["omnicrm_session"]
        home = httpx.get(f"{base}/", headers={"Cookie": f"omnicrm_session={session}", "Accept-Language": "en"})
        assert home.status_code == 200 and "Dashboard" in home.text
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
