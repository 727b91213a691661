"""The live queue: open conversations ordered by the risk of breaking an SLA, and warnings before a breach.

For each open or pending conversation two clocks may run: *response* (business time since the oldest unanswered
customer message, against the response target) and *resolution* (business time since the first message, against the
resolution target). A clock's risk is the share of its target used: 0.5 is half-way, 1 or more is breached. The
queue orders conversations by their larger risk, highest first, so it reorders as time passes and as business hours
open and close; conversations without an SLA follow, oldest first. Every function takes ``now``.

A clock at ``warn_at`` of its target or beyond gives a warning (``level`` warning, then breached). ``record_warnings``
writes each (conversation, clock, level, due time) once and logs one line for it, so polling never repeats a line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from omnicrm.inbox import conversations as convs
from omnicrm.inbox import sla
from omnicrm.inbox.hours import to_micros
from omnicrm.logs import get_logger
from omnicrm.loyalty.locks import insert_or_nothing, transaction, when
from omnicrm.store.schema import inbox_contacts, inbox_conversations, inbox_warnings
from omnicrm.store.state import StateStore, utcnow

__all__ = ["Clock", "QueueItem", "live_queue", "record_warnings", "sla_clocks", "warnings"]

log = get_logger(__name__)
C = inbox_conversations
_US = 1_000_000


@dataclass(frozen=True)
class Clock:
    """One running SLA clock of a conversation at ``now``."""

    kind: str  # response or resolution
    started_at: datetime
    due_at: datetime
    target_s: int
    elapsed_s: float  # business seconds so far
    risk: float  # elapsed / target

    @property
    def left_s(self) -> float:
        """Business seconds left (negative: overdue by that much)."""
        return self.target_s - self.elapsed_s

    def level(self, warn_at: float) -> str:
        return "breached" if self.risk >= 1 else "warning" if self.risk >= warn_at else "ok"

    def as_dict(self, warn_at: float) -> dict[str, Any]:
        return {"kind": self.kind, "started_at": self.started_at.isoformat(), "due_at": self.due_at.isoformat(),
                "target_s": self.target_s, "elapsed_s": self.elapsed_s, "left_s": self.left_s,
                "risk": round(self.risk, 4), "level": self.level(warn_at)}  # fmt: skip


@dataclass(frozen=True)
class QueueItem:
    conversation: convs.Conversation
    clocks: tuple[Clock, ...]

    @property
    def risk(self) -> float | None:
        return max((c.risk for c in self.clocks), default=None)

    @property
    def due_at(self) -> datetime | None:
        return min((c.due_at for c in self.clocks), default=None)

    def as_dict(self, warn_at: float) -> dict[str, Any]:
        top = max(self.clocks, key=lambda c: c.risk, default=None)
        return {"conversation": self.conversation.as_dict(), "risk": None if self.risk is None else round(self.risk, 4),
                "level": top.level(warn_at) if top else "none", "clock": top.kind if top else None,
                "due_at": None if self.due_at is None else self.due_at.isoformat(),
                "clocks": [c.as_dict(warn_at) for c in self.clocks]}  # fmt: skip


def _open(state: StateStore, team_id: int | None, agent_id: int | None, unassigned: bool) -> list[convs.Conversation]:
    q = (
        select(C, inbox_contacts.c.customer_id)
        .join(inbox_contacts, inbox_contacts.c.id == C.c.contact_id)
        .where(C.c.status != "closed", C.c.merged_into.is_(None))
        .order_by(C.c.id)
    )
    if team_id is not None:
        q = q.where(C.c.team_id == team_id)
    if agent_id is not None:
        q = q.where(C.c.agent_id == agent_id)
    if unassigned:
        q = q.where(C.c.agent_id.is_(None))
    with state.connect() as conn:
        return [convs.conversation_of(r) for r in conn.execute(q)]


def sla_clocks(state: StateStore, rows: list[convs.Conversation], now: datetime) -> list[tuple[Clock, ...]]:
    """The running clocks of each conversation at ``now``, computed per calendar over all rows at once."""
    with state.connect() as conn:
        known = sla.load_calendars(conn)
    now_us = to_micros([now])[0]
    out: list[list[Clock]] = [[] for _ in rows]
    for kind, start_of, due_of, target_of in (
        ("response", "awaiting_since", "response_due_at", "response_target_s"),
        ("resolution", "first_message_at", "resolution_due_at", "resolution_target_s"),
    ):
        running = [i for i, c in enumerate(rows) if getattr(c, start_of) and getattr(c, due_of)
                   and getattr(c, target_of)]  # fmt: skip
        by_calendar: dict[str | None, list[int]] = {}
        for i in running:
            by_calendar.setdefault(rows[i].calendar, []).append(i)
        for name, members in by_calendar.items():
            calendar = sla.calendar_of(known, name)
            starts = to_micros([getattr(rows[i], start_of) for i in members])
            elapsed = calendar.elapsed(starts, np.full(len(members), now_us, dtype=np.int64))
            for i, spent in zip(members, elapsed.tolist(), strict=True):
                c = rows[i]
                target = int(getattr(c, target_of))
                out[i].append(Clock(kind, getattr(c, start_of), getattr(c, due_of), target, spent / _US,
                                    spent / _US / target))  # fmt: skip
    return [tuple(clocks) for clocks in out]


def live_queue(
    state: StateStore, *, now: datetime | None = None, team_id: int | None = None, agent_id: int | None = None,
    unassigned: bool = False, limit: int = 100,
) -> list[QueueItem]:  # fmt: skip
    """Open and pending conversations, highest SLA risk first (see the module docstring)."""
    at = when(now, utcnow(), "now")
    rows = _open(state, team_id, agent_id, unassigned)
    items = [QueueItem(c, clocks) for c, clocks in zip(rows, sla_clocks(state, rows, at), strict=True)]
    far = datetime.max.replace(tzinfo=UTC)

    def order(item: QueueItem) -> tuple[int, float, datetime, datetime, int]:
        c = item.conversation
        waiting = c.awaiting_since or c.first_message_at or c.created_at
        return (item.risk is None, -(item.risk or 0.0), item.due_at or far, waiting, c.id)

    return sorted(items, key=order)[:limit]


def warnings(state: StateStore, *, now: datetime | None = None, warn_at: float = 0.8) -> list[tuple[QueueItem, Clock]]:
    """Every running clock at ``warn_at`` of its target or beyond, highest risk first."""
    found = [(item, clock) for item in live_queue(state, now=now, limit=1_000_000) for clock in item.clocks
             if clock.risk >= warn_at]  # fmt: skip
    return sorted(found, key=lambda pair: (-pair[1].risk, pair[0].conversation.id))


def record_warnings(
    state: StateStore, *, now: datetime | None = None, warn_at: float = 0.8
) -> list[tuple[QueueItem, Clock]]:
    """Write the warnings not written before and log a line for each; returns those new ones."""
    at = when(now, utcnow(), "now")
    current = warnings(state, now=at, warn_at=warn_at)
    if not current:
        return []
    rows = [{"conversation_id": item.conversation.id, "kind": clock.kind, "level": clock.level(warn_at),
             "due_at": clock.due_at, "warned_at": at} for item, clock in current]  # fmt: skip

    def work(conn: Any) -> set[tuple[int, str, str]]:
        made = insert_or_nothing(conn, inbox_warnings, rows, returning=("conversation_id", "kind", "level"))
        return {(int(r[0]), str(r[1]), str(r[2])) for r in made}

    fresh = transaction(state, work)
    new = [(item, clock) for item, clock in current
           if (item.conversation.id, clock.kind, clock.level(warn_at)) in fresh]  # fmt: skip
    for item, clock in new:
        c = item.conversation
        log.warning(
            "SLA breached" if clock.level(warn_at) == "breached" else "SLA about to be breached",
            conversation_id=c.id, clock=clock.kind, due_at=clock.due_at.isoformat(), risk=round(clock.risk, 3),
            business_minutes_left=round(clock.left_s / 60, 1), agent_id=c.agent_id, channel=c.channel,
        )  # fmt: skip
    return new
