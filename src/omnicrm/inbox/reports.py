"""SLA reports by agent, channel or day: how fast customers were first answered, how fast their conversations were
resolved, and how often the targets were broken.

The conversations counted are those whose first customer message fell in ``[start, end)`` (merged ones are counted
in the conversation they went into). Per group:

- ``conversations``; ``responded`` (a first reply went out) and ``resolved`` (closed now);
- first response and resolution times in business seconds, as recorded when they happened: ``p50`` and ``p90`` are
  nearest-rank percentiles (the smallest value with at least 50% / 90% of the values at or below it);
- ``response_breaches``: first replies later than their target, plus conversations left unanswered past their due
  time (by ``now``, or by when they were closed); ``resolution_breaches`` likewise for closing.

Groups: ``agent`` (the agent who holds the conversation; ``None`` for the queue), ``channel`` (where it started) or
``day`` (the local date of the first message in ``timezone``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from omnicrm.errors import InputError, Problem
from omnicrm.loyalty.locks import utc, when
from omnicrm.store.schema import inbox_agents, inbox_conversations
from omnicrm.store.state import StateStore, utcnow

__all__ = ["GROUPS", "ReportRow", "nearest_rank", "sla_report"]

C = inbox_conversations
GROUPS = ("agent", "channel", "day")


def nearest_rank(values: Sequence[float], percent: float) -> float | None:
    """The nearest-rank percentile: the value at rank ceil(percent/100 · n) of the sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent / 100 * len(ordered))) - 1]


@dataclass(frozen=True)
class ReportRow:
    group: str | int | None
    label: str
    conversations: int
    responded: int
    resolved: int
    first_response_p50_s: float | None
    first_response_p90_s: float | None
    resolution_p50_s: float | None
    resolution_p90_s: float | None
    response_breaches: int
    resolution_breaches: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _row(key: str | int | None, label: str, rows: list[Any], now: datetime) -> ReportRow:
    firsts = [float(r.first_response_s) for r in rows if r.first_response_s is not None]
    resolutions = [float(r.resolution_s) for r in rows if r.status == "closed" and r.resolution_s is not None]
    late_answer = sum(
        1 for r in rows if r.first_response_breached
        or (r.first_response_at is None and r.response_due_at is not None
            and utc(r.response_due_at) <= (utc(r.closed_at) if r.closed_at is not None else now))
    )  # fmt: skip
    late_close = sum(
        1 for r in rows if (r.status == "closed" and r.resolution_breached)
        or (r.status != "closed" and r.resolution_due_at is not None and utc(r.resolution_due_at) <= now)
    )  # fmt: skip
    return ReportRow(
        key, label, len(rows), len(firsts), len(resolutions), nearest_rank(firsts, 50), nearest_rank(firsts, 90),
        nearest_rank(resolutions, 50), nearest_rank(resolutions, 90), late_answer, late_close,
    )  # fmt: skip


def sla_report(
    state: StateStore, *, start: datetime, end: datetime, by: str = "agent", timezone: str = "Asia/Shanghai",
    now: datetime | None = None,
) -> list[ReportRow]:  # fmt: skip
    """One row per group and a last row for all (group ``"all"``); see the module docstring."""
    if by not in GROUPS:
        raise InputError(f"cannot group by {by!r}", [Problem(f"use {', '.join(GROUPS)}", "by")])
    lo, hi = when(start, start, "start"), when(end, end, "end")
    if hi <= lo:
        raise InputError("the report's end is not after its start", [Problem("give an end after the start", "end")])
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"unknown time zone {timezone!r}", [Problem("use an IANA zone", "timezone")]) from None
    at = when(now, utcnow(), "now")
    with state.connect() as conn:
        rows = conn.execute(
            select(C).where(C.c.merged_into.is_(None), C.c.first_message_at >= lo, C.c.first_message_at < hi)
            .order_by(C.c.id)
        ).all()  # fmt: skip
        names = {int(a.id): a.name for a in conn.execute(select(inbox_agents.c.id, inbox_agents.c.name))}
    groups: dict[Any, list[Any]] = {}
    for r in rows:
        if by == "agent":
            key: Any = r.agent_id
        elif by == "channel":
            key = r.channel
        else:
            key = utc(r.first_message_at).astimezone(zone).date().isoformat()
        groups.setdefault(key, []).append(r)

    def label(key: Any) -> str:
        if by == "agent":
            return "unassigned" if key is None else names.get(int(key), f"agent {key}")
        return str(key)

    ordered = sorted(groups, key=lambda k: (k is None, str(k) if by != "agent" else (k or 0)))
    return [_row(k, label(k), groups[k], at) for k in ordered] + [_row("all", "all", list(rows), at)]
