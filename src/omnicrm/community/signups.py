"""Signing up for an event: a seat while there is one, else a place on the waiting list, in order.

- ``sign_up`` locks the event (``events.lock_event``), then gives the person a seat if the seats taken are fewer
  than the capacity, else puts them on the waiting list. Each sign-up takes the event's next ``seq``; the waiting
  list is the waiting sign-ups by seq, so it keeps the order people signed up in. Signing up again while signed up
  returns the same sign-up (``repeated``): retries and double taps are one sign-up. Someone who cancelled and signs
  up again goes to the end of the line.
- ``cancel_sign_up`` frees a confirmed seat and, in the same transaction, gives it to the first person waiting
  (``promoted``), so a freed seat is never lost between two requests and nobody jumps the line. An attended sign-up
  cannot be cancelled; cancelling again changes nothing.
- Every refusal (event cancelled, sign-up not open yet or closed, unknown event or sign-up) names the field and
  leaves the state unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from omnicrm.community.events import Event, lock_event, seats_taken
from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.loyalty.locks import transaction, utc, when
from omnicrm.store.schema import community_checkins, community_signups
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "STATUSES",
    "Cancellation",
    "SignUp",
    "cancel_sign_up",
    "get_sign_up",
    "sign_up",
    "sign_ups",
    "signup_of",
]

S, K = community_signups, community_checkins
STATUSES = ("confirmed", "waiting", "cancelled")


@dataclass(frozen=True)
class SignUp:
    """One person's sign-up for one event; ``position`` is their place on the waiting list (1 is next)."""

    id: int
    event_id: int
    customer_id: int
    status: str
    seq: int
    signed_up_at: datetime
    confirmed_at: datetime | None
    cancelled_at: datetime | None
    position: int | None = None
    repeated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Cancellation:
    """A cancelled sign-up and whom its seat went to (``repeated`` when it had been cancelled already)."""

    sign_up: SignUp
    promoted: list[SignUp] = field(default_factory=list)
    repeated: bool = False


def signup_of(row: Any, *, position: int | None = None, repeated: bool = False) -> SignUp:
    """A ``community_signups`` row as a SignUp (times in UTC)."""
    return SignUp(
        int(row.id), int(row.event_id), int(row.customer_id), row.status, int(row.seq), utc(row.signed_up_at),
        None if row.confirmed_at is None else utc(row.confirmed_at),
        None if row.cancelled_at is None else utc(row.cancelled_at), position, repeated,
    )  # fmt: skip


def _customer(customer_id: int) -> int:
    if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id < 1:
        raise InputError(f"{customer_id!r} is not a customer id", [Problem("a whole number from 1", "customer_id")])
    return customer_id


def _position(conn: Connection, row: Any) -> int | None:
    """The place on the waiting list of a waiting sign-up (1 is next), else None."""
    if row.status != "waiting":
        return None
    ahead = select(func.count()).where(S.c.event_id == row.event_id, S.c.status == "waiting", S.c.seq < row.seq)
    return int(conn.execute(ahead).scalar_one()) + 1


def _open_for_sign_up(event: Event, at: datetime) -> None:
    if event.status == "cancelled":
        raise Conflict(f"event {event.id} was cancelled", [Problem("a cancelled event takes no sign-ups", "event_id")])
    if at < event.signup_opens_at:
        raise Conflict(
            f"sign-up for event {event.id} opens at {event.signup_opens_at.isoformat()}",
            [Problem("sign-up has not opened yet", "signup_opens_at")],
        )
    if at >= event.signup_closes_at:
        raise Conflict(
            f"sign-up for event {event.id} closed at {event.signup_closes_at.isoformat()}",
            [Problem("sign-up is closed", "signup_closes_at")],
        )


def _row(conn: Connection, event_id: int, customer_id: int) -> Any:
    return conn.execute(select(S).where(S.c.event_id == event_id, S.c.customer_id == customer_id)).first()


def sign_up(state: StateStore, event_id: int, customer_id: int, *, by: str, now: datetime | None = None) -> SignUp:
    """Sign the customer up: confirmed while seats are free, else waiting; the same person again is one sign-up."""
    now_ = when(now, utcnow(), "now")
    customer = _customer(customer_id)

    def work(conn: Connection) -> SignUp:
        event = lock_event(conn, event_id)
        row = _row(conn, event_id, customer)
        if row is not None and row.status != "cancelled":
            return signup_of(row, position=_position(conn, row), repeated=True)
        _open_for_sign_up(event, now_)
        walked_in = conn.execute(select(K.c.at).where(K.c.event_id == event_id, K.c.customer_id == customer)).scalar()
        if walked_in is not None:  # they came as a walk-in and hold a seat already
            raise Conflict(f"customer {customer} already checked in at event {event_id} on "
                           f"{utc(walked_in).isoformat()}", [Problem("already checked in", "customer_id")])  # fmt: skip
        seat = seats_taken(conn, event_id) < event.capacity
        seq = int(conn.execute(select(func.coalesce(func.max(S.c.seq), 0)).where(S.c.event_id == event_id))
                  .scalar_one()) + 1  # fmt: skip
        values = {"status": "confirmed" if seat else "waiting", "seq": seq, "signed_up_at": now_,
                  "confirmed_at": now_ if seat else None, "cancelled_at": None, "recorded_by": by}  # fmt: skip
        if row is None:
            conn.execute(insert(S).values(event_id=event_id, customer_id=customer, **values))
        else:
            conn.execute(update(S).where(S.c.id == row.id).values(**values))
        fresh = _row(conn, event_id, customer)
        return signup_of(fresh, position=_position(conn, fresh))

    return transaction(state, work)


def _fill_seats(conn: Connection, event: Event, now: datetime, by: str) -> list[SignUp]:
    """Give free seats to the people waiting longest, in order; the sign-ups promoted."""
    free = event.capacity - seats_taken(conn, event.id)
    if free <= 0:
        return []
    first = conn.execute(
        select(S.c.id).where(S.c.event_id == event.id, S.c.status == "waiting").order_by(S.c.seq).limit(free)
    ).all()
    ids = [int(r.id) for r in first]
    if not ids:
        return []
    conn.execute(update(S).where(and_(S.c.id.in_(ids), S.c.status == "waiting"))
                 .values(status="confirmed", confirmed_at=now, recorded_by=by))  # fmt: skip
    return [signup_of(r) for r in conn.execute(select(S).where(S.c.id.in_(ids)).order_by(S.c.seq)).all()]


def cancel_sign_up(
    state: StateStore, event_id: int, customer_id: int, *, by: str, now: datetime | None = None
) -> Cancellation:
    """Cancel the customer's sign-up; a seat it frees goes to the first person waiting, in the same transaction."""
    now_ = when(now, utcnow(), "now")
    customer = _customer(customer_id)

    def work(conn: Connection) -> Cancellation:
        event = lock_event(conn, event_id)
        row = _row(conn, event_id, customer)
        if row is None:
            raise NotFound(f"customer {customer} has not signed up for event {event_id}",
                           [Problem("no sign-up of this customer", "customer_id")])  # fmt: skip
        if row.status == "cancelled":
            return Cancellation(signup_of(row), repeated=True)
        attended = conn.execute(select(K.c.at).where(K.c.signup_id == row.id)).scalar()
        if attended is not None:
            raise Conflict(
                f"customer {customer} checked in at event {event_id} on {utc(attended).isoformat()}; "
                "an attended sign-up cannot be cancelled",
                [Problem("already checked in", "customer_id")],
            )
        conn.execute(update(S).where(S.c.id == row.id).values(status="cancelled", cancelled_at=now_, recorded_by=by))
        cancelled = replace(signup_of(row), status="cancelled", cancelled_at=now_)
        promoted: list[SignUp] = []
        if row.status == "confirmed" and event.status == "scheduled" and now_ < event.ends_at:
            promoted = _fill_seats(conn, event, now_, by)
        return Cancellation(cancelled, promoted)

    return transaction(state, work)


def get_sign_up(state: StateStore, signup_id: int) -> SignUp:
    with state.connect() as conn:
        row = conn.execute(select(S).where(S.c.id == signup_id)).first()
        if row is None:
            raise NotFound(f"sign-up {signup_id} does not exist", [Problem("unknown sign-up", "signup_id")])
        return signup_of(row, position=_position(conn, row))


def sign_ups(
    state: StateStore, event_id: int, *, status: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[SignUp], int]:
    """An event's sign-ups in sign-up order (of one status if given), a page at a time, and how many there are.
    Listed by ``waiting``, each carries its place on the waiting list."""
    if status is not None and status not in STATUSES:
        raise InputError(f"unknown sign-up status {status!r}", [Problem(f"one of {', '.join(STATUSES)}", "status")])
    where = [S.c.event_id == event_id] + ([] if status is None else [S.c.status == status])
    with state.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(S).where(*where)).scalar_one())
        rows = conn.execute(select(S).where(*where).order_by(S.c.seq).limit(limit).offset(offset)).all()
    if status == "waiting":
        return [signup_of(r, position=offset + i + 1) for i, r in enumerate(rows)], total
    return [signup_of(r) for r in rows], total
