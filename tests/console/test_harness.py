"""The browser harness itself: the real server answers in headless Chromium, screenshots are kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.console.conftest import ConsoleServer

pytestmark = pytest.mark.browser


def test_health_in_chromium(page: Page, console_server: ConsoleServer, shot: Callable[[Page, str], Path]) -> None:
    answer = page.goto("/health")
    assert answer is not None and answer.ok, answer
    assert answer.url == console_server.base_url + "/health"
    body = json.loads(page.inner_text("body"))
    assert body["status"] == "ok"
    path = shot(page, "health")
    assert path.name == "01-health.png"
    assert path.parent.name == "test_health_in_chromium"
    assert path.stat().st_size > 1000


def test_openapi_in_chromium(page: Page, shot: Callable[[Page, str], Path]) -> None:
    answer = page.goto("/openapi.json")
    assert answer is not None and answer.ok, answer
    spec = answer.json()
    assert spec["info"]["title"] == "omnicrm"
    assert "/health" in spec["paths"]
    # The page's own scripts reach the server too (same origin, no CORS).
    status = page.evaluate("async () => (await (await fetch('/health')).json()).status")
    assert status == "ok"
    assert shot(page, "openapi").name == "01-openapi.png"


def test_demo_data_behind_the_server(console_server: ConsoleServer) -> None:
    assert (console_server.data_dir / "state.db").exists()
    assert any((console_server.data_dir / "facts").rglob("*.parquet"))
    assert console_server.proc.poll() is None, console_server.log_tail()


VENDOR = Path(__file__).resolve().parents[2] / "src" / "omnicrm" / "console" / "static" / "vendor"


def test_vendored_scripts_run_offline(page: Page, shot: Callable[[Page, str], Path]) -> None:
    """The vendored htmx and ECharts load in this Chromium from the package's files and draw a chart."""
    page.set_content('<h1>vendored</h1><div id="chart" style="width:640px;height:360px"></div>')
    page.add_script_tag(path=VENDOR / "htmx.min.js")
    page.add_script_tag(path=VENDOR / "echarts.min.js")
    versions = page.evaluate("() => [window.htmx.version, window.echarts.version]")
    listed = (VENDOR / "VERSIONS.txt").read_text()
    assert f"htmx.org\t{versions[0]}\t" in listed
    assert f"echarts\t{versions[1]}\t" in listed
    page.evaluate(
        """() => {
        const chart = echarts.init(document.getElementById('chart'), null, {renderer: 'svg'});
        chart.setOption({animation: false, xAxis: {type: 'category', data: ['A', 'B', 'C']},
                         yAxis: {type: 'value'}, series: [{type: 'bar', data: [3, 5, 2]}]});
    }"""
    )
    assert page.locator("#chart svg path").count() > 3
    shot(page, "chart")
