"""The inbox in real Chromium: one member of the console merchant writes by SMS, on JD chat and on Wangwang (through
the API); a service agent logs in, finds the conversation at the top of the queue, opens it, sees the three channels'
messages beside the member's 360, inserts a quick reply, sends it, and the Wangwang gateway (a local HTTP server on
127.0.0.1) has recorded exactly that reply; an internal note is added and is not sent. Screenshots are kept under
test-artifacts/console/.

The module has its own server over a private copy of the console merchant, with the gateway configured, an agent in
a team, an SLA policy and quick replies set up beforehand; ``browser``, ``page`` and ``shot`` are the conftest's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import httpx
import pytest
from playwright.sync_api import Page, expect

from omnicrm.access.api_keys import create_api_key
from omnicrm.inbox import agents, quick_replies, sla
from omnicrm.settings import load_settings
from omnicrm.store.derived import DerivedStore
from omnicrm.store.state import StateStore
from tests.channels.gateways import Gateway, Reply
from tests.console.accounts import PASSWORD, console_users, log_in_page
from tests.console.conftest import ConsoleServer, serving
from tests.console.test_campaign_pages import copy_merchant
from tests.console.test_loyalty_pages import phone_holder

pytestmark = pytest.mark.browser
__all__ = ["console_users"]

Shot = Callable[[Page, str], Path]
QUICK = "Hi {customer_name}, your parcel left our Hangzhou warehouse today and arrives tomorrow."


@dataclass
class Member:
    root: Path
    customer: int
    phone: str
    api_key: str


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with Gateway() as running:
        running.default("/messages", Reply(200, {"message_id": "ww-1"}))
        yield running


def _buys(root: Path, customer: int) -> bool:
    """Whether the customer has orders on the merchant's timeline (so the 360 shows some)."""
    timeline = DerivedStore(root / "derived").current("timeline")
    assert timeline is not None
    sql = f"SELECT count(*) FROM '{timeline / 'timeline.parquet'}' WHERE customer_id = {customer} AND kind = 'order'"
    return bool(duckdb.sql(sql).fetchall()[0][0])


@pytest.fixture(scope="module")
def member(console_data: Path, console_users: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Member:
    """A copy of the console merchant with the service agent in a team, a 30-minute SLA and quick replies."""
    root = copy_merchant(console_data, tmp_path_factory.mktemp("inbox-browser") / "merchant")
    state = StateStore(load_settings(data_dir=root, loader_interval_seconds=0).state_database_url)
    customer, phone = next(found for skip in range(50) if _buys(root, (found := phone_holder(root, skip))[0]))
    agent = agents.create_agent(state, "小美", username=console_users["service_agent"])
    agents.create_team(state, "service", members=[agent.id])
    sla.put_policy(state, channel="*", priority="*", first_response_minutes=30, resolution_minutes=480, by="test")
    quick_replies.put_quick_reply(state, shortcut="parcel", language="en", title="Parcel on its way", text=QUICK,
                                  by="test")  # fmt: skip
    quick_replies.put_quick_reply(state, shortcut="parcel", language="zh", title="包裹在路上",
                                  text="{customer_name}您好，包裹今天已从杭州仓发出", by="test")  # fmt: skip
    key = create_api_key(state, "browser test", ["inbox:write"])
    state.dispose()
    return Member(root, customer, phone, key)


@pytest.fixture(scope="module")
def console_server(member: Member, gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        ConsoleServer]:  # fmt: skip
    inbox = {"gateways": {"wangwang": {"base_url": gateway.url, "secret": "gateway-secret", "max_attempts": 1}},
             "worker_interval_seconds": 0}  # fmt: skip
    with serving(member.root, tmp_path_factory.mktemp("inbox-server"), OMNICRM_INBOX=json.dumps(inbox)) as server:
        yield server


def test_an_agent_answers_a_member_who_wrote_on_three_channels(
    page: Page, member: Member, gateway: Gateway, console_server: ConsoleServer, console_users: dict[str, str],
    shot: Shot,
) -> None:  # fmt: skip
    phone = member.phone.removeprefix("+86")
    for channel, sender, text in (("sms", {"phone": phone}, "我的快递到哪了？"),
                                  ("jd_im", {"pin": "jd_lina_88", "phone": phone}, "京东这边也问一下物流"),
                                  ("wangwang", {"nick": "lina_88", "phone": phone}, "旺旺：快递什么时候到？")):  # fmt: skip
        sent = httpx.post(f"{console_server.base_url}/api/inbox/messages", timeout=30,
                          headers={"Authorization": f"Bearer {member.api_key}"},
                          json={"channel": channel, "sender": sender, "text": text, "name": "李娜"})  # fmt: skip
        assert sent.status_code == 201, sent.text
    conversation = sent.json()["conversation"]["id"]
    assert sent.json()["conversation"]["customer_id"] == member.customer

    page.goto("/console/login")
    page.fill("input[name=username]", console_users["service_agent"])
    page.fill("input[name=password]", PASSWORD)
    page.click("#login")
    expect(page.locator("h1")).to_have_text("Find a customer")
    page.click("header nav >> text=Inbox")
    expect(page.locator("h1")).to_have_text("Service inbox")
    top = page.locator("#queue-rows tbody tr").first
    expect(top).to_have_attribute("data-conversation", str(conversation))
    expect(top).to_contain_text("李娜")
    expect(top).to_contain_text("due in 30 min")
    shot(page, "queue")

    top.locator("a").first.click()
    expect(page.locator("#conversation-title")).to_contain_text(f"Conversation {conversation}")
    incoming = page.locator("#messages li[data-direction=in]")
    expect(incoming).to_have_count(3)
    assert [incoming.nth(i).get_attribute("data-channel") for i in range(3)] == ["sms", "jd_im", "wangwang"]
    expect(incoming.nth(1)).to_contain_text("JD chat")
    expect(page.locator("#customer-360")).to_have_attribute("data-customer", str(member.customer))
    expect(page.locator("#identifiers-360")).to_contain_text(member.phone)
    expect(page.locator("#orders-360 tr").first).to_be_visible()
    expect(page.locator("#send-reply")).to_have_text("Send on Wangwang")
    shot(page, "conversation-with-360")

    page.click("#quick-parcel")
    expected = QUICK.replace("{customer_name}", "李娜")
    expect(page.locator("#reply-text")).to_have_value(expected)
    shot(page, "quick-reply-inserted")
    page.click("#send-reply")
    expect(page.locator("#reply-outcome")).to_have_attribute("data-delivery", "sent")
    expect(page.locator("#reply-outcome")).to_have_text("Sent on Wangwang.")
    expect(page.locator("#messages li[data-direction=out]")).to_contain_text(expected)
    [call] = gateway.to("/messages")
    assert (call.json()["channel"], call.json()["to"], call.json()["text"]) == ("wangwang", "lina_88", expected)
    shot(page, "reply-sent")

    page.fill("#note-text", "老会员，明天下午再跟进一次物流")
    page.click("#add-note")
    note = page.locator("#messages li[data-direction=note]")
    expect(note).to_contain_text("老会员，明天下午再跟进一次物流")
    expect(note).to_contain_text("Internal note — not sent")
    assert len(gateway.requests) == 1  # the note was not sent anywhere
    shot(page, "note-added")

    page.click("header form button")  # log out; a manager reads the SLA report
    log_in_page(page, console_users["admin"])
    page.goto("/console/inbox/reports?by=channel")
    expect(page.locator("#report-rows tr[data-group=all] td").first).to_have_text("1")
    expect(page.locator("#chart-sla")).to_have_attribute("data-rendered", "1")
    shot(page, "sla-report")
