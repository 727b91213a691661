"""Replies: an agent's answer goes back through the channel the customer last wrote from, exactly once per key.

``reply`` works in three steps, so no network call ever holds a lock:

1. one transaction locks the conversation, refuses a closed (or merged) one and a channel without a reply route
   (each naming the field), and records the reply as ``sending`` under its idempotency key — a repeat of the key
   returns that reply instead of sending again;
2. the channel adapter sends it (retrying what may be retried; the key travels with every attempt);
3. one transaction records the outcome. A reply that went out stops the response clock; the first one fixes the
   first-response time in business seconds and whether it breached the target. A reply that failed leaves the
   clock running, and says why.

A crash between 1 and 3 leaves the reply ``sending``; ``settle_stale`` marks such replies ``in_doubt`` after a
while, for the agent to check with the customer rather than send twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from omnicrm.channels.base import Message as ChannelMessage
from omnicrm.channels.base import Outcome
from omnicrm.errors import Conflict, InputError, Problem
from omnicrm.inbox import conversations as convs
from omnicrm.inbox import sla
from omnicrm.inbox.agents import get_agent
from omnicrm.inbox.messages import Message, message_of
from omnicrm.inbox.outbound import Outbox
from omnicrm.inbox.senders import CHANNELS
from omnicrm.logs import get_logger
from omnicrm.loyalty.locks import insert_or_nothing, transaction, when
from omnicrm.store.schema import inbox_conversations, inbox_messages
from omnicrm.store.state import StateStore, utcnow

__all__ = ["Replied", "reply", "settle_stale"]

log = get_logger(__name__)
M, C = inbox_messages, inbox_conversations
THEN = ("pending", "closed")


@dataclass(frozen=True)
class Replied:
    """A reply and its conversation afterwards; ``repeated`` when the key had been used (nothing was sent now)."""

    message: Message
    conversation: convs.Conversation
    repeated: bool = False

    @property
    def delivered(self) -> bool:
        return self.message.delivery == "sent"

    def as_dict(self) -> dict[str, Any]:
        return {"repeated": self.repeated, "delivered": self.delivered, "message": self.message.as_dict(),
                "conversation": self.conversation.as_dict()}  # fmt: skip


def _repeat(conn: Connection, key: str, conversation_id: int) -> Replied | None:
    row = conn.execute(select(M).where(M.c.idempotency_key == key)).first()
    if row is None:
        return None
    if int(row.conversation_id) != conversation_id:
        raise Conflict(
            f"the idempotency key {key!r} was used for a reply in conversation {row.conversation_id}",
            [Problem("use a new key for a new reply", "idempotency_key")],
        )
    return Replied(message_of(row), convs.lock_conversation(conn, conversation_id), repeated=True)


def reply(
    state: StateStore, conversation_id: int, agent_id: int, text: str, *, outbox: Outbox, idempotency_key: str,
    subject: str | None = None, then: str | None = None, now: datetime | None = None, max_chars: int = 4000,
) -> Replied:  # fmt: skip
    """Send ``text`` from ``agent_id`` to the customer of the conversation (see the module docstring); ``then``
    moves the conversation to pending or closed once the reply went out."""
    body = (text or "").strip()
    if not body:
        raise InputError("the reply is empty", [Problem("write something", "text")])
    if len(body) > max_chars:
        raise InputError(f"the reply is over {max_chars:,} characters", [Problem("shorten it", "text")])
    key = (idempotency_key or "").strip()
    if not key or len(key) > 200:
        raise InputError("a reply needs an idempotency key", [Problem("1-200 characters", "idempotency_key")])
    if then is not None and then not in THEN:
        raise InputError(f"unknown status {then!r}", [Problem(f"use {', '.join(THEN)}", "then")])
    at = when(now, utcnow(), "now")

    def claim(conn: Connection) -> Replied | tuple[Message, convs.Conversation]:
        c = convs.lock_conversation(conn, conversation_id)  # replies to one conversation queue here
        repeat = _repeat(conn, key, conversation_id)
        if repeat is not None:
            return repeat
        if c.merged_into is not None:
            raise Conflict(f"conversation {c.id} was merged into {c.merged_into}", [Problem("reply there", "id")])
        if c.status == "closed":
            raise Conflict(
                f"conversation {c.id} is closed: a reply cannot be sent", [Problem("reopen it first", "status")]
            )
        agent = get_agent(conn, agent_id)
        if not agent.active:
            raise Conflict(f"agent {agent.id} ({agent.name}) is not active", [Problem("not active", "agent_id")])
        replyable = [name for name, spec in CHANNELS.items() if not spec.note]
        last = conn.execute(
            select(M).where(M.c.conversation_id == c.id, M.c.direction == "in", M.c.channel.in_(replyable))
            .order_by(M.c.id.desc()).limit(1)
        ).first()  # fmt: skip
        if last is None or not last.address:
            raise Conflict(
                f"conversation {c.id} has no customer message to answer", [Problem("nobody to reply to", "channel")]
            )
        outbox.channel_for(last.channel, last.account)  # refuses an unconfigured channel before anything is written
        row = {
            "conversation_id": c.id, "direction": "out", "channel": last.channel, "account": last.account,
            "address": last.address, "sender_key": last.sender_key, "agent_id": agent.id, "author": agent.name,
            "idempotency_key": key, "text": body, "subject": subject or _re(last.subject), "sent_at": at,
            "created_at": at, "delivery": "sending",
        }  # fmt: skip
        made = insert_or_nothing(conn, M, [row], returning=("id",))
        if not made:  # the key was taken a moment ago by a reply in another conversation
            taken = _repeat(conn, key, conversation_id)
            assert taken is not None
            return taken
        return message_of(conn.execute(select(M).where(M.c.id == made[0].id)).one()), c

    claimed = transaction(state, claim)
    if isinstance(claimed, Replied):
        return claimed
    pending, c = claimed
    channel = outbox.channel_for(pending.channel, pending.account)
    result = channel.send(
        ChannelMessage(
            channel=channel.name, address=pending.address or "", campaign_id=f"inbox-{c.id}",
            recipient=str(c.customer_id or f"contact-{c.contact_id}"), step=f"reply-{pending.id}",
            subject=pending.subject or "", body=body, purpose="service", language=c.language or "zh",
            params={"account": pending.account, "conversation_id": str(c.id)},
        )
    )  # fmt: skip
    delivery = {Outcome.SENT: "sent", Outcome.REFUSED: "refused", Outcome.IN_DOUBT: "in_doubt"}.get(
        result.outcome, "failed"
    )
    if delivery != "sent":
        log.warning("a reply was not delivered", conversation_id=c.id, channel=pending.channel, error=result.error)

    def record(conn: Connection) -> Replied:
        now_c = convs.lock_conversation(conn, c.id)
        conn.execute(
            update(M)
            .where(M.c.id == pending.id)
            .values(delivery=delivery, provider_message_id=result.provider_message_id, error=result.error)
        )
        if delivery == "sent":
            now_c = _answered(conn, now_c, agent_id, at)
            if then is not None:
                now_c = convs.change_status(conn, now_c, then, by=f"agent:{agent_id}", at=at)
        stored = message_of(conn.execute(select(M).where(M.c.id == pending.id)).one())
        return Replied(stored, now_c)

    return transaction(state, record)


def _re(subject: str | None) -> str | None:
    if not subject:
        return None
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


def _answered(conn: Connection, c: convs.Conversation, agent_id: int, at: datetime) -> convs.Conversation:
    """Stop the response clock; the first answer fixes the first-response time and whether it breached."""
    values: dict[str, Any] = {"awaiting_since": None, "response_due_at": None}
    if c.first_response_at is None and c.first_message_at is not None:
        spent = sla.calendar_of(sla.load_calendars(conn), c.calendar).elapsed_one(c.first_message_at, at)
        breached = None if c.response_target_s is None else spent > c.response_target_s
        values.update(first_response_at=at, first_response_s=spent, first_response_by=agent_id,
                      first_response_breached=breached)  # fmt: skip
    conn.execute(update(C).where(C.c.id == c.id).values(**values, updated_at=at, version=C.c.version + 1))
    return convs.lock_conversation(conn, c.id)


def settle_stale(state: StateStore, *, older_than_minutes: float, now: datetime | None = None) -> int:
    """Mark replies left ``sending`` (a crash mid-send) ``in_doubt``; returns how many."""
    at = when(now, utcnow(), "now")
    cutoff = at - timedelta(minutes=older_than_minutes)

    def work(conn: Connection) -> int:
        done = conn.execute(
            update(M)
            .where(M.c.delivery == "sending", M.c.created_at < cutoff)
            .values(
                delivery="in_doubt", error="no outcome was recorded (stopped while sending): check before resending"
            )
        )
        return int(done.rowcount or 0)

    return transaction(state, work)
