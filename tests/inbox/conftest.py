"""Shared pieces of the inbox tests: China time, a business-hours calendar with a holiday, SLA policies, and counts
of every inbox table (to show a refused request left the state unchanged)."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from omnicrm.inbox import sla
from omnicrm.store.schema import (
    inbox_activity,
    inbox_contact_keys,
    inbox_contacts,
    inbox_conversations,
    inbox_messages,
)
from omnicrm.store.state import StateStore

CN = timezone(timedelta(hours=8))
WORKDAYS = {d: [["09:00", "12:00"], ["13:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
# National Day 2026: Thursday 1 October is a holiday; Saturday 10 October is worked in exchange (调休)
EXCEPTIONS = {"2026-10-01": [], "2026-10-10": [["09:00", "12:00"], ["13:00", "18:00"]]}


def cn(day: int, hour: int, minute: int = 0, month: int = 10) -> datetime:
    """A moment in 2026, China time."""
    return datetime(2026, month, day, hour, minute, tzinfo=CN)


def set_up_sla(state: StateStore, *, response: int = 30, resolution: int = 480) -> None:
    """The office calendar and one policy for every channel and priority, plus a faster one for WeChat."""
    sla.put_calendar(state, "office", timezone="Asia/Shanghai", hours=WORKDAYS, exceptions=EXCEPTIONS, by="test")
    sla.put_policy(state, channel="*", priority="*", first_response_minutes=response, resolution_minutes=resolution,
                   calendar="office", by="test")  # fmt: skip


TABLES = (inbox_contacts, inbox_contact_keys, inbox_conversations, inbox_messages, inbox_activity)


def counts(state: StateStore) -> tuple[int, ...]:
    """Rows in the inbox's contact, conversation and message tables."""
    with state.connect() as conn:
        return tuple(int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in TABLES)


@dataclass
class Reading:
    complaint: bool
    complaint_score: float
    intent: str
    attributes: list[str] = field(default_factory=list)


@pytest.fixture
def understanding(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str | None], Reading]]:
    """A stand-in for omnicrm.inbox.understanding that reads '投诉' or 'complain' as a complaint."""
    module = types.ModuleType("omnicrm.inbox.understanding")
    seen: list[tuple[str, str | None]] = []

    def understand(text: str, lang: str | None) -> Reading:
        seen.append((text, lang))
        bad = "投诉" in text or "complain" in text.lower()
        return Reading(bad, 0.95 if bad else 0.05, "complaint" if bad else "question")

    module.understand = understand  # type: ignore[attr-defined]
    module.seen = seen  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "omnicrm.inbox.understanding", module)
    yield understand
