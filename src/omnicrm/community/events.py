"""Events at a store or venue, of a community or of none: capacity, a sign-up window and a check-in window.

An event's seats are taken by its confirmed sign-ups and by the walk-ins who checked in without one; their number is
never stored but counted while the event's row is locked. Every change of seats (a sign-up, a cancellation and the
promotion it triggers, a walk-in) is one transaction that first locks that row with ``lock_event``: ``SELECT … FOR
UPDATE`` on PostgreSQL, where every later statement of the transaction sees what the previous holder committed; on
SQLite the state store's ``BEGIN IMMEDIATE`` makes the writer alone. So however many people sign up at once, the
seats are never more than the capacity.

Sign-up is open from ``signup_opens_at`` (default: creation) until ``signup_closes_at`` (default: the start);
check-in from ``checkin_opens_at`` (default: an hour before the start) until ``checkin_closes_at`` (default: the
end). A cancelled event takes no sign-ups and no check-ins; what was recorded stays for the report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.loyalty.locks import transaction, utc, when
from omnicrm.store.schema import communities, community_checkins, community_events, community_signups
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "CHECKIN_EARLY",
    "MAX_CAPACITY",
    "Event",
    "cancel_event",
    "create_event",
    "event_of",
    "get_event",
    "list_events",
    "lock_event",
    "open_for_check_in",
    "seats_taken",
]

E, S, K = community_events, community_signups, community_checkins
CHECKIN_EARLY = timedelta(hours=1)
MAX_CAPACITY = 100_000
_TIMES = ("starts_at", "ends_at", "signup_opens_at", "signup_closes_at", "checkin_opens_at", "checkin_closes_at")


@dataclass(frozen=True)
class Event:
    """One event; times in UTC. ``status`` is scheduled or cancelled; ``phase`` says where it stands now."""

    id: int
    community_id: int | None
    title_zh: str
    title_en: str | None
    store_code: str | None
    venue: str | None
    starts_at: datetime
    ends_at: datetime
    capacity: int
    signup_opens_at: datetime
    signup_closes_at: datetime
    checkin_opens_at: datetime
    checkin_closes_at: datetime
    status: str
    cancelled_at: datetime | None
    cancel_reason: str | None
    created_by: str
    created_at: datetime

    def title(self, lang: str) -> str:
        """The title in ``lang`` (zh-CN or en); English falls back to the Chinese title."""
        return self.title_en if lang == "en" and self.title_en else self.title_zh

    def phase(self, at: datetime) -> str:
        """cancelled, upcoming (sign-up not open yet), signup (open), closed (sign-up over, not started), on, ended."""
        if self.status == "cancelled":
            return "cancelled"
        if at >= self.ends_at:
            return "ended"
        if at >= self.starts_at:
            return "on"
        if at < self.signup_opens_at:
            return "upcoming"
        return "signup" if at < self.signup_closes_at else "closed"

    def as_dict(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


def event_of(row: Any) -> Event:
    """A ``community_events`` row as an Event (times in UTC)."""
    times = {name: utc(getattr(row, name)) for name in _TIMES}
    return Event(
        int(row.id), None if row.community_id is None else int(row.community_id), row.title_zh, row.title_en,
        row.store_code, row.venue, capacity=int(row.capacity), status=row.status,
        cancelled_at=None if row.cancelled_at is None else utc(row.cancelled_at), cancel_reason=row.cancel_reason,
        created_by=row.created_by, created_at=utc(row.created_at), **times,
    )  # fmt: skip


def _text(value: str | None, field: str, limit: int, problems: list[Problem], required: bool = False) -> str | None:
    text = (value or "").strip()
    if required and not text:
        problems.append(Problem("required", field))
    elif len(text) > limit:
        problems.append(Problem(f"at most {limit} characters, not {len(text)}", field))
    return text or None


def _time(value: datetime | None, field: str, problems: list[Problem]) -> datetime | None:
    if value is None:
        return None
    try:
        return when(value, value, field)
    except InputError as exc:
        problems.extend(exc.problems)
        return None


def _check_times(times: dict[str, datetime | None], now: datetime, problems: list[Problem]) -> dict[str, datetime]:
    """The six times with their defaults filled in; a start in the past and a pair out of order are problems, each
    naming the later field."""
    starts, ends = times["starts_at"], times["ends_at"]
    if starts is None or ends is None:
        problems += [Problem("required, with a time zone", f) for f in ("starts_at", "ends_at") if times[f] is None]
        return {}
    out = {
        "starts_at": starts,
        "ends_at": ends,
        "signup_opens_at": times["signup_opens_at"] or now,
        "signup_closes_at": times["signup_closes_at"] or starts,
        "checkin_opens_at": times["checkin_opens_at"] or starts - CHECKIN_EARLY,
        "checkin_closes_at": times["checkin_closes_at"] or ends,
    }
    if starts <= now:
        problems.append(Problem(f"must be in the future (it is {now.isoformat()} now)", "starts_at"))
    given = {name for name, value in times.items() if value is not None}
    for first, then in (("starts_at", "ends_at"), ("signup_opens_at", "signup_closes_at"),
                        ("checkin_opens_at", "checkin_closes_at")):  # fmt: skip
        # a pair of defaults is only wrong when the start or end is, which is reported already
        if {first, then} & given and out[then] <= out[first]:
            problems.append(Problem(f"must be after {first} ({out[first].isoformat()})", then))
    if "signup_closes_at" in given and out["signup_closes_at"] > ends:
        problems.append(Problem(f"sign-up must close by the end of the event ({ends.isoformat()})", "signup_closes_at"))
    return out


def create_event(
    state: StateStore, *, title_zh: str, starts_at: datetime | None, ends_at: datetime | None, capacity: int, by: str,
    community_id: int | None = None, title_en: str | None = None, store_code: str | None = None,
    venue: str | None = None, signup_opens_at: datetime | None = None, signup_closes_at: datetime | None = None,
    checkin_opens_at: datetime | None = None, checkin_closes_at: datetime | None = None, now: datetime | None = None,
) -> Event:  # fmt: skip
    """Create an event; every problem of the request is reported at once (InputError), each naming its field.

    It needs a Chinese title, a store code or a venue, a start and an end with a time zone, and a capacity of 1 to
    ``MAX_CAPACITY``. The community, if given, must exist and be active.
    """
    now_ = when(now, utcnow(), "now")
    problems: list[Problem] = []
    values: dict[str, Any] = {
        "title_zh": _text(title_zh, "title_zh", 200, problems, required=True),
        "title_en": _text(title_en, "title_en", 200, problems),
        "store_code": _text(store_code, "store_code", 64, problems),
        "venue": _text(venue, "venue", 255, problems),
    }
    if (
        values["store_code"] is None
        and values["venue"] is None
        and not any(p.field in ("store_code", "venue") for p in problems)
    ):
        problems.append(Problem("give the store code or the venue (or both)", "venue"))
    given = {"starts_at": starts_at, "ends_at": ends_at, "signup_opens_at": signup_opens_at,
             "signup_closes_at": signup_closes_at, "checkin_opens_at": checkin_opens_at,
             "checkin_closes_at": checkin_closes_at}  # fmt: skip
    times = {name: _time(value, name, problems) for name, value in given.items()}
    if not any(p.field in given for p in problems):
        values.update(_check_times(times, now_, problems))
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= capacity <= MAX_CAPACITY:
        problems.append(Problem(f"a whole number of seats from 1 to {MAX_CAPACITY:,}, not {capacity!r}", "capacity"))
    if problems:
        raise InputError("the event cannot be created", problems)

    def work(conn: Connection) -> Event:
        if community_id is not None:
            status = conn.execute(select(communities.c.status).where(communities.c.id == community_id)).scalar()
            if status is None:
                raise NotFound(f"community {community_id} does not exist", [Problem("unknown", "community_id")])
            if status != "active":
                raise Conflict(f"community {community_id} is {status}", [Problem("archived", "community_id")])
        row = {**values, "community_id": community_id, "capacity": capacity, "status": "scheduled",
               "created_by": by, "created_at": now_}  # fmt: skip
        new_id = conn.execute(insert(E).values(**row)).inserted_primary_key
        assert new_id is not None
        return event_of(conn.execute(select(E).where(E.c.id == new_id[0])).one())

    return transaction(state, work)


def _missing(event_id: int) -> NotFound:
    return NotFound(f"event {event_id} does not exist", [Problem("unknown event", "event_id")])


def lock_event(conn: Connection, event_id: int) -> Event:
    """Lock the event's row for the rest of the transaction (every change of its seats waits) and return it."""
    row = conn.execute(select(E).where(E.c.id == event_id).with_for_update()).first()
    if row is None:
        raise _missing(event_id)
    return event_of(row)


def seats_taken(conn: Connection, event_id: int) -> int:
    """Confirmed sign-ups plus walk-ins who checked in without one."""
    confirmed = select(func.count()).where(S.c.event_id == event_id, S.c.status == "confirmed").scalar_subquery()
    walk_ins = select(func.count()).where(K.c.event_id == event_id, K.c.signup_id.is_(None)).scalar_subquery()
    return int(conn.execute(select(confirmed + walk_ins)).scalar_one())


def open_for_check_in(event: Event, at: datetime) -> None:
    """Conflict (naming the field) unless the event takes check-ins at ``at``."""
    if event.status == "cancelled":
        raise Conflict(f"event {event.id} was cancelled", [Problem("a cancelled event takes no check-ins", "event")])
    if at < event.checkin_opens_at:
        raise Conflict(
            f"check-in for event {event.id} opens at {event.checkin_opens_at.isoformat()}",
            [Problem("check-in has not opened yet", "checkin_opens_at")],
        )
    if at >= event.checkin_closes_at:
        raise Conflict(
            f"check-in for event {event.id} closed at {event.checkin_closes_at.isoformat()}",
            [Problem("check-in is over", "checkin_closes_at")],
        )


def get_event(state: StateStore, event_id: int) -> Event:
    with state.connect() as conn:
        row = conn.execute(select(E).where(E.c.id == event_id)).first()
    if row is None:
        raise _missing(event_id)
    return event_of(row)


def list_events(
    state: StateStore, *, community_id: int | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Event], int]:
    """Events, the latest start first (of one community if given), a page at a time, and how many there are."""
    where = [] if community_id is None else [E.c.community_id == community_id]
    with state.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(E).where(*where)).scalar_one())
        rows = conn.execute(select(E).where(*where).order_by(E.c.starts_at.desc(), E.c.id.desc())
                            .limit(limit).offset(offset)).all()  # fmt: skip
    return [event_of(r) for r in rows], total


def cancel_event(state: StateStore, event_id: int, *, reason: str, by: str, now: datetime | None = None) -> Event:
    """Cancel an event that has not ended (cancelling again changes nothing); sign-ups and check-ins are kept."""
    now_ = when(now, utcnow(), "now")
    why = (reason or "").strip()
    if not why or len(why) > 1000:
        raise InputError(f"cancelling event {event_id} needs a reason", [Problem("1 to 1,000 characters", "reason")])

    def work(conn: Connection) -> Event:
        event = lock_event(conn, event_id)
        if event.status == "cancelled":
            return event
        if now_ >= event.ends_at:
            raise Conflict(f"event {event_id} has ended; it cannot be cancelled", [Problem("ended", "event_id")])
        conn.execute(update(E).where(E.c.id == event_id).values(status="cancelled", cancelled_at=now_,
                                                                 cancel_reason=why))  # fmt: skip
        return event_of(conn.execute(select(E).where(E.c.id == event_id)).one())

    return transaction(state, work)
