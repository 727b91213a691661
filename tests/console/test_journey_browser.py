"""A journey in real Chromium: a marketer goes from the campaigns to the journeys, builds the Double 11 new-customer
journey through the form (a bad template first, shown beside its step's field with everything typed kept), starts
it and reads its page: the definition in words, the entries and each step with its send log, results and a link to
the step's campaign. Screenshots are kept under test-artifacts/console/.

Like the campaign browser test, this module overrides ``console_server`` with its own server over a private copy of
the console merchant, here with an SMS and a WeChat channel (their providers on a closed port: with no new orders
nobody enters, so nothing is sent) and the campaign worker every second, so the live journey is advanced as in
production. The other fixtures (``browser``, ``page``, ``shot``) are the conftest's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.console.accounts import console_users, log_in_page
from tests.console.conftest import ConsoleServer, serving
from tests.console.test_campaign_pages import copy_merchant

pytestmark = pytest.mark.browser
__all__ = ["console_users"]

Shot = Callable[[Page, str], Path]
CLOSED = "http://127.0.0.1:9"
CHANNELS: dict[str, Any] = {
    "sms": {"kind": "sms", "base_url": CLOSED, "cost_per_unit": "0.045", "rate_per_second": 0, "timeout": 5,
            "credentials": {"access_key_id": "LTAI-test", "access_key_secret": "secret"},
            "options": {"sign_name": "小鹿茶", "text_template_code": "SMS_000001"}},
    "wechat": {"kind": "wechat", "base_url": CLOSED, "rate_per_second": 0,
               "credentials": {"app_id": "wx_mp_browser", "app_secret": "s"}},
}  # fmt: skip


@pytest.fixture(scope="module")
def console_server(
    console_data: Path, console_users: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsoleServer]:
    """The app in its own uvicorn process over a copy of the console merchant, with SMS and WeChat channels and the
    campaign worker (which advances live journeys) every second."""
    folder = tmp_path_factory.mktemp("journey-browser")
    root = copy_merchant(console_data, folder / "merchant")
    with serving(
        root,
        folder,
        OMNICRM_CHANNELS=json.dumps(CHANNELS),
        OMNICRM_PUBLIC_URL="https://crm.shop.example",
        OMNICRM_SHOP_NAME="小鹿茶",
        OMNICRM_CAMPAIGN_INTERVAL_SECONDS="1",
    ) as server:
        yield server


def test_marketer_builds_starts_and_reads_a_journey(
    page: Page, console_server: ConsoleServer, console_users: dict[str, str], shot: Shot
) -> None:
    log_in_page(page, console_users["marketer"])
    page.click("header nav >> text=Campaigns")
    page.click("#tab-journeys")
    expect(page.locator("h1")).to_have_text("Journeys")
    expect(page.locator("#no-journeys")).to_be_visible()
    shot(page, "journeys-empty")

    page.click("#new-journey")
    expect(page.locator("#exit-on")).to_be_checked()
    page.fill("#name", "双11 新客关怀 (browser)")
    page.select_option("#trigger-type", "first_order")
    page.select_option("#trigger-promotion", "double11")
    page.fill("#steps-0-name", "微信关怀")
    page.fill("#steps-0-after-days", "3")
    page.select_option("#steps-0-channel", "wechat")
    page.fill("#steps-0-holdout-share", "20")
    page.click("#steps-0-content-zh-wechat summary")
    page.fill("#steps-0-content-zh-template-id", "TPL_CARE")
    page.fill("#steps-0-content-zh-params", "thing1={{ shop_name }}感谢您的首单\nthing2=使用小贴士")
    page.fill("#steps-1-name", "短信券")
    page.fill("#steps-1-after-days", "14")
    page.check("#steps-1-condition")
    page.select_option("#steps-1-channel", "sms")
    page.fill("#steps-1-holdout-share", "20")
    page.fill("#steps-1-content-zh-body", "{{ favourite_dish }} 送您20元回购券 https://shop.example/c20")
    page.click("#create-journey")

    expect(page.locator("#error-steps-1-content-zh-body")).to_contain_text("favourite_dish")
    expect(page.locator("#name")).to_have_value("双11 新客关怀 (browser)")
    expect(page.locator("#steps-0-content-zh-template-id")).to_have_value("TPL_CARE")
    expect(page.locator("#steps-1-condition")).to_be_checked()
    expect(page.locator("#steps-1-channel")).to_have_value("sms")
    shot(page, "step-template-error")

    page.fill("#steps-1-content-zh-body", "{{ shop_name }}送您20元回购券 https://shop.example/c20")
    page.click("#create-journey")
    expect(page).to_have_url(re.compile(r"/console/journeys/\d+$"))
    expect(page.locator("#journey-title .pill")).to_have_attribute("data-status", "draft")
    expect(page.locator("#definition")).to_have_text(
        "First order in Double 11 → day 3: 微信关怀 → day 14, if no order since entry: 短信券 → exit on purchase"
    )
    page.click("#start-open")
    expect(page.locator("#confirm-start")).to_be_visible()
    shot(page, "start-confirmation")
    page.click("#confirm-start")

    expect(page.locator("#journey-title .pill")).to_have_attribute("data-status", "live")
    expect(page.locator("#entry-counts tr[data-entries=total] td")).to_have_text("0")
    for step in (0, 1):
        section = page.locator(f"#step-{step}")
        expect(section.locator("h2 .pill")).to_have_attribute("data-status", "sending")
        expect(page.locator(f"#step-{step}-results")).to_be_visible()
        expect(page.locator(f"#step-{step}-verdict")).to_be_visible()
    chart = page.locator("#step-0-chart")
    expect(chart).to_have_attribute("data-rendered", "1", timeout=60_000)
    assert chart.locator("canvas").count() >= 1
    shot(page, "journey-live")

    page.click("#tab-journeys")
    row = page.locator("#journeys tbody tr").first
    expect(row.locator(".pill")).to_have_attribute("data-status", "live")
    expect(row).to_contain_text("双11 新客关怀 (browser)")
    shot(page, "journeys-list")

    row.locator("a").first.click()
    page.click("#step-1-campaign")
    expect(page.locator("#campaign-title")).to_contain_text("短信券")
    expect(page.locator("#campaign-title .pill")).to_have_attribute("data-status", "sending")
    shot(page, "step-campaign")
