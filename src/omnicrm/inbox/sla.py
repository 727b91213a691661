"""SLA policies and business-hours calendars in the state store, and the targets and due times of a conversation.

A policy gives, for a channel and a priority, the business minutes within which a customer's message must be
answered (``first_response_minutes``; it applies to every unanswered message, the first one included) and the
business minutes from the first message to closing (``resolution_minutes``), counted on a named calendar (none:
round the clock). The most specific policy wins: channel and priority, then channel and ``*``, then ``*`` and
priority, then ``*`` and ``*``; a conversation no policy covers has no SLA. A conversation's policy is read from the
channel it started on and its current priority, and its due times are fixed when a clock starts or the priority
changes, so later edits of a policy do not rewrite what was promised.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from omnicrm.errors import InputError, NotFound, Problem
from omnicrm.inbox.hours import ALWAYS, Calendar, parse_calendar
from omnicrm.inbox.senders import CHANNELS
from omnicrm.loyalty.locks import insert_or_nothing, transaction, utc, when
from omnicrm.store.schema import inbox_calendars, inbox_sla_policies
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "PRIORITIES",
    "Policy",
    "Targets",
    "calendar_of",
    "calendars",
    "due",
    "list_policies",
    "load_calendars",
    "policy_for",
    "put_calendar",
    "put_policy",
    "targets_for",
]

PRIORITIES = ("low", "normal", "high", "urgent")
P, CAL = inbox_sla_policies, inbox_calendars


@dataclass(frozen=True)
class Policy:
    channel: str
    priority: str
    first_response_minutes: int
    resolution_minutes: int
    calendar: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Targets:
    """What a conversation was promised: business seconds to respond and to resolve, on a calendar."""

    response_s: int | None
    resolution_s: int | None
    calendar: str | None


def _calendar_row(row: Any) -> Calendar:
    return parse_calendar(row.name, row.timezone, json.loads(row.hours), json.loads(row.exceptions))


def put_calendar(
    state: StateStore, name: str, *, timezone: str, hours: dict[str, Any], exceptions: dict[str, Any] | None = None,
    by: str, now: datetime | None = None,
) -> Calendar:  # fmt: skip
    """Create or replace a business-hours calendar (checked first; see ``hours.parse_calendar``)."""
    calendar = parse_calendar(name, timezone, hours, exceptions)
    written = calendar.as_dict()
    at = when(now, utcnow(), "now")
    values = {"timezone": timezone, "hours": json.dumps(written["hours"]),
              "exceptions": json.dumps(written["exceptions"]), "updated_by": by, "updated_at": at}  # fmt: skip

    def work(conn: Connection) -> Calendar:
        if not insert_or_nothing(conn, CAL, [{"name": name, **values}], returning=("name",)):
            conn.execute(CAL.update().where(CAL.c.name == name).values(**values))
        return calendar

    return transaction(state, work)


def load_calendars(conn: Connection) -> dict[str, Calendar]:
    """Every calendar by name."""
    return {row.name: _calendar_row(row) for row in conn.execute(select(CAL))}


def calendars(state: StateStore) -> list[Calendar]:
    with state.connect() as conn:
        return sorted(load_calendars(conn).values(), key=lambda c: c.name)


def calendar_of(known: dict[str, Calendar], name: str | None) -> Calendar:
    """The calendar a conversation's SLA counts on (round the clock when it names none, or one since deleted)."""
    return known.get(name, ALWAYS) if name else ALWAYS


def _policy(row: Any) -> Policy:
    return Policy(row.channel, row.priority, int(row.first_response_minutes), int(row.resolution_minutes), row.calendar)


def put_policy(
    state: StateStore, *, channel: str, priority: str, first_response_minutes: int, resolution_minutes: int,
    calendar: str | None = None, by: str, now: datetime | None = None,
) -> Policy:  # fmt: skip
    """Create or replace the policy of (channel, priority); ``*`` stands for any."""
    if channel != "*" and channel not in CHANNELS:
        raise InputError(f"unknown channel {channel!r}", [Problem(f"use * or one of {', '.join(CHANNELS)}", "channel")])
    if priority != "*" and priority not in PRIORITIES:
        raise InputError(
            f"unknown priority {priority!r}", [Problem(f"use * or one of {', '.join(PRIORITIES)}", "priority")]
        )
    for name, value in (("first_response_minutes", first_response_minutes), ("resolution_minutes", resolution_minutes)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 525_600:
            raise InputError(f"{name} must be 1 to 525600 minutes", [Problem(f"got {value!r}", name)])
    at = when(now, utcnow(), "now")
    policy = Policy(channel, priority, first_response_minutes, resolution_minutes, calendar or None)

    def work(conn: Connection) -> Policy:
        if policy.calendar and conn.execute(select(CAL.c.name).where(CAL.c.name == policy.calendar)).first() is None:
            raise NotFound(f"no business-hours calendar {policy.calendar!r}", [Problem("create it first", "calendar")])
        values = {**policy.as_dict(), "updated_by": by, "updated_at": at}
        if not insert_or_nothing(conn, P, [values], returning=("id",)):
            conn.execute(P.update().where(P.c.channel == channel, P.c.priority == priority).values(**values))
        return policy

    return transaction(state, work)


def list_policies(state: StateStore) -> list[Policy]:
    with state.connect() as conn:
        return [_policy(r) for r in conn.execute(select(P).order_by(P.c.channel, P.c.priority))]


def policy_for(conn: Connection, channel: str, priority: str) -> Policy | None:
    """The most specific policy for (channel, priority), or None."""
    rows = conn.execute(select(P).where(P.c.channel.in_([channel, "*"]), P.c.priority.in_([priority, "*"]))).all()
    ranked = sorted(rows, key=lambda r: (r.channel == "*", r.priority == "*"))
    return _policy(ranked[0]) if ranked else None


def targets_for(conn: Connection, channel: str, priority: str) -> Targets:
    """The targets a conversation on ``channel`` at ``priority`` gets now."""
    policy = policy_for(conn, channel, priority)
    if policy is None:
        return Targets(None, None, None)
    return Targets(policy.first_response_minutes * 60, policy.resolution_minutes * 60, policy.calendar)


def due(conn: Connection, calendar: str | None, start: datetime | None, seconds: int | None) -> datetime | None:
    """When ``seconds`` of business time after ``start`` end on ``calendar`` (None when either is unknown)."""
    if start is None or seconds is None:
        return None
    known = load_calendars(conn) if calendar else {}
    return calendar_of(known, calendar).add_one(utc(start), seconds)
