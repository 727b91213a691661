"""Assignment on SQLite and PostgreSQL: teams by channel, round robin by skill and capacity (also when conversations
arrive together), manual reassignment; quick replies in zh and en with placeholders."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from omnicrm.errors import Conflict, InputError, NotFound
from omnicrm.inbox import agents, quick_replies
from omnicrm.inbox.assignment import assign, assign_waiting
from omnicrm.inbox.conversations import activity, set_status
from omnicrm.inbox.messages import receive
from omnicrm.inbox.senders import Inbound
from omnicrm.store.state import StateStore
from tests.inbox.conftest import cn, counts
from tests.loyalty.checks import run


def sms(i: int, text: str = "你好") -> Inbound:
    return Inbound("sms", {"phone": f"1391234{i:04d}"}, text)


def test_round_robin_within_the_team_by_skill_and_capacity(state: StateStore) -> None:
    zh1 = agents.create_agent(state, "小美", channels=["sms", "wangwang"], languages=["zh"])
    en1 = agents.create_agent(state, "Amy", channels=["sms"], languages=["en"])
    zh2 = agents.create_agent(state, "小王", languages=["zh"], max_open=2)
    agents.create_team(state, "marketplace", channels=["wangwang", "jd_im"], members=[zh2.id])
    agents.create_team(state, "service", members=[zh1.id, en1.id, zh2.id])

    got = [receive(state, sms(i, "快递到哪了"), now=cn(12, 9, i)).conversation for i in range(4)]
    assert [c.agent_id for c in got] == [zh1.id, zh2.id, zh1.id, zh2.id]  # Amy writes English only
    english = receive(state, sms(10, "Where is my parcel?"), now=cn(12, 9, 10)).conversation
    assert english.agent_id == en1.id
    full = receive(state, sms(11, "还有货吗"), now=cn(12, 9, 11)).conversation
    assert full.agent_id == zh1.id  # 小王 holds two already
    market = receive(state, Inbound("wangwang", {"nick": "tb_buyer_01"}, "发货了吗"), now=cn(12, 9, 12)).conversation
    assert (market.team_id, market.agent_id) == (1, None)  # the marketplace team's only agent is full: queue
    set_status(state, got[1].id, "closed", by="test", now=cn(12, 9, 20))
    assert assign_waiting(state, now=cn(12, 9, 21)) == 1
    assert [a for a in activity(state, market.id) if a["action"] == "assigned"][-1][
        "detail"
    ] == f"team 1, agent {zh2.id}"


def test_conversations_arriving_together_are_spread_evenly(state: StateStore) -> None:
    team = [agents.create_agent(state, f"agent {i}").id for i in range(3)]
    agents.create_team(state, "all", members=team)
    results = run(12, lambda i: receive(state, sms(i), now=cn(12, 9)))
    assert [r for r in results if isinstance(r, Exception)] == []
    assert Counter(r.conversation.agent_id for r in results) == {a: 4 for a in team}


def test_manual_reassignment(state: StateStore) -> None:
    a = agents.create_agent(state, "小美")
    b = agents.create_agent(state, "Amy")
    c = receive(state, sms(1), now=cn(12, 9)).conversation
    assert c.agent_id is None  # no team: the queue
    assert assign(state, c.id, agent_id=b.id, by="lead", now=cn(12, 9, 1)).agent_id == b.id
    agents.update_agent(state, a.id, {"active": False})
    with pytest.raises(Conflict, match="is not active") as err:
        assign(state, c.id, agent_id=a.id, by="lead")
    assert err.value.problems[0].field == "agent_id"
    with pytest.raises(NotFound, match="agent 99 does not exist"):
        assign(state, c.id, agent_id=99, by="lead")
    assert assign(state, c.id, by="lead", now=cn(12, 9, 2)).agent_id is None
    set_status(state, c.id, "closed", by="lead", now=cn(12, 9, 3))
    before = counts(state)
    with pytest.raises(Conflict, match="is closed"):
        assign(state, c.id, agent_id=b.id, by="lead")
    assert counts(state) == before


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: agents.create_agent(s, " "), "name"),
        (lambda s: agents.create_agent(s, "x", channels=["qq"]), "channels"),
        (lambda s: agents.create_agent(s, "x", languages=["fr"]), "languages"),
        (lambda s: agents.create_agent(s, "x", max_open=0), "max_open"),
        (lambda s: agents.create_team(s, "t", members=[42]), "agent_id"),
    ],
)
def test_bad_agents_and_teams_are_refused_by_name(state: StateStore, call: Any, field: str) -> None:
    with pytest.raises((InputError, NotFound)) as err:
        call(state)
    assert err.value.problems[0].field == field
    assert agents.list_agents(state) == [] and agents.list_teams(state) == []


def test_quick_replies_in_two_languages_with_placeholders(state: StateStore) -> None:
    zh = quick_replies.put_quick_reply(state, shortcut="shipping", language="zh", title="发货时间",
                                       text="{customer_name}您好，订单{order_id}将于48小时内发货。——{shop_name} {agent_name}",
                                       by="lead")  # fmt: skip
    en = quick_replies.put_quick_reply(state, shortcut="shipping", language="en", title="Shipping",
                                       text="Hi {customer_name}, order {order_id} ships within 48 hours.", by="lead")  # fmt: skip
    assert zh.placeholders == ("customer_name", "order_id", "shop_name", "agent_name")
    known = {"customer_name": "李娜", "agent_name": "小美", "shop_name": "言木旗舰店"}
    assert (
        quick_replies.render(zh, {"order_id": "T1024"}, known)
        == "李娜您好，订单T1024将于48小时内发货。——言木旗舰店 小美"
    )
    assert quick_replies.render(en, {"order_id": "T1024", "customer_name": "Lina"}, known) == (
        "Hi Lina, order T1024 ships within 48 hours."
    )
    with pytest.raises(InputError, match=r"needs a value for \{order_id\}") as err:
        quick_replies.render(en, {}, known)
    assert err.value.problems[0].field == "values.order_id"
    replaced = quick_replies.put_quick_reply(state, shortcut="shipping", language="en", title="Shipping",
                                             text="Order {order_id} ships today. {{thanks}}", by="lead")  # fmt: skip
    assert replaced.id == en.id and quick_replies.render(replaced, {"order_id": "9"}) == "Order 9 ships today. {thanks}"
    assert [q.language for q in quick_replies.list_quick_replies(state)] == ["en", "zh"]
    for text in ("{order.id}", "{0}", "{name!r}", "unclosed {"):
        with pytest.raises(InputError) as bad:
            quick_replies.put_quick_reply(state, shortcut="bad", language="zh", title="t", text=text, by="lead")
        assert bad.value.problems[0].field == "text"
    quick_replies.delete_quick_reply(state, zh.id)
    with pytest.raises(NotFound):
        quick_replies.delete_quick_reply(state, zh.id)
