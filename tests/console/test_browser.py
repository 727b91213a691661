"""The console in real Chromium: log in, switch language, find a customer by phone, open the 360, build a
segment whose live count equals the API's, and see the dashboard's charts drawn. Screenshots are kept under
test-artifacts/console/."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import duckdb
import httpx
import pytest
from playwright.sync_api import Page, expect

from omnicrm.access.api_keys import create_api_key
from omnicrm.console.dashboard import CHARTS
from omnicrm.settings import load_settings
from omnicrm.store.state import StateStore
from tests.console.accounts import PASSWORD, console_users
from tests.console.conftest import ConsoleServer

pytestmark = pytest.mark.browser
__all__ = ["console_users"]

Shot = Callable[[Page, str], Path]


def _log_in(page: Page, username: str) -> None:
    page.goto("/console/")
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("#login")


def _phone(data_dir: Path) -> tuple[int, str]:
    snap = sorted((data_dir / "derived" / "identity" / "snapshots").iterdir())[-1]
    row = duckdb.sql(
        f"""SELECT customer_id, value FROM '{snap / "identifiers.parquet"}'
            WHERE id_type = 'phone' AND holders = 1 ORDER BY customer_id LIMIT 1"""
    ).fetchall()[0]
    return int(row[0]), str(row[1])


def test_log_in_and_switch_language(page: Page, console_users: dict[str, str], shot: Shot) -> None:
    _log_in(page, console_users["marketer"])
    expect(page.locator("h1")).to_have_text("Dashboard")
    shot(page, "dashboard-en")
    page.click("#lang-zh-CN")
    expect(page.locator("h1")).to_have_text("数据看板")
    expect(page.locator("header nav")).to_contain_text("人群")
    shot(page, "dashboard-zh")
    page.click("#lang-en")
    expect(page.locator("h1")).to_have_text("Dashboard")


def test_search_by_phone_and_open_the_360(
    page: Page, console_server: ConsoleServer, console_users: dict[str, str], shot: Shot
) -> None:
    customer, phone = _phone(console_server.data_dir)
    _log_in(page, console_users["service_agent"])
    expect(page.locator("h1")).to_have_text("Find a customer")
    page.fill("#q", phone.removeprefix("+86"))
    shot(page, "search")
    page.click("#search")
    expect(page).to_have_url(f"{console_server.base_url}/console/customers/{customer}")
    expect(page.locator("#customer-title")).to_have_text(f"Customer {customer}")
    expect(page.locator("#identifiers")).to_contain_text(phone)
    expect(page.locator("#tags")).to_contain_text("RFM")
    rows = page.locator("#timeline-rows tbody tr")
    assert rows.count() > 0
    page.locator("#tags details.why summary").first.click()
    shot(page, "customer-360")


def test_segment_builder_count_equals_the_api(
    page: Page, console_server: ConsoleServer, console_users: dict[str, str], shot: Shot
) -> None:
    rule = 'lifecycle_stage IN ("active", "new") AND monetary > 300'
    state = StateStore(load_settings(data_dir=console_server.data_dir, loader_interval_seconds=0).state_database_url)
    key = create_api_key(state, "browser test", ["segments:read"])
    state.dispose()
    api = httpx.post(
        f"{console_server.base_url}/api/segments/count",
        json={"text": rule},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert api.status_code == 200, api.text
    expected = api.json()["count"]
    assert expected > 0

    _log_in(page, console_users["marketer"])
    page.goto("/console/segments")
    page.fill("#rule", rule)
    count = page.locator("#segment-count")
    expect(count).to_have_attribute("data-count", str(expected), timeout=60_000)
    shot(page, "segment-count")
    page.fill("input[name=name]", "active spenders (browser)")
    page.click("#save-segment")
    expect(page.locator("#saved")).to_contain_text("active spenders (browser)")
    page.fill("#rule", "monetary >")
    expect(page.locator("#count-error")).to_be_visible(timeout=60_000)
    shot(page, "segment-error")


def test_dashboard_draws_every_chart(page: Page, console_users: dict[str, str], shot: Shot) -> None:
    _log_in(page, console_users["admin"])
    expect(page.locator("h1")).to_have_text("Dashboard")
    for name in CHARTS:
        chart = page.locator(f"#chart-{name}")
        expect(chart).to_have_attribute("data-rendered", "1", timeout=60_000)
        assert chart.locator("canvas").count() >= 1
    shot(page, "dashboard-charts")
