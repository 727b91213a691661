"""The inbox's console pages over HTTP, on SQLite and PostgreSQL: the queue by breach risk with its due times and
warnings, filters and errors; a conversation of three channels beside the customer's 360, a quick reply filled in and
sent through the Wangwang gateway (a local server on 127.0.0.1 that records it) exactly once, an internal note that
is never sent, the controls, a closed conversation refusing a reply; the SLA report and its chart; in Chinese and
English, and who may see what."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from omnicrm.access.api_keys import create_api_key
from omnicrm.access.users import ROLES, create_user
from omnicrm.api.app import create_app
from omnicrm.inbox import agents, quick_replies, sla
from omnicrm.inbox.config import inbox_config
from omnicrm.inbox.messages import receive
from omnicrm.inbox.senders import Inbound
from omnicrm.settings import Settings, load_settings
from omnicrm.store.derived import DerivedStore
from omnicrm.store.state import StateStore, utcnow
from tests.channels.gateways import Gateway, Reply
from tests.consent.conftest import publish_identity
from tests.console.accounts import PASSWORD, csrf_of, fresh_client, log_in
from tests.inbox.conftest import counts

PHONE, NICK, WEIBO = "13912345678", "lina_88", "1850012345"


@dataclass
class Desk:
    app: TestClient
    state: StateStore
    settings: Settings
    gateway: Gateway
    agent: int
    clients: dict[str, TestClient] = field(default_factory=dict)

    def as_role(self, role: str, lang: str = "en") -> TestClient:
        """A client logged in as the role's user, reading the pages in ``lang``."""
        if (role, lang) not in self.clients:
            client = log_in(fresh_client(self.app), role.replace("_", "-"))
            client.get(f"/console/lang/{lang}?next=/console/")
            self.clients[role, lang] = client
        return self.clients[role, lang]

    def post(self, client: TestClient, path: str, **data: str) -> Response:
        return client.post(path, data={"csrf_token": csrf_of(client, "/console/inbox"), **data},
                           follow_redirects=False)  # fmt: skip


@pytest.fixture
def desk(state: StateStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    monkeypatch.chdir(tmp_path)
    with Gateway() as gateway:
        gateway.default("/messages", Reply(200, {"message_id": "gw-1"}))
        settings = load_settings(
            data_dir=tmp_path / "data", state_url=state.url, loader_interval_seconds=0, campaign_interval_seconds=0,
            shop_name="言木旗舰店",
            inbox={"gateways": {"wangwang": {"base_url": gateway.url, "secret": "gateway-secret", "max_attempts": 1}},
                   "worker_interval_seconds": 0},
        )  # fmt: skip
        publish_identity(settings.derived_dir, [
            (42, f"phone::+86{PHONE}"), (42, f"marketplace_nick:taobao:{NICK}"), (42, f"marketplace_nick:weibo:{WEIBO}"),
        ])  # fmt: skip
        for role in ROLES:
            create_user(state, role.replace("_", "-"), PASSWORD, role, display_name=f"{role} user")
        agent = agents.create_agent(state, "小美", username="service-agent")
        agents.create_team(state, "service", members=[agent.id])
        sla.put_policy(state, channel="*", priority="*", first_response_minutes=30, resolution_minutes=480, by="test")
        with TestClient(create_app(settings), base_url="https://testserver") as app:
            yield Desk(app, state, settings, gateway, agent.id)


def arrive(desk: Desk, channel: str, sender: dict[str, str], text: str, minutes_ago: float = 0, **extra: str) -> int:
    """A customer message received ``minutes_ago``; its conversation's id."""
    got = receive(desk.state, Inbound(channel=channel, sender=sender, text=text, **extra),  # type: ignore[arg-type]
                  config=inbox_config(desk.settings), snapshot=DerivedStore(desk.settings.derived_dir).current(
                      "identity"), now=utcnow() - timedelta(minutes=minutes_ago))  # fmt: skip
    return got.conversation.id


def rows(html: str) -> list[tuple[int, str]]:
    """The queue's rows in order: (conversation id, level)."""
    return [(int(i), level) for i, level in re.findall(r'data-conversation="(\d+)" data-level="(\w+)"', html)]


def test_the_queue_orders_by_risk_and_warns_before_a_breach(desk: Desk) -> None:
    fresh = arrive(desk, "sms", {"phone": "13800000001"}, "什么时候发货")
    late = arrive(desk, "email", {"email": "wang@example.cn"}, "Where is my parcel?", minutes_ago=40)
    close = arrive(desk, "jd_im", {"pin": "jd_zhang"}, "能开发票吗", minutes_ago=25)
    agent = desk.as_role("service_agent")
    page = agent.get("/console/inbox")
    assert page.status_code == 200
    assert rows(page.text) == [(late, "breached"), (close, "warning"), (fresh, "ok")]
    assert re.search(rf'id="row-{late}".*?overdue 10 min', page.text, re.S)
    assert re.search(rf'id="row-{close}".*?due in 5 min', page.text, re.S)
    assert re.search(rf'id="row-{fresh}".*?due in 30 min', page.text, re.S)
    assert 'hx-trigger="every 30s"' in page.text and "Conversations: 3" in page.text

    partial = agent.get("/console/inbox", headers={"HX-Request": "true"})  # the 30-second refresh: the table only
    assert partial.text.lstrip().startswith('<div id="queue"') and "<html" not in partial.text
    assert rows(agent.get("/console/inbox?channel=email").text) == [(late, "breached")]
    assert [i for i, _ in rows(agent.get("/console/inbox?mine=true").text)] == [late, close, fresh]
    assert rows(agent.get("/console/inbox?status=closed").text) == []
    assert 'id="queue-empty"' in agent.get("/console/inbox?status=pending").text
    admin = desk.as_role("admin")
    assert "You are not an inbox agent yet" in admin.get("/console/inbox?mine=true").text  # no agent of theirs

    chinese = desk.as_role("service_agent", "zh-CN").get("/console/inbox")
    assert "已超时 10 分钟" in chinese.text and "还剩 5 分钟" in chinese.text and "客服收件箱" in chinese.text

    warned = agent.get(f"/console/inbox/{close}")
    assert 'id="sla-alert-response"' in warned.text and "SLA warning: the response target is close" in warned.text

    bad = agent.get("/console/inbox?channel=fax&status=lost")
    assert bad.status_code == 400 and "No channel fax" in bad.text and "No status lost" in bad.text
    assert agent.get("/console/inbox/999999").status_code == 404
    for role in ("marketer", "store_clerk"):
        assert desk.as_role(role).get("/console/inbox").status_code == 403
    assert "/console/inbox" not in desk.as_role("marketer").get("/console/customers").text  # no nav entry
    assert 'href="/console/inbox"' in agent.get("/console/customers").text


def test_an_agent_answers_three_channels_with_a_quick_reply_and_a_note(desk: Desk) -> None:
    key = create_api_key(desk.state, "desk", ["inbox:write"])
    api = {"Authorization": f"Bearer {key}"}
    for channel, sender, text in (("sms", {"phone": PHONE}, "我的快递到哪了"),
                                  ("weibo", {"uid": WEIBO}, "私信你了，看一下"),
                                  ("wangwang", {"nick": NICK}, "旺旺也问一下：快递到哪了？")):  # fmt: skip
        res = desk.app.post("/api/inbox/messages", headers=api,
                            json={"channel": channel, "sender": sender, "text": text, "name": "李娜"})  # fmt: skip
        assert res.status_code == 201, res.text
    conversation = res.json()["conversation"]["id"]
    english = quick_replies.put_quick_reply(
        desk.state,
        shortcut="where",
        language="en",
        title="Parcel on its way",
        text="Hi {customer_name}, order {order_id} left our warehouse.",
        by="t",
    )
    quick_replies.put_quick_reply(desk.state, shortcut="where", language="zh", title="包裹在路上",
                                  text="{customer_name}您好，{shop_name}的包裹已发出", by="t")  # fmt: skip

    agent = desk.as_role("service_agent")
    page = agent.get(f"/console/inbox/{conversation}")
    assert page.status_code == 200
    shown = re.findall(r'data-channel="(\w+)" data-direction="in"', page.text)
    assert shown == ["sms", "weibo", "wangwang"]
    assert "Send on Wangwang" in page.text and 'id="customer-360" data-customer="42"' in page.text
    assert "+8613912345678" in page.text  # agents may see identifiers in full
    assert "Parcel on its way" in page.text and "包裹在路上" not in page.text  # quick replies in the user's language

    box = agent.get(f"/console/inbox/{conversation}/quick-replies/{english.id}", params={"text": "Sorry for the wait."})
    assert box.text.strip() == ('<textarea id="reply-text" name="text" rows="5" maxlength="4000" placeholder="Write to '
                                'the customer…">Sorry for the wait.\nHi 李娜, order {order_id} left our warehouse.'
                                "</textarea>")  # fmt: skip
    chinese = desk.as_role("service_agent", "zh-CN")
    zh_page = chinese.get(f"/console/inbox/{conversation}")
    zh_id = re.search(r'/quick-replies/(\d+)"', zh_page.text)
    assert zh_id and "通过旺旺发送" in zh_page.text
    assert (
        "李娜您好，言木旗舰店的包裹已发出"
        in chinese.get(f"/console/inbox/{conversation}/quick-replies/{zh_id[1]}").text
    )

    before = counts(desk.state)
    unfilled = desk.post(agent, f"/console/inbox/{conversation}/replies", idempotency_key="k1",
                         text="Hi 李娜, order {order_id} left our warehouse.")  # fmt: skip
    assert unfilled.status_code == 400
    assert "The reply still has {order_id} to fill in." in unfilled.text
    assert counts(desk.state) == before and desk.gateway.to("/messages") == []

    text = "Hi 李娜, order E1234 left our warehouse."
    sent = desk.post(agent, f"/console/inbox/{conversation}/replies", idempotency_key="k2", text=text)
    assert sent.status_code == 303
    again = desk.post(agent, f"/console/inbox/{conversation}/replies", idempotency_key="k2", text=text)  # sent twice
    assert again.headers["location"] == sent.headers["location"]
    [call] = desk.gateway.to("/messages")
    assert (call.json()["channel"], call.json()["to"], call.json()["text"]) == ("wangwang", NICK, text)
    outcome = agent.get(sent.headers["location"])
    assert 'id="reply-outcome" data-delivery="sent"' in outcome.text and "Sent on Wangwang." in outcome.text

    noted = desk.post(agent, f"/console/inbox/{conversation}/notes", text="顾客是老会员，优先处理")
    assert noted.status_code == 303
    after = agent.get(f"/console/inbox/{conversation}").text
    assert re.search(r'class="msg note"[^>]*data-channel="internal".*?Internal note — not sent.*?顾客是老会员', after,
                     re.S)  # fmt: skip
    assert len(desk.gateway.to("/messages")) == 1  # the note went nowhere
    empty = desk.post(agent, f"/console/inbox/{conversation}/notes", text="  ")
    assert empty.status_code == 400 and "the note is empty" in empty.text

    assert desk.post(agent, f"/console/inbox/{conversation}/priority", priority="urgent").status_code == 303
    assert desk.post(agent, f"/console/inbox/{conversation}/assign", agent="queue").status_code == 303
    assert "Agent: unassigned" in agent.get(f"/console/inbox/{conversation}").text
    assert desk.post(agent, f"/console/inbox/{conversation}/assign", agent="me").status_code == 303
    wrong = desk.post(agent, f"/console/inbox/{conversation}/priority", priority="asap")
    assert wrong.status_code == 400 and "unknown priority &#39;asap&#39;" in wrong.text
    assert desk.post(agent, f"/console/inbox/{conversation}/status", status="closed").status_code == 303

    before = counts(desk.state)
    refused = desk.post(agent, f"/console/inbox/{conversation}/replies", idempotency_key="k3", text="还有别的问题吗")
    assert refused.status_code == 409
    assert f"conversation {conversation} is closed: a reply cannot be sent" in refused.text
    assert "还有别的问题吗</textarea>" in refused.text  # what was typed is kept
    assert counts(desk.state) == before and len(desk.gateway.to("/messages")) == 1
    final = agent.get(f"/console/inbox/{conversation}").text
    assert 'data-status="closed"' in final and "Priority: urgent" in final and "Agent: 小美" in final

    admin = desk.as_role("admin")  # a user without an agent becomes one when they first answer, not before
    closed = desk.post(admin, f"/console/inbox/{conversation}/replies", idempotency_key="k4", text="Anything else?")
    assert closed.status_code == 409 and [a.username for a in agents.list_agents(desk.state)] == ["service-agent"]
    assert desk.post(admin, f"/console/inbox/{conversation}/status", status="open").status_code == 303
    assert desk.post(admin, f"/console/inbox/{conversation}/replies", idempotency_key="k4", text="Anything else?"
                     ).status_code == 303  # fmt: skip
    assert [a.username for a in agents.list_agents(desk.state)] == ["service-agent", "admin"]
    assert desk.gateway.to("/messages")[-1].json()["text"] == "Anything else?"


def test_the_sla_report_by_agent_channel_and_day(desk: Desk) -> None:
    answered = arrive(desk, "wangwang", {"nick": NICK}, "在吗", minutes_ago=12)
    arrive(desk, "email", {"email": "wang@example.cn"}, "Hello?", minutes_ago=45)
    agent = desk.as_role("service_agent")
    assert desk.post(agent, f"/console/inbox/{answered}/replies", idempotency_key="r1",
                     text="在的").status_code == 303  # fmt: skip
    assert agent.get("/console/inbox/reports").status_code == 403  # reports are for managers

    admin = desk.as_role("admin")
    page = admin.get("/console/inbox/reports")
    assert page.status_code == 200
    table = dict(re.findall(r'<tr data-group="(\w*)"[^>]*>\s*<th>([^<]+)</th>', page.text))
    assert table == {str(desk.agent): "小美", "all": "All"}
    first = re.search(r'<tr data-group="all".*?</tr>', page.text, re.S)
    assert first
    cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', first[0])
    assert cells[:3] == ["2", "1", "12.0 min"] and cells[-2:] == ["1", "0"]  # one reply 12 minutes in; one late
    by_channel = admin.get("/console/inbox/reports?by=channel").text
    assert re.findall(r'<tr data-group="(\w+)"', by_channel) == ["email", "wangwang", "all"]
    chart = admin.get("/console/inbox/reports/chart?by=channel").json()
    assert chart["xAxis"]["data"] == ["E-mail", "Wangwang"]
    assert chart["series"][0]["data"] == [None, 12.0] and chart["series"][2]["data"] == [1, 0]
    assert "<th>旺旺</th>" in desk.as_role("admin", "zh-CN").get("/console/inbox/reports?by=channel").text

    bad = admin.get("/console/inbox/reports?start=2026-13-01")
    assert bad.status_code == 400 and "2026-13-01 is not a date." in bad.text
    backwards = admin.get("/console/inbox/reports?start=2026-11-10&end=2026-11-01")
    assert backwards.status_code == 400 and "The end date is before the start date." in backwards.text
    assert admin.get("/console/inbox/reports/chart?by=week").status_code == 400
    empty = admin.get("/console/inbox/reports?start=2020-01-01&end=2020-01-31")
    assert 'id="report-empty"' in empty.text
