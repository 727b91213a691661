"""A campaign in real Chromium: a marketer creates one from a saved segment (a bad template first, shown beside
its field), launches it, and reads its page: the send log, the sends the server's worker made through a real
SMTP server on 127.0.0.1, and the results chart drawn by ECharts. Screenshots are kept under
test-artifacts/console/.

The shared console server has no marketing channel, and its worker would meet campaigns it cannot send; so this
module overrides ``console_server`` with its own server over a private copy of the console merchant, with an
e-mail channel and the worker every second. The other fixtures (``browser``, ``page``, ``shot``) are the
conftest's, and the page is refused any host but this server, as everywhere.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import Page, expect

from omnicrm.campaigns.audience import REASONS
from omnicrm.settings import load_settings
from omnicrm.store.state import StateStore
from tests.console.accounts import console_users, log_in_page
from tests.console.conftest import ConsoleServer, serving
from tests.console.test_campaign_pages import copy_merchant, email_channel, grant_email_consent, make_segment
from tests.live import free_port
from tests.mail import Inbox

pytestmark = pytest.mark.browser
__all__ = ["console_users"]

Shot = Callable[[Page, str], Path]
SEGMENT = "Double 11 buyers (browser)"


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on 127.0.0.1 that keeps every message."""
    received, port = Inbox(), free_port()
    controller = Controller(received, hostname="127.0.0.1", port=port)
    controller.start()
    yield received, port
    controller.stop()


@pytest.fixture(scope="module")
def console_server(
    console_data: Path,
    console_users: dict[str, str],
    inbox: tuple[Inbox, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ConsoleServer]:
    """The app in its own uvicorn process over a copy of the console merchant, with consents, a saved segment and
    an e-mail channel; quiet hours off, so the worker sends whatever the hour."""
    folder = tmp_path_factory.mktemp("campaign-browser")
    root = copy_merchant(console_data, folder / "merchant")
    state = StateStore(load_settings(data_dir=root, loader_interval_seconds=0).state_database_url)
    grant_email_consent(root, state)
    make_segment(root, state, SEGMENT)
    state.dispose()
    with serving(
        root,
        folder,
        OMNICRM_CHANNELS=json.dumps({"mail": email_channel(inbox[1])}),
        OMNICRM_PUBLIC_URL="https://crm.shop.example",
        OMNICRM_CAMPAIGN_INTERVAL_SECONDS="1",
        OMNICRM_QUIET_HOURS="",
    ) as server:
        yield server


def test_marketer_creates_launches_and_reads_a_campaign(
    page: Page, console_server: ConsoleServer, console_users: dict[str, str], inbox: tuple[Inbox, int], shot: Shot
) -> None:
    log_in_page(page, console_users["marketer"])
    page.click("header nav >> text=Campaigns")
    expect(page.locator("h1")).to_have_text("Campaigns")
    expect(page.locator("#no-campaigns")).to_be_visible()
    shot(page, "campaigns-empty")

    page.click("#new-campaign")
    expect(page.locator("#quiet_hours")).to_have_value("")
    page.fill("#name", "双11 回购 (browser)")
    page.select_option("#segment_id", _segment_id(page))
    page.select_option("#channel", "mail")
    page.fill("#content-zh-subject", "{{ shop_name }}会员专享")
    page.fill("#content-zh-body", "{{ password }} 全场满199减30 https://shop.example/d11")
    page.fill("#holdout_share", "20")
    page.select_option("#stratify_by", "lifecycle_stage")
    page.click("#create-campaign")
    error = page.locator("#error-content\\.zh\\.body")
    expect(error).to_contain_text("password")
    expect(page.locator("#name")).to_have_value("双11 回购 (browser)")
    shot(page, "template-error")

    page.fill("#content-zh-body", "全场满199减30 https://shop.example/d11")
    page.click("#create-campaign")
    expect(page).to_have_url(re.compile(r"/console/campaigns/\d+$"))
    expect(page.locator("#campaign-title .pill")).to_have_attribute("data-status", "draft")
    page.click("#launch-open")
    shot(page, "launch-confirmation")
    page.click("#confirm-launch")

    expect(page.locator("#campaign-title .pill")).to_have_attribute("data-status", "sending")
    expect(page.locator("#log-arms tr[data-arm=treatment]")).to_be_visible()
    expect(page.locator("#log-excluded")).to_contain_text(REASONS["no_consent"])
    chart = page.locator("#chart-results")
    expect(chart).to_have_attribute("data-rendered", "1", timeout=60_000)
    assert chart.locator("canvas").count() >= 1
    expect(page.locator("#window-open")).to_be_visible()
    shot(page, "campaign-launched")

    sent = page.locator("#log-statuses tr[data-status=sent]")
    deadline = time.monotonic() + 90
    while not sent.count() and time.monotonic() < deadline:
        time.sleep(1)
        page.reload()
    expect(sent).to_be_visible()
    assert inbox[0].messages, "the worker sent through the SMTP server"
    delivered = page.locator("#results-arms tr[data-arm=treatment] td").nth(2)
    expect(delivered).not_to_have_text("0")  # the results follow the send log, not a measure kept from launch
    expect(page.locator("#chart-results")).to_have_attribute("data-rendered", "1", timeout=60_000)
    shot(page, "campaign-sent")

    page.goto("/console/campaigns/channels")
    expect(page.locator("tr[data-channel=mail]")).to_be_visible()
    expect(page.locator("#chart-channels")).to_have_attribute("data-rendered", "1", timeout=60_000)
    shot(page, "results-by-channel")


def _segment_id(page: Page) -> str:
    """The id of the module's saved segment, as the form's select offers it."""
    option = page.locator("#segment_id option", has_text=SEGMENT)
    value = option.get_attribute("value")
    assert value, "the saved segment is offered"
    return value
