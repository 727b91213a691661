"""Messages in: a customer's message from any channel lands in their one conversation; internal notes stay inside.

``receive`` checks the message (an empty one, an unknown channel or sender field, an attachment over the size limit
are refused with the field named, and nothing is written), finds or creates the sender's contact
(omnicrm.inbox.contacts: an unknown identifier makes a provisional customer, never an error), and in one transaction
that locks the contact and then the conversation, appends the message to the open conversation — reopening or
starting one as omnicrm.inbox.conversations says — starts the SLA clocks and assigns a new conversation. The same
external message id twice (``channel:account:id``) is one message: the repeat changes nothing and says so.

Each customer message is read by ``omnicrm.inbox.understanding`` when that module is installed: a complaint raises
the conversation to at least ``high`` priority (its SLA targets follow). Store clerks' notes (channel
``clerk_note``) join the conversation as notes and start no clock.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, update

from omnicrm.errors import InputError, OmnicrmError, Problem
from omnicrm.inbox import conversations as convs
from omnicrm.inbox.agents import get_agent
from omnicrm.inbox.assignment import auto_assign
from omnicrm.inbox.config import InboxConfig
from omnicrm.inbox.contacts import contact_for, customers_of, redirected_ids
from omnicrm.inbox.senders import Inbound, check_inbound, sender_keys
from omnicrm.inbox.sla import PRIORITIES
from omnicrm.logs import get_logger
from omnicrm.loyalty.locks import transaction, utc, when
from omnicrm.store.schema import inbox_conversations, inbox_messages
from omnicrm.store.state import StateStore, utcnow

__all__ = ["Message", "Received", "list_messages", "message_of", "note", "receive"]

log = get_logger(__name__)
M, C = inbox_messages, inbox_conversations
COMPLAINT_PRIORITY = "high"
_HAN = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class Message:
    id: int
    conversation_id: int
    direction: str
    channel: str
    account: str
    address: str | None
    sender_key: str | None
    agent_id: int | None
    author: str | None
    external_id: str | None
    text: str
    subject: str | None
    attachments: list[dict[str, Any]]
    store_code: str | None
    sent_at: datetime
    created_at: datetime
    delivery: str | None
    provider_message_id: str | None
    error: str | None
    complaint_score: float | None
    intent: str | None

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}


def message_of(row: Any) -> Message:
    return Message(
        int(row.id), int(row.conversation_id), row.direction, row.channel, row.account, row.address, row.sender_key,
        row.agent_id, row.author, row.external_id, row.text, row.subject,
        json.loads(row.attachments) if row.attachments else [], row.store_code, utc(row.sent_at), utc(row.created_at),
        row.delivery, row.provider_message_id, row.error, row.complaint_score, row.intent,
    )  # fmt: skip


@dataclass(frozen=True)
class Received:
    """What ``receive`` did: ``outcome`` is new, open (joined the open one), reopened, duplicate, or closed (a
    clerk's note kept in a recently closed conversation)."""

    message: Message
    conversation: convs.Conversation
    outcome: str

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "message": self.message.as_dict(), "conversation": self.conversation.as_dict()}


@dataclass(frozen=True)
class _Reading:
    complaint: bool
    score: float | None
    intent: str | None


def _understand(text: str, language: str | None) -> _Reading:
    """The understanding module's reading of a message; a plain non-complaint while that module is absent."""
    if not text:
        return _Reading(False, None, None)
    try:
        module = importlib.import_module("omnicrm.inbox.understanding")
    except ModuleNotFoundError as exc:
        if exc.name != "omnicrm.inbox.understanding":
            raise
        return _Reading(False, None, None)
    try:
        found = module.understand(text, language)
    except Exception as exc:  # a message is never lost to its reading: it arrives unread
        log.warning("could not read a message for complaints and intent", error=repr(exc))
        return _Reading(False, None, None)
    score = getattr(found, "complaint_score", None)
    return _Reading(bool(found.complaint), float(score) if score is not None else None, getattr(found, "intent", None))


def _language(message: Inbound, text: str) -> str | None:
    if message.language in ("zh", "en"):
        return message.language
    if _HAN.search(text):
        return "zh"
    return "en" if re.search(r"[A-Za-z]{3}", text) else None


def _existing(conn: Connection, dedupe_key: str | None) -> Received | None:
    """The message stored under ``dedupe_key`` (its conversation locked), if any."""
    if dedupe_key is None:
        return None
    row = conn.execute(select(M).where(M.c.dedupe_key == dedupe_key)).first()
    if row is None:
        return None
    found = message_of(row)
    return Received(found, convs.lock_conversation(conn, found.conversation_id), "duplicate")


def receive(
    state: StateStore, message: Inbound, *, config: InboxConfig | None = None, snapshot: Path | None = None,
    now: datetime | None = None, by: str = "inbox",
) -> Received:  # fmt: skip
    """Record one inbound message (see the module docstring); ``snapshot`` is the identity snapshot in force."""
    config = config or InboxConfig.model_validate({})
    spec, text, attachments = check_inbound(message, config)
    sender = sender_keys(spec, message)
    at = when(now, utcnow(), "now")
    sent_at = when(message.sent_at, at, "sent_at")
    external = (message.external_id or "").strip() or None
    if external is not None and len(external) > 200:
        raise InputError("the message id is too long", [Problem("at most 200 characters", "external_id")])
    dedupe_key = f"{spec.name}:{message.account.strip()}:{external}" if external else None
    if dedupe_key is not None:  # a repeat is answered without any work or lock
        with state.connect() as conn:
            seen = conn.execute(select(M).where(M.c.dedupe_key == dedupe_key)).first()
        if seen is not None:
            return Received(message_of(seen), convs.get_conversation(state, seen.conversation_id), "duplicate")
    found = customers_of(snapshot, sender.keys)
    customer = found.get(sender.keys[0]) or (min(found.values()) if found else None)
    customer_ids = redirected_ids(snapshot, customer) if customer is not None else []
    language = _language(message, text)
    reading = _Reading(False, None, None) if spec.note else _understand(text, language)

    def work(conn: Connection) -> Received:
        repeat = _existing(conn, dedupe_key)
        if repeat is not None:
            return repeat
        contact = contact_for(conn, sender.keys, customer_ids=customer_ids, name=(message.name or "").strip() or None,
                              language=language, now=at)  # fmt: skip
        again = _existing(conn, dedupe_key)  # the same message may have arrived while we waited for the contact
        if again is not None:
            return again
        c, outcome = convs.open_for_contact(conn, contact, spec.name, reopen_hours=config.reopen_hours, now=at, by=by)
        row = {
            "conversation_id": c.id, "direction": "note" if spec.note else "in", "channel": spec.name,
            "account": message.account.strip(), "address": sender.address, "sender_key": sender.keys[0],
            "sender": json.dumps(sender.raw, ensure_ascii=False, sort_keys=True),
            "author": message.author, "dedupe_key": dedupe_key, "external_id": external, "text": text,
            "subject": message.subject, "attachments": json.dumps(attachments, ensure_ascii=False) if attachments
            else None, "store_code": message.store_code, "sent_at": sent_at, "created_at": at,
            "complaint_score": reading.score, "intent": reading.intent,
        }  # fmt: skip
        message_id = conn.execute(insert(M).values(**row).returning(M.c.id)).scalar_one()
        if spec.note:
            if outcome == "new":  # a note with nothing open to join: kept in a conversation that needs no answer
                conn.execute(update(C).where(C.c.id == c.id).values(status="closed", closed_at=at, closed_by=by))
            elif outcome == "reopened":  # a note does not reopen what it joins
                outcome = "closed"
            c = convs.lock_conversation(conn, c.id)
        else:
            c = _customer_wrote(conn, c, outcome, spec.name, language, reading, at, by)
            if outcome == "new":
                c = auto_assign(conn, c, by=by, now=at)
        stored = message_of(conn.execute(select(M).where(M.c.id == message_id)).one())
        return Received(stored, c, outcome)

    received = transaction(state, work)
    _capture_attributes(state, received, by)
    return received


def _capture_attributes(state: StateStore, received: Received, by: str) -> None:
    """What a known customer says about themselves (or a clerk's note says of them) onto their portrait, by the
    shipped extraction rules (``capture``). The message is already kept: a failure here is logged, never raised."""
    customer_id, text = received.conversation.customer_id, received.message.text
    if received.outcome == "duplicate" or customer_id is None or not text:
        return
    from omnicrm.inbox.capture import capture

    try:
        capture(state, customer_id, received.message.id, text, by=f"{by}:rules")
    except OmnicrmError as exc:
        log.warning("attributes not captured", message_id=received.message.id, error=str(exc))


def _customer_wrote(
    conn: Connection, c: convs.Conversation, outcome: str, channel: str, language: str | None, reading: _Reading,
    at: datetime, by: str,
) -> convs.Conversation:  # fmt: skip
    """The conversation after a customer message: open, clocks running, priority raised by a complaint."""
    values: dict[str, Any] = {"status": "open", "last_channel": channel}
    if c.status == "closed":
        values.update(closed_at=None, closed_by=None, resolution_s=None, resolution_breached=None,
                      reopened=c.reopened + 1)  # fmt: skip
        convs.log(conn, c.id, "reopened", f"a message on {channel}", by, at)
    elif c.status == "pending":
        convs.log(conn, c.id, "status", "pending → open: the customer wrote", by, at)
    if language and not c.language:
        values["language"] = language
    priority = c.priority
    if reading.complaint:
        values["complaint"] = True
        if PRIORITIES.index(priority) < PRIORITIES.index(COMPLAINT_PRIORITY):
            priority = COMPLAINT_PRIORITY
            convs.log(conn, c.id, "priority", f"{c.priority} → {priority}: read as a complaint", by, at)
    if reading.intent:
        values["intent"] = reading.intent
    values.update(convs.refresh_dues(conn, c, priority=priority, awaiting_since=c.awaiting_since or at,
                                     first_message_at=c.first_message_at or at))  # fmt: skip
    conn.execute(update(C).where(C.c.id == c.id).values(**values, updated_at=at, version=C.c.version + 1))
    return convs.lock_conversation(conn, c.id)


def note(
    state: StateStore, conversation_id: int, text: str, *, agent_id: int | None = None, author: str,
    now: datetime | None = None, max_chars: int = 4000,
) -> Message:  # fmt: skip
    """Add an internal note: seen by agents, never sent, no clock changes (closed conversations take notes too)."""
    body = (text or "").strip()
    if not body:
        raise InputError("the note is empty", [Problem("write something", "text")])
    if len(body) > max_chars:
        raise InputError(f"the note is over {max_chars:,} characters", [Problem("shorten it", "text")])
    at = when(now, utcnow(), "now")

    def work(conn: Connection) -> Message:
        c = convs.lock_conversation(conn, conversation_id)
        if agent_id is not None:
            get_agent(conn, agent_id)
        new_id = conn.execute(
            insert(M)
            .values(
                conversation_id=c.id,
                direction="note",
                channel="internal",
                account="",
                text=body,
                agent_id=agent_id,
                author=author,
                sent_at=at,
                created_at=at,
            )
            .returning(M.c.id)
        ).scalar_one()
        conn.execute(update(C).where(C.c.id == c.id).values(updated_at=at, version=C.c.version + 1))
        return message_of(conn.execute(select(M).where(M.c.id == new_id)).one())

    return transaction(state, work)


def list_messages(state: StateStore, conversation_id: int, *, limit: int = 200, after_id: int = 0) -> list[Message]:
    """A conversation's messages, oldest first (``after_id`` pages on)."""
    with state.connect() as conn:
        rows = conn.execute(
            select(M).where(M.c.conversation_id == conversation_id, M.c.id > after_id).order_by(M.c.id).limit(limit)
        ).all()
    return [message_of(r) for r in rows]
