"""What the community tests share: an event to fill, the checks of the sign-up order straight from the tables, and
the row counts that a refused request must leave as they were."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from omnicrm.community.events import Event, create_event
from omnicrm.store.schema import (
    communities,
    community_checkins,
    community_events,
    community_members,
    community_signups,
    ingest_buffer,
)
from omnicrm.store.state import StateStore

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)  # sign-ups happen at NOW; the events start two days later


def event(state: StateStore, capacity: int, **kw: Any) -> Event:
    """An event at store SH01 starting two days after NOW, for two hours."""
    starts = NOW + timedelta(days=2)
    values = {"title_zh": "周末烘焙课", "store_code": "SH01", "starts_at": starts, "ends_at": starts + timedelta(hours=2),
              "capacity": capacity, "by": "test", "now": NOW, **kw}  # fmt: skip
    return create_event(state, **values)


def rows(state: StateStore, event_id: int) -> list[Any]:
    """The event's sign-ups in seq order."""
    s = community_signups
    with state.connect() as conn:
        return list(conn.execute(select(s).where(s.c.event_id == event_id).order_by(s.c.seq)).all())


def check_order(state: StateStore, event_id: int, capacity: int, people: int) -> list[Any]:
    """One row per person; seqs 1..people without a gap or a repeat; the first ``capacity`` confirmed and the rest
    waiting, in seq order; never more seats taken than the capacity."""
    found = rows(state, event_id)
    assert len(found) == people
    assert len({r.customer_id for r in found}) == people
    assert [r.seq for r in found] == list(range(1, people + 1))
    assert [r.status for r in found] == ["confirmed"] * capacity + ["waiting"] * (people - capacity)
    with state.connect() as conn:
        k = community_checkins
        walk_ins = len(conn.execute(select(k.c.id).where(k.c.event_id == event_id, k.c.signup_id.is_(None))).all())
    assert sum(r.status == "confirmed" for r in found) + walk_ins <= capacity
    return found


def counts(state: StateStore) -> dict[str, int]:
    """Rows in every community table and in the ingest buffer: unchanged after a refused request."""
    tables = (communities, community_members, community_events, community_signups, community_checkins, ingest_buffer)
    with state.connect() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in tables}
