"""Replies out, on SQLite and PostgreSQL, through real local servers: a marketplace IM gateway (signed JSON), SMTP;
once per idempotency key even when retried at once; refused on a closed conversation or an unset channel with nothing
written; a failed delivery keeps the clock running; the first reply fixes the first-response time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from omnicrm.errors import Conflict, InputError
from omnicrm.inbox import agents
from omnicrm.inbox.config import inbox_config
from omnicrm.inbox.conversations import get_conversation, set_status
from omnicrm.inbox.messages import list_messages, note, receive
from omnicrm.inbox.outbound import Outbox, signature
from omnicrm.inbox.replies import reply, settle_stale
from omnicrm.inbox.senders import Inbound
from omnicrm.store.schema import inbox_messages
from omnicrm.store.state import StateStore
from tests.channels.gateways import Gateway, Reply
from tests.inbox.conftest import cn, counts, set_up_sla
from tests.loyalty.checks import run
from tests.mail import Inbox

SECRET = "wangwang-gateway-secret"


@pytest.fixture
def im() -> Iterator[Gateway]:
    with Gateway() as running:
        running.default("/messages", Reply(200, {"message_id": "ww-out-1"}))
        yield running


def outbox_for(im: Gateway, smtp_port: int | None = None, attempts: int = 2) -> Outbox:
    channels: dict[str, Any] = {}
    reply_channels = {}
    if smtp_port is not None:
        channels["smtp"] = {"kind": "email", "base_url": f"smtp://127.0.0.1:{smtp_port}",
                            "options": {"from_address": "service@yanmu.cn", "from_name": "言木客服"}}  # fmt: skip
        reply_channels["email"] = "smtp"
    config = inbox_config({"gateways": {"wangwang": {"base_url": im.url, "secret": SECRET, "max_attempts": attempts}},
                           "reply_channels": reply_channels})  # fmt: skip
    return Outbox(channels, config)


def start(state: StateStore) -> tuple[int, int]:
    """A Wangwang conversation at Monday 09:00 and an agent; returns (conversation id, agent id)."""
    set_up_sla(state)
    agent = agents.create_agent(state, "小美", channels=["wangwang", "email"], languages=["zh"])
    got = receive(state, Inbound("wangwang", {"nick": "tb8371920454"}, "双11的连衣裙什么时候发货？"), now=cn(12, 9))
    return got.conversation.id, agent.id


def test_a_reply_goes_out_through_the_gateway_and_fixes_the_first_response(state: StateStore, im: Gateway) -> None:
    conversation_id, agent_id = start(state)
    note(state, conversation_id, "老顾客，语气客气点", agent_id=agent_id, author="小美", now=cn(12, 9, 1))
    with outbox_for(im) as outbox:
        done = reply(state, conversation_id, agent_id, "亲，预售款11月15日前发货哦", outbox=outbox,
                     idempotency_key="r-1", then="pending", now=cn(12, 11, 50))  # fmt: skip
    assert done.delivered and not done.repeated
    assert (done.message.delivery, done.message.provider_message_id, done.message.channel) == ("sent", "ww-out-1",
                                                                                                 "wangwang")  # fmt: skip
    [sent] = im.to("/messages")  # the internal note never left
    body = sent.json()
    assert body == {"channel": "wangwang", "account": "", "to": "tb8371920454", "text": "亲，预售款11月15日前发货哦",
                    "attachments": [], "conversation_id": str(conversation_id),
                    "idempotency_key": f"inbox-{conversation_id}:contact-1:reply-{done.message.id}"}  # fmt: skip
    assert sent.headers["idempotency-key"] == body["idempotency_key"]
    assert sent.headers["x-omnicrm-signature"] == signature(SECRET, sent.body)
    c = done.conversation
    # 09:00 → 11:50 Monday: 170 business minutes against a 30-minute target
    assert (c.first_response_at, c.first_response_s, c.first_response_breached) == (cn(12, 11, 50), 170 * 60, True)
    assert (c.first_response_by, c.status, c.awaiting_since, c.response_due_at) == (agent_id, "pending", None, None)


def test_the_same_key_sends_once_even_all_at_once(state: StateStore, im: Gateway) -> None:
    conversation_id, agent_id = start(state)
    with outbox_for(im) as outbox:
        results = run(8, lambda i: reply(state, conversation_id, agent_id, "马上为您查询", outbox=outbox,
                                         idempotency_key="same-key", now=cn(12, 9, 10)))  # fmt: skip
        assert [r for r in results if isinstance(r, Exception)] == []
        assert len(im.to("/messages")) == 1
        assert len({r.message.id for r in results}) == 1 and sum(not r.repeated for r in results) == 1
        again = reply(state, conversation_id, agent_id, "马上为您查询", outbox=outbox, idempotency_key="same-key")
    assert again.repeated and len(im.to("/messages")) == 1
    assert [m.direction for m in list_messages(state, conversation_id)] == ["in", "out"]


def test_a_closed_conversation_refuses_a_reply_and_nothing_changes(state: StateStore, im: Gateway) -> None:
    conversation_id, agent_id = start(state)
    set_status(state, conversation_id, "closed", by="test", now=cn(12, 10))
    before = counts(state)
    with outbox_for(im) as outbox, pytest.raises(Conflict) as err:
        reply(state, conversation_id, agent_id, "还在吗", outbox=outbox, idempotency_key="k", now=cn(12, 10, 5))
    assert err.value.message == f"conversation {conversation_id} is closed: a reply cannot be sent"
    assert err.value.problems[0].field == "status" and err.value.status == 409
    assert counts(state) == before and im.requests == []


def test_bad_replies_are_refused_by_name(state: StateStore, im: Gateway) -> None:
    conversation_id, agent_id = start(state)
    before = counts(state)
    with outbox_for(im) as outbox:
        for kwargs, field in [
            ({"text": "  "}, "text"),
            ({"idempotency_key": ""}, "idempotency_key"),
            ({"then": "archived"}, "then"),
        ]:
            args: dict[str, Any] = {"text": "好的", "idempotency_key": "k", **kwargs}
            with pytest.raises(InputError) as err:
                reply(state, conversation_id, agent_id, args.pop("text"), outbox=outbox, **args)
            assert err.value.problems[0].field == field
        with pytest.raises(Exception, match="agent 99 does not exist"):
            reply(state, conversation_id, 99, "好的", outbox=outbox, idempotency_key="k2")
        empty_outbox = Outbox({}, inbox_config({}))
        with pytest.raises(Conflict, match="replies on wangwang are not set up") as err2:
            reply(state, conversation_id, agent_id, "好的", outbox=empty_outbox, idempotency_key="k3")
        assert err2.value.problems[0].field == "channel"
    assert counts(state) == before and im.requests == []


def test_a_failed_delivery_keeps_the_clock_running(state: StateStore, im: Gateway) -> None:
    conversation_id, agent_id = start(state)
    im.script("/messages", Reply(503, {"error": "busy"}), Reply(503, {"error": "busy"}))
    with outbox_for(im) as outbox:
        failed = reply(state, conversation_id, agent_id, "您好", outbox=outbox, idempotency_key="a", now=cn(12, 9, 5))
        assert not failed.delivered and failed.message.delivery == "failed"
        assert "HTTP 503" in (failed.message.error or "") and len(im.to("/messages")) == 2  # retried once
        c = get_conversation(state, conversation_id)
        assert (c.first_response_at, c.awaiting_since, c.response_due_at) == (None, cn(12, 9), cn(12, 9, 30))
        im.script("/messages", Reply(400, {"error": "buyer blocked the shop"}))
        refused = reply(state, conversation_id, agent_id, "您好", outbox=outbox, idempotency_key="b")
        assert refused.message.delivery == "failed" and "buyer blocked" in (refused.message.error or "")
        assert len(im.to("/messages")) == 3  # a 4xx is not retried
        ok = reply(state, conversation_id, agent_id, "您好", outbox=outbox, idempotency_key="c", now=cn(12, 9, 20))
    assert ok.delivered and ok.conversation.first_response_s == 20 * 60
    assert ok.conversation.first_response_breached is False


def test_email_replies_go_by_smtp_as_service_mail(state: StateStore, im: Gateway, smtp: tuple[Inbox, int]) -> None:
    mailbox, port = smtp
    set_up_sla(state)
    agent = agents.create_agent(state, "Amy", languages=["en"])
    got = receive(state, Inbound("email", {"email": "li.na@qq.com"}, "Where is my order 1234?", subject="Order 1234"),
                  now=cn(12, 9))  # fmt: skip
    with outbox_for(im, port) as outbox:
        done = reply(state, got.conversation.id, agent.id, "It left our warehouse today.", outbox=outbox,
                     idempotency_key="mail-1", now=cn(12, 9, 3))  # fmt: skip
    assert done.delivered
    [mail] = mailbox.messages
    assert (mail["To"], mail["Subject"]) == ("li.na@qq.com", "Re: Order 1234")
    assert mail.get_content().strip() == "It left our warehouse today." and mail["List-Unsubscribe"] is None


def test_replies_left_sending_by_a_crash_are_marked_in_doubt(state: StateStore, im: Gateway) -> None:
    conversation_id, agent_id = start(state)
    with outbox_for(im) as outbox:
        done = reply(state, conversation_id, agent_id, "好的", outbox=outbox, idempotency_key="x", now=cn(12, 9, 1))
    with state.begin() as conn:  # as if the process died between recording the claim and the outcome
        conn.execute(update(inbox_messages).where(inbox_messages.c.id == done.message.id).values(delivery="sending"))
    assert settle_stale(state, older_than_minutes=10, now=cn(12, 9, 5)) == 0  # too recent to call
    assert settle_stale(state, older_than_minutes=10, now=cn(12, 9, 1) + timedelta(minutes=11)) == 1
    [_, out] = list_messages(state, conversation_id)
    assert out.delivery == "in_doubt" and "check before resending" in (out.error or "")
    assert json.loads(im.to("/messages")[0].body)["text"] == "好的"
