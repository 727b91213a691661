"""SLAs on SQLite and PostgreSQL with a controlled clock: the queue reorders as time passes and pauses outside
business hours, warnings come once per clock and level with a log line, and the report equals a hand count over a
fixture spanning a weekend, a public holiday and a make-up working day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from omnicrm.errors import InputError
from omnicrm.inbox import agents, sla
from omnicrm.inbox.assignment import assign
from omnicrm.inbox.config import inbox_config
from omnicrm.inbox.conversations import set_priority, set_status
from omnicrm.inbox.messages import receive
from omnicrm.inbox.outbound import Outbox
from omnicrm.inbox.queue import live_queue, record_warnings, warnings
from omnicrm.inbox.replies import reply
from omnicrm.inbox.reports import nearest_rank, sla_report
from omnicrm.inbox.senders import Inbound
from omnicrm.store.state import StateStore
from tests.channels.gateways import Gateway, Reply
from tests.inbox.conftest import cn, set_up_sla


def order(state: StateStore, at: datetime) -> list[tuple[int, float | None]]:
    return [(i.conversation.id, None if i.risk is None else round(i.risk, 3)) for i in live_queue(state, now=at)]


def test_the_queue_reorders_as_time_passes(state: StateStore) -> None:
    set_up_sla(state)
    sla.put_policy(state, channel="wechat_oa", priority="*", first_response_minutes=10, resolution_minutes=240,
                   calendar="office", by="test")  # fmt: skip
    mail = receive(state, Inbound("email", {"email": "li.na@qq.com"}, "发票什么时候开"), now=cn(12, 9, 0)).conversation
    chat = receive(state, Inbound("wechat_oa", {"openid": "oAbCdEfGhIjKlMnOpQrStUvWxYz0"}, "在吗", account="wx_oa"),
                   now=cn(12, 9, 12)).conversation  # fmt: skip
    # 09:14: the email has used 14 of 30 minutes, the chat 2 of 10
    assert order(state, cn(12, 9, 14)) == [(mail.id, 0.467), (chat.id, 0.2)]
    # 09:20: the chat has used 8 of its 10 minutes and goes first
    assert order(state, cn(12, 9, 20)) == [(chat.id, 0.8), (mail.id, 0.667)]
    late = receive(state, Inbound("sms", {"phone": "13912345678"}, "快递到哪了"), now=cn(12, 11, 50)).conversation
    # over lunch no clock moves: 12:00 and 12:59 rank and score alike
    noon = order(state, cn(12, 12, 0))
    assert noon == order(state, cn(12, 12, 59))
    assert noon[-1] == (late.id, round(10 / 30, 3))


def test_conversations_without_an_sla_wait_after_those_with_one(state: StateStore) -> None:
    sla.put_policy(state, channel="sms", priority="*", first_response_minutes=30, resolution_minutes=60, by="test")
    free = receive(state, Inbound("weibo", {"uid": "1850012345"}, "转发抽奖"), now=cn(12, 9, 0)).conversation
    timed = receive(state, Inbound("sms", {"phone": "13912345678"}, "在吗"), now=cn(12, 9, 5)).conversation
    assert free.response_due_at is None and timed.response_due_at == cn(12, 9, 35)  # round the clock
    assert order(state, cn(12, 9, 6)) == [(timed.id, round(1 / 30, 3)), (free.id, None)]


def test_raising_the_priority_moves_a_conversation_up(state: StateStore) -> None:
    set_up_sla(state)
    sla.put_policy(state, channel="*", priority="urgent", first_response_minutes=5, resolution_minutes=60,
                   calendar="office", by="test")  # fmt: skip
    a = receive(state, Inbound("sms", {"phone": "13912345678"}, "一"), now=cn(12, 9, 0)).conversation
    b = receive(state, Inbound("sms", {"phone": "13912345679"}, "二"), now=cn(12, 9, 2)).conversation
    assert [x for x, _ in order(state, cn(12, 9, 4))] == [a.id, b.id]
    raised = set_priority(state, b.id, "urgent", by="test", now=cn(12, 9, 4))
    assert (raised.response_due_at, raised.resolution_due_at) == (cn(12, 9, 7), cn(12, 10, 2))
    assert order(state, cn(12, 9, 4)) == [(b.id, 0.4), (a.id, round(4 / 30, 3))]


def test_warnings_come_once_per_clock_and_level(state: StateStore) -> None:
    set_up_sla(state, response=10)
    c = receive(state, Inbound("sms", {"phone": "13912345678"}, "在吗"), now=cn(12, 9, 0)).conversation
    assert warnings(state, now=cn(12, 9, 7), warn_at=0.8) == []
    with capture_logs() as logs:
        first = record_warnings(state, now=cn(12, 9, 8), warn_at=0.8)
        again = record_warnings(state, now=cn(12, 9, 9), warn_at=0.8)
        breached = record_warnings(state, now=cn(12, 9, 10), warn_at=0.8)
        quiet = record_warnings(state, now=cn(12, 9, 30), warn_at=0.8)
    assert [(i.conversation.id, k.kind, k.level(0.8), k.due_at) for i, k in first] == [
        (c.id, "response", "warning", cn(12, 9, 10))
    ]
    assert again == [] and quiet == []
    assert [(k.kind, k.level(0.8)) for _, k in breached] == [("response", "breached")]
    lines = [(e["event"], e["conversation_id"], e["clock"], e["business_minutes_left"]) for e in logs
             if e["log_level"] == "warning"]  # fmt: skip
    assert lines == [("SLA about to be breached", c.id, "response", 2.0), ("SLA breached", c.id, "response", 0.0)]


@pytest.fixture
def providers() -> Iterator[Gateway]:
    with Gateway() as running:
        running.default("/", Reply(200, {"Code": "OK", "Message": "OK", "BizId": "biz-1", "RequestId": "r"}))
        running.default("/messages", Reply(200, {"message_id": "ww-1"}))
        yield running


def _outbox(gateway: Gateway) -> Outbox:
    channels = {"aliyun": {"kind": "sms", "base_url": gateway.url,
                           "credentials": {"access_key_id": "id", "access_key_secret": "secret"},
                           "options": {"sign_name": "言木", "text_template_code": "SMS_100"}}}  # fmt: skip
    config = inbox_config({"reply_channels": {"sms": "aliyun"},
                           "gateways": {"wangwang": {"base_url": gateway.url, "secret": "gateway-secret"}}})  # fmt: skip
    return Outbox(channels, config)


def _fixture(state: StateStore, outbox: Outbox) -> dict[str, Any]:
    """Five conversations with known times (see the hand count in the test)."""
    set_up_sla(state, response=30, resolution=480)
    a = agents.create_agent(state, "小美").id
    b = agents.create_agent(state, "Amy").id

    def conversation(channel: str, sender: dict[str, str], at: datetime, agent: int) -> int:
        got = receive(state, Inbound(channel, sender, "您好，请问…"), now=at)
        assign(state, got.conversation.id, agent_id=agent, by="test", now=at)
        return got.conversation.id

    def answer(cid: int, agent: int, at: datetime) -> None:
        assert reply(state, cid, agent, "好的", outbox=outbox, idempotency_key=f"{cid}-{at}", now=at).delivered

    c1 = conversation("sms", {"phone": "13900000001"}, cn(9, 17, 40), a)  # Friday
    answer(c1, a, cn(10, 9, 10))  # the make-up Saturday: 20 + 10 = 30 minutes, on target
    set_status(state, c1, "closed", by="test", now=cn(10, 11, 40))  # 20 + 160 = 180 minutes
    c2 = conversation("wangwang", {"nick": "tb_buyer_two"}, cn(10, 10, 0), b)
    answer(c2, b, cn(10, 10, 45))  # 45 minutes: late; still open past its resolution due (Mon 10:00)
    c3 = conversation("email", {"email": "wang.fang@163.com"}, cn(11, 20, 0), a)  # Sunday night, never answered
    c4 = conversation("sms", {"phone": "13900000004"}, cn(30, 17, 50, month=9), b)  # Wednesday before the holiday
    answer(c4, b, cn(2, 9, 15))  # 10 + 15 = 25 minutes
    set_status(state, c4, "closed", by="test", now=cn(2, 17, 50))  # 10 + 180 + 290 = 480 minutes: on target
    c5 = conversation("sms", {"phone": "13900000005"}, cn(12, 9, 0), a)  # Monday
    answer(c5, a, cn(12, 9, 5))
    set_status(state, c5, "closed", by="test", now=cn(12, 9, 20))
    return {"agents": (a, b), "ids": (c1, c2, c3, c4, c5)}


def test_the_report_equals_a_hand_count(state: StateStore, providers: Gateway) -> None:
    with _outbox(providers) as outbox:
        made = _fixture(state, outbox)
    a, b = made["agents"]
    span: dict[str, Any] = {"start": cn(28, 0, month=9), "end": cn(13, 0), "now": cn(12, 10, 30)}
    m = 60  # seconds in a minute

    def rows(by: str) -> dict[Any, tuple[Any, ...]]:
        return {r.group: (r.conversations, r.responded, r.resolved, r.first_response_p50_s, r.first_response_p90_s,
                          r.resolution_p50_s, r.resolution_p90_s, r.response_breaches, r.resolution_breaches)
                for r in sla_report(state, by=by, **span)}  # fmt: skip

    assert rows("agent") == {
        a: (3, 2, 2, 5 * m, 30 * m, 20 * m, 180 * m, 1, 0),  # c1, c3 (unanswered past 09:30 Monday), c5
        b: (2, 2, 1, 25 * m, 45 * m, 480 * m, 480 * m, 1, 1),  # c2 (late answer, open past due), c4
        "all": (5, 4, 3, 25 * m, 45 * m, 180 * m, 480 * m, 2, 1),
    }
    assert rows("channel") == {
        "email": (1, 0, 0, None, None, None, None, 1, 0),
        "sms": (3, 3, 3, 25 * m, 30 * m, 180 * m, 480 * m, 0, 0),
        "wangwang": (1, 1, 0, 45 * m, 45 * m, None, None, 1, 1),
        "all": (5, 4, 3, 25 * m, 45 * m, 180 * m, 480 * m, 2, 1),
    }
    days = rows("day")
    assert list(days) == ["2026-09-30", "2026-10-09", "2026-10-10", "2026-10-11", "2026-10-12", "all"]
    assert days["2026-10-11"] == (1, 0, 0, None, None, None, None, 1, 0)
    # an hour earlier c3 was not yet late and c2 not yet past its resolution due
    earlier = {r.group: (r.response_breaches, r.resolution_breaches)
               for r in sla_report(state, by="agent", **{**span, "now": cn(12, 9, 25)})}  # fmt: skip
    assert earlier == {a: (0, 0), b: (1, 0), "all": (1, 0)}


def test_nearest_rank_and_bad_report_requests() -> None:
    assert nearest_rank([], 50) is None
    assert [nearest_rank([4.0, 1.0, 3.0, 2.0], p) for p in (1, 25, 50, 51, 90, 100)] == [1.0, 1.0, 2.0, 3.0, 4.0, 4.0]
    with pytest.raises(InputError) as err:
        sla_report(None, start=cn(2, 0), end=cn(1, 0))  # type: ignore[arg-type]
    assert err.value.problems[0].field == "end"
    with pytest.raises(InputError) as err:
        sla_report(None, start=cn(1, 0), end=cn(2, 0), by="week")  # type: ignore[arg-type]
    assert err.value.problems[0].field == "by"


def test_bad_policies_are_refused_by_name(state: StateStore) -> None:
    for kwargs, field in [
        ({"channel": "qq"}, "channel"),
        ({"priority": "critical"}, "priority"),
        ({"first_response_minutes": 0}, "first_response_minutes"),
        ({"calendar": "nowhere"}, "calendar"),
    ]:
        args: dict[str, Any] = {"channel": "*", "priority": "*", "first_response_minutes": 30,
                                "resolution_minutes": 480, **kwargs}  # fmt: skip
        with pytest.raises(Exception) as err:
            sla.put_policy(state, **args, by="test")
        assert err.value.problems[0].field == field  # type: ignore[attr-defined]
    assert sla.list_policies(state) == []
