"""Conversations: one thread per customer across channels, its status and priority, and its SLA clocks.

A conversation is ``open`` (the merchant owes an answer or an action), ``pending`` (waiting on the customer) or
``closed``. A customer message moves a pending conversation back to open, and reopens a closed one within
``reopen_hours``; after that it starts a new conversation. Every change is one transaction that first locks the
conversation's row (``SELECT … FOR UPDATE``; SQLite writers are alone anyway), and is written to its activity log.

Clocks: ``first_message_at`` (the first customer message) starts the resolution clock; ``awaiting_since`` (the
oldest customer message not yet answered) starts the response clock. Their due times are fixed from the SLA
policy (omnicrm.inbox.sla) when a clock starts or the priority changes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, insert, select, update

from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.inbox import sla
from omnicrm.loyalty.locks import transaction, utc, when
from omnicrm.store.schema import inbox_activity, inbox_contacts, inbox_conversations, inbox_messages
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "STATUSES",
    "Conversation",
    "activity",
    "change_status",
    "conversation_of",
    "get_conversation",
    "list_conversations",
    "lock_conversation",
    "log",
    "merge_into",
    "open_for_contact",
    "refresh_dues",
    "set_priority",
    "set_status",
]

C, M, A = inbox_conversations, inbox_messages, inbox_activity
STATUSES = ("open", "pending", "closed")
_TIMES = {"first_message_at", "awaiting_since", "response_due_at", "resolution_due_at", "first_response_at",
          "closed_at", "created_at", "updated_at"}  # fmt: skip


@dataclass(frozen=True)
class Conversation:
    """A conversation row with its contact's OneID customer id (None while the contact is provisional)."""

    id: int
    contact_id: int
    customer_id: int | None
    status: str
    priority: str
    channel: str
    last_channel: str
    team_id: int | None
    agent_id: int | None
    complaint: bool
    intent: str | None
    language: str | None
    calendar: str | None
    response_target_s: int | None
    resolution_target_s: int | None
    first_message_at: datetime | None
    awaiting_since: datetime | None
    response_due_at: datetime | None
    resolution_due_at: datetime | None
    first_response_at: datetime | None
    first_response_s: float | None
    first_response_by: int | None
    first_response_breached: bool | None
    closed_at: datetime | None
    resolution_s: float | None
    resolution_breached: bool | None
    closed_by: str | None
    reopened: int
    merged_into: int | None
    version: int
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}


_NAMES = [f.name for f in fields(Conversation)]


def conversation_of(row: Any) -> Conversation:
    """A row of ``inbox_conversations`` (joined with the contact's customer_id) as a Conversation, times in UTC."""
    values = {}
    for name in _NAMES:
        value = getattr(row, name)
        if name in _TIMES and value is not None:
            value = utc(value)
        elif name in ("complaint",) and value is not None:
            value = bool(value)
        values[name] = value
    return Conversation(**values)


def _select() -> Any:
    return select(C, inbox_contacts.c.customer_id).join(inbox_contacts, inbox_contacts.c.id == C.c.contact_id)


def _missing(conversation_id: int) -> NotFound:
    return NotFound(f"conversation {conversation_id} does not exist", [Problem("unknown conversation", "id")])


def lock_conversation(conn: Connection, conversation_id: int) -> Conversation:
    """Lock the conversation's row for the rest of the transaction and return it."""
    conn.execute(select(C.c.id).where(C.c.id == conversation_id).with_for_update())
    row = conn.execute(_select().where(C.c.id == conversation_id)).first()
    if row is None:
        raise _missing(conversation_id)
    return conversation_of(row)


def get_conversation(state: StateStore, conversation_id: int) -> Conversation:
    with state.connect() as conn:
        row = conn.execute(_select().where(C.c.id == conversation_id)).first()
    if row is None:
        raise _missing(conversation_id)
    return conversation_of(row)


def list_conversations(
    state: StateStore, *, status: str | None = None, agent_id: int | None = None, customer_id: int | None = None,
    contact_id: int | None = None, limit: int = 50, offset: int = 0,
) -> tuple[list[Conversation], int]:  # fmt: skip
    """A page of conversations, newest first, and how many match."""
    if status is not None and status not in STATUSES:
        raise InputError(f"unknown status {status!r}", [Problem(f"use {', '.join(STATUSES)}", "status")])
    where: list[ColumnElement[bool]] = [C.c.merged_into.is_(None)]
    if status is not None:
        where.append(C.c.status == status)
    if agent_id is not None:
        where.append(C.c.agent_id == agent_id)
    if customer_id is not None:
        where.append(inbox_contacts.c.customer_id == customer_id)
    if contact_id is not None:
        where.append(C.c.contact_id == contact_id)
    with state.connect() as conn:
        total = conn.execute(
            select(func.count())
            .select_from(C.join(inbox_contacts, inbox_contacts.c.id == C.c.contact_id))
            .where(*where)
        ).scalar_one()
        rows = conn.execute(_select().where(*where).order_by(C.c.updated_at.desc(), C.c.id.desc())
                            .limit(limit).offset(offset)).all()  # fmt: skip
    return [conversation_of(r) for r in rows], int(total)


def log(conn: Connection, conversation_id: int, action: str, detail: str | None, by: str, at: datetime) -> None:
    """Write one line of the conversation's activity log."""
    conn.execute(insert(A).values(conversation_id=conversation_id, at=at, action=action, detail=detail, by=by))


def activity(state: StateStore, conversation_id: int) -> list[dict[str, Any]]:
    with state.connect() as conn:
        rows = conn.execute(select(A).where(A.c.conversation_id == conversation_id).order_by(A.c.id)).all()
    return [{"at": utc(r.at).isoformat(), "action": r.action, "detail": r.detail, "by": r.by} for r in rows]


def _save(conn: Connection, c: Conversation, now: datetime, **values: Any) -> None:
    conn.execute(update(C).where(C.c.id == c.id).values(**values, version=C.c.version + 1, updated_at=now))


def refresh_dues(
    conn: Connection, c: Conversation, *, priority: str | None = None, awaiting_since: datetime | None = None,
    first_message_at: datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The SLA columns of ``c`` for a (new) priority and clock starts: targets read from the policy of the
    conversation's channel at that priority, due times counted on its calendar."""
    prio = priority or c.priority
    targets = sla.targets_for(conn, c.channel, prio)
    first = first_message_at or c.first_message_at
    awaiting = awaiting_since or c.awaiting_since
    return {
        "priority": prio,
        "calendar": targets.calendar,
        "response_target_s": targets.response_s,
        "resolution_target_s": targets.resolution_s,
        "first_message_at": first,
        "awaiting_since": awaiting,
        "response_due_at": sla.due(conn, targets.calendar, awaiting, targets.response_s),
        "resolution_due_at": sla.due(conn, targets.calendar, first, targets.resolution_s),
    }


def open_for_contact(
    conn: Connection, contact_id: int, channel: str, *, reopen_hours: float, now: datetime, by: str
) -> tuple[Conversation, str]:
    """The contact's conversation a new message belongs to, locked: the open or pending one, a closed one reopened
    within ``reopen_hours``, or a new one. Returns it and what happened (``open``, ``reopened`` or ``new``)."""
    live = conn.execute(
        select(C.c.id).where(C.c.contact_id == contact_id, C.c.status != "closed", C.c.merged_into.is_(None))
        .order_by(C.c.id).limit(1)
    ).first()  # fmt: skip
    if live is not None:
        return lock_conversation(conn, int(live.id)), "open"
    since = now - timedelta(hours=reopen_hours)
    recent = conn.execute(
        select(C.c.id).where(C.c.contact_id == contact_id, C.c.status == "closed", C.c.merged_into.is_(None),
                             C.c.closed_at >= since).order_by(C.c.closed_at.desc(), C.c.id.desc()).limit(1)
    ).first()  # fmt: skip
    if recent is not None:
        return lock_conversation(conn, int(recent.id)), "reopened"
    new_id = conn.execute(
        insert(C).values(
            contact_id=contact_id, status="open", priority="normal", channel=channel, last_channel=channel,
            complaint=False, reopened=0, version=0, created_at=now, updated_at=now,
        ).returning(C.c.id)
    ).scalar_one()  # fmt: skip
    log(conn, int(new_id), "opened", f"on {channel}", by, now)
    return lock_conversation(conn, int(new_id)), "new"


def change_status(conn: Connection, c: Conversation, status: str, *, by: str, at: datetime) -> Conversation:
    """Move the (locked) conversation to ``status`` inside the caller's transaction (see ``set_status``)."""
    if c.merged_into is not None:
        raise Conflict(f"conversation {c.id} was merged into {c.merged_into}", [Problem("use that one", "id")])
    if c.status == status:
        return c
    values: dict[str, Any] = {"status": status}
    if status == "closed":
        values.update(closed_at=at, closed_by=by, awaiting_since=None)
        if c.first_message_at is not None:
            spent = sla.calendar_of(sla.load_calendars(conn), c.calendar).elapsed_one(c.first_message_at, at)
            values["resolution_s"] = spent
            values["resolution_breached"] = None if c.resolution_target_s is None else spent > c.resolution_target_s
    elif c.status == "closed":
        values.update(closed_at=None, closed_by=None, resolution_s=None, resolution_breached=None)
    _save(conn, c, at, **values)
    log(conn, c.id, "status", f"{c.status} → {status}", by, at)
    return lock_conversation(conn, c.id)


def set_status(
    state: StateStore, conversation_id: int, status: str, *, by: str, now: datetime | None = None
) -> Conversation:
    """Move a conversation to ``status``. Closing fixes its resolution time (business seconds from the first
    customer message) and whether that breached the target; reopening by hand clears them."""
    if status not in STATUSES:
        raise InputError(f"unknown status {status!r}", [Problem(f"use {', '.join(STATUSES)}", "status")])
    at = when(now, utcnow(), "now")
    return transaction(state, lambda conn: change_status(conn, lock_conversation(conn, conversation_id), status,
                                                         by=by, at=at))  # fmt: skip


def set_priority(state: StateStore, conversation_id: int, priority: str, *, by: str,
                 now: datetime | None = None) -> Conversation:  # fmt: skip
    """Change the priority; the SLA targets and due times follow the policy for the new priority."""
    if priority not in sla.PRIORITIES:
        raise InputError(f"unknown priority {priority!r}", [Problem(f"use {', '.join(sla.PRIORITIES)}", "priority")])
    at = when(now, utcnow(), "now")

    def work(conn: Connection) -> Conversation:
        c = lock_conversation(conn, conversation_id)
        if c.priority == priority:
            return c
        _save(conn, c, at, **refresh_dues(conn, c, priority=priority))
        log(conn, c.id, "priority", f"{c.priority} → {priority}", by, at)
        return lock_conversation(conn, c.id)

    return transaction(state, work)


def merge_into(conn: Connection, keep: Conversation, others: list[Conversation], *, by: str, now: datetime) -> None:
    """Move the messages of ``others`` (locked, of the same customer) into ``keep`` and close them as merged: the
    clocks start at the earliest customer message, the priority is the highest, a complaint in any stays."""
    if not others:
        return
    ids = [o.id for o in others]
    conn.execute(update(M).where(M.c.conversation_id.in_(ids)).values(conversation_id=keep.id))
    everyone = [keep, *others]
    firsts = [c.first_message_at for c in everyone if c.first_message_at is not None]
    waits = [c.awaiting_since for c in everyone if c.awaiting_since is not None]
    prio = max((c.priority for c in everyone), key=sla.PRIORITIES.index)
    latest_in = conn.execute(
        select(M.c.channel)
        .where(M.c.conversation_id == keep.id, M.c.direction == "in")
        .order_by(M.c.id.desc())
        .limit(1)
    ).first()
    values = refresh_dues(conn, keep, priority=prio, awaiting_since=min(waits) if waits else None,
                          first_message_at=min(firsts) if firsts else None)  # fmt: skip
    values["complaint"] = any(c.complaint for c in everyone)
    if latest_in is not None:
        values["last_channel"] = latest_in.channel
    if not waits:
        values.update(awaiting_since=None, response_due_at=None)
    _save(conn, keep, now, **values)
    for other in others:
        _save(conn, other, now, status="closed", merged_into=keep.id, closed_at=now, closed_by=by,
              awaiting_since=None, response_due_at=None)  # fmt: skip
        log(conn, other.id, "merged", f"into conversation {keep.id}", by, now)
    log(conn, keep.id, "merged", "took over conversation " + ", ".join(str(i) for i in ids), by, now)
