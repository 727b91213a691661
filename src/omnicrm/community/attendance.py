"""Attendance per event and per community: who signed up, who came, who did not, how walk-ins added to it.

Grouped SQL over the sign-ups and check-ins of the state store, a few statements whatever the number of events.
``attended`` counts confirmed sign-ups that checked in; ``no_shows`` the confirmed sign-ups that did not (final
once the event has ended); ``show_rate`` is attended ÷ confirmed. Walk-ins are counted apart, with those OneID did
not know at the door (``unknown_walk_ins``: the next refresh links them through their identify fact) and those who
took a free seat rather than their own sign-up's (``free_seat_walk_ins``; ``seats_taken`` adds them to the confirmed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, func, select

from omnicrm.community.communities import get_community
from omnicrm.community.events import Event, event_of
from omnicrm.errors import NotFound, Problem
from omnicrm.loyalty.locks import chunks
from omnicrm.store.schema import community_checkins, community_events, community_members, community_signups
from omnicrm.store.state import StateStore

__all__ = ["Attendance", "CommunityAttendance", "community_attendance", "event_attendance"]

E, S, K, M = community_events, community_signups, community_checkins, community_members


@dataclass(frozen=True)
class Attendance:
    """One event's figures (see the module docstring)."""

    event_id: int
    title_zh: str
    title_en: str | None
    starts_at: datetime
    status: str
    capacity: int
    confirmed: int = 0
    waiting: int = 0
    cancelled: int = 0
    checked_in: int = 0
    attended: int = 0
    walk_ins: int = 0
    unknown_walk_ins: int = 0
    no_shows: int = 0
    free_seat_walk_ins: int = 0

    @property
    def seats_taken(self) -> int:
        """Confirmed sign-ups and the walk-ins who took a free seat (never more than the capacity)."""
        return self.confirmed + self.free_seat_walk_ins

    @property
    def show_rate(self) -> float | None:
        return self.attended / self.confirmed if self.confirmed else None

    def as_dict(self) -> dict[str, Any]:
        out = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}
        return out | {"show_rate": self.show_rate, "seats_taken": self.seats_taken}


@dataclass(frozen=True)
class CommunityAttendance:
    """A community's events with their figures, the sums, the distinct people who came (customers, and phones OneID
    did not know at the door), and its members by how they came."""

    community_id: int
    events: list[Attendance]
    attendees: int
    members: dict[str, int]

    @property
    def totals(self) -> dict[str, int]:
        names = ("confirmed", "waiting", "cancelled", "checked_in", "attended", "walk_ins", "unknown_walk_ins",
                 "no_shows")  # fmt: skip
        return {n: sum(getattr(a, n) for a in self.events) for n in names}

    def as_dict(self) -> dict[str, Any]:
        confirmed, attended = self.totals["confirmed"], self.totals["attended"]
        return {"community_id": self.community_id, "events": [a.as_dict() for a in self.events],
                "totals": self.totals | {"show_rate": attended / confirmed if confirmed else None},
                "attendees": self.attendees, "members": self.members}  # fmt: skip


def _figures(conn: Connection, events: list[Event]) -> list[Attendance]:
    ids = [e.id for e in events]
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    for part in chunks(ids):
        for event_id, status, n in conn.execute(
            select(S.c.event_id, S.c.status, func.count()).where(S.c.event_id.in_(part))
            .group_by(S.c.event_id, S.c.status)
        ):  # fmt: skip
            counts[int(event_id)][status] = int(n)
        walk_in = K.c.method == "walk_in"
        for event_id, total, walk_ins, unknown, free in conn.execute(
            select(K.c.event_id, func.count(), func.count().filter(walk_in),
                   func.count().filter(and_(walk_in, K.c.customer_id.is_(None))),
                   func.count().filter(K.c.signup_id.is_(None)))
            .where(K.c.event_id.in_(part)).group_by(K.c.event_id)
        ):  # fmt: skip
            counts[int(event_id)] |= {"checked_in": int(total), "walk_ins": int(walk_ins), "unknown": int(unknown),
                                      "free": int(free)}  # fmt: skip
        joined = S.join(K, K.c.signup_id == S.c.id, isouter=True)
        for event_id, attended, missing in conn.execute(
            select(S.c.event_id, func.count(K.c.id), func.count().filter(K.c.id.is_(None))).select_from(joined)
            .where(S.c.event_id.in_(part), S.c.status == "confirmed").group_by(S.c.event_id)
        ):  # fmt: skip
            counts[int(event_id)] |= {"attended": int(attended), "no_shows": int(missing)}
    out = []
    for e in events:
        c = counts[e.id]
        out.append(Attendance(
            e.id, e.title_zh, e.title_en, e.starts_at, e.status, e.capacity, c.get("confirmed", 0),
            c.get("waiting", 0), c.get("cancelled", 0), c.get("checked_in", 0), c.get("attended", 0),
            c.get("walk_ins", 0), c.get("unknown", 0), c.get("no_shows", 0), c.get("free", 0),
        ))  # fmt: skip
    return out


def event_attendance(state: StateStore, event_id: int) -> Attendance:
    with state.connect() as conn:
        row = conn.execute(select(E).where(E.c.id == event_id)).first()
        if row is None:
            raise NotFound(f"event {event_id} does not exist", [Problem("unknown event", "event_id")])
        return _figures(conn, [event_of(row)])[0]


def community_attendance(state: StateStore, community_id: int) -> CommunityAttendance:
    """Every event of the community (the latest start first) with its figures; NotFound for an unknown community."""
    community = get_community(state, community_id)
    with state.connect() as conn:
        rows = conn.execute(select(E).where(E.c.community_id == community_id)
                            .order_by(E.c.starts_at.desc(), E.c.id.desc())).all()  # fmt: skip
        events = [event_of(r) for r in rows]
        unknown = case((K.c.customer_id.is_(None), K.c.phone_key))
        attendees = conn.execute(
            select(func.count(func.distinct(K.c.customer_id)) + func.count(func.distinct(unknown)))
            .select_from(K.join(E, E.c.id == K.c.event_id)).where(E.c.community_id == community_id)
        ).scalar_one()  # fmt: skip
        figures = _figures(conn, events)
    return CommunityAttendance(community_id, figures, int(attendees), community.members)
