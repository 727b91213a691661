"""Checking people in at an event (O2O): a clerk scans a ticket, or a walk-in scans the venue's QR code.

- ``check_in_ticket``: the ticket of a confirmed sign-up (``tokens.ticket_token``), scanned at the door. A ticket is
  used once (the check-in row's unique ``signup_id``); a second scan is refused and says when it was used. A request
  with an idempotency key that was already used returns the first check-in (a till retrying after a timeout).
- ``walk_in``: a person scans the venue QR code (``/e/{token}``) and gives a phone number. They are checked in
  against their OneID customer when OneID knows the phone (a confirmed sign-up of theirs is used as their seat),
  and else against the phone alone. Known or not, an ``identify`` fact with the phone and the event as context is
  written to the ingest buffer under the source ``omnicrm-check-in``, in the same transaction: the next OneID refresh
  joins that record to whoever holds the phone, or makes a new customer of it. A walk-in without a sign-up takes a
  free seat; when none is left the check-in is refused. Checking in again with the same phone (or as the same
  customer) returns the first check-in (``repeated``), writing nothing.
- Both lock the event's row first (``events.lock_event``), so a walk-in can never take a seat a concurrent sign-up
  took. A check-in at an event of a community makes a known person a member (source ``checked_in``).
- Refusals (a forged or altered token, a cancelled event, outside the check-in window, a ticket used, a waiting or
  cancelled sign-up, a full event) are Conflicts or InputErrors naming the field, and leave the state unchanged: no
  check-in, no fact.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, update

from omnicrm.community.communities import add_members
from omnicrm.community.events import Event, lock_event, open_for_check_in, seats_taken
from omnicrm.community.people import normalise_phone, phone_holder
from omnicrm.community.tokens import read_event_token, read_ticket
from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.ingest.segment import Message, normalise
from omnicrm.loyalty.locks import insert_or_nothing, transaction, utc, when
from omnicrm.store.schema import community_checkins, community_signups, ingest_buffer
from omnicrm.store.state import StateStore, utcnow

__all__ = ["INTERNAL_SOURCE", "WALK_IN_PAGE", "CheckIn", "check_in_ticket", "check_ins", "walk_in"]

S, K = community_signups, community_checkins
INTERNAL_SOURCE = "omnicrm-check-in"
WALK_IN_PAGE = "walk-in page"
_FACT_BYTES = 32 * 1024


@dataclass(frozen=True)
class CheckIn:
    """One person's check-in at one event; ``repeated`` when a repeat of the request found it."""

    id: int
    event_id: int
    signup_id: int | None
    customer_id: int | None
    method: str
    at: datetime
    recorded_by: str
    message_id: str | None = None
    repeated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


def _check_in_of(row: Any, repeated: bool = False) -> CheckIn:
    return CheckIn(
        int(row.id), int(row.event_id), None if row.signup_id is None else int(row.signup_id),
        None if row.customer_id is None else int(row.customer_id), row.method, utc(row.at), row.recorded_by,
        row.message_id, repeated,
    )  # fmt: skip


def _record(conn: Connection, event: Event, now: datetime, **values: Any) -> CheckIn:
    """Insert the check-in and, for a known person at a community's event, their membership."""
    new_id = conn.execute(insert(K).values(event_id=event.id, at=now, **values)).inserted_primary_key
    assert new_id is not None
    customer = values.get("customer_id")
    if event.community_id is not None and customer is not None:
        with contextlib.suppress(Conflict):  # an archived community takes no new members; the check-in stands
            add_members(conn, event.community_id, [int(customer)], "checked_in", now, str(values["recorded_by"]))
    return _check_in_of(conn.execute(select(K).where(K.c.id == new_id[0])).one())


def check_in_ticket(
    state: StateStore, secret: str, ticket: str, *, by: str, idempotency_key: str | None = None,
    now: datetime | None = None,
) -> CheckIn:  # fmt: skip
    """Check in the holder of a ticket; see the module docstring for what is refused."""
    signup_id = read_ticket(secret, ticket)
    now_ = when(now, utcnow(), "now")
    key = (idempotency_key or "").strip() or None
    if key is not None and len(key) > 255:
        raise InputError("the idempotency key is too long", [Problem("at most 255 characters", "idempotency_key")])

    def work(conn: Connection) -> CheckIn:
        if key is not None:
            earlier = conn.execute(select(K).where(K.c.idempotency_key == key)).first()
            if earlier is not None:
                if earlier.signup_id != signup_id:
                    raise Conflict("this idempotency key was used for another check-in",
                                   [Problem("use a new key for each check-in", "idempotency_key")])  # fmt: skip
                return _check_in_of(earlier, repeated=True)
        event_id = conn.execute(select(S.c.event_id).where(S.c.id == signup_id)).scalar()
        if event_id is None:
            raise NotFound(f"ticket of sign-up {signup_id}: no such sign-up", [Problem("unknown sign-up", "ticket")])
        event = lock_event(conn, int(event_id))
        row = conn.execute(select(S).where(S.c.id == signup_id)).one()
        if event.status == "cancelled":
            open_for_check_in(event, now_)  # refuses: cancelled
        used = conn.execute(select(K).where(K.c.signup_id == signup_id)).first()
        if used is not None:
            raise Conflict(
                f"ticket of sign-up {signup_id} was already used at {utc(used.at).isoformat()} ({used.recorded_by})",
                [Problem(f"used at {utc(used.at).isoformat()}", "ticket")],
            )
        open_for_check_in(event, now_)
        if row.status != "confirmed":
            why = "was cancelled" if row.status == "cancelled" else "is on the waiting list: it has no seat"
            raise Conflict(f"sign-up {signup_id} of customer {row.customer_id} {why}", [Problem(why, "ticket")])
        walked = conn.execute(select(K).where(K.c.event_id == event.id, K.c.customer_id == row.customer_id)).first()
        if walked is not None:
            raise Conflict(f"customer {row.customer_id} already checked in at {utc(walked.at).isoformat()}",
                           [Problem("already checked in", "ticket")])  # fmt: skip
        return _record(conn, event, now_, signup_id=signup_id, customer_id=int(row.customer_id), method="ticket",
                       idempotency_key=key, recorded_by=by)  # fmt: skip

    return transaction(state, work)


def _identify(event: Event, check_in_id: int, phone: str, now: datetime) -> Message:
    """The identify fact of a walk-in: the phone as a trait, the event and store as context."""
    raw = {
        "type": "identify",
        "messageId": f"check-in-{check_in_id}",
        "anonymousId": f"check-in-{check_in_id}",
        "traits": {"phone": phone},
        "timestamp": now.isoformat(),
        "context": {"check_in": {"id": check_in_id, "event_id": event.id, "community_id": event.community_id,
                                 "store_code": event.store_code, "venue": event.venue}},
    }  # fmt: skip
    out = normalise(raw, index=None, received_at=now, implied_type="identify", max_bytes=_FACT_BYTES)
    if not isinstance(out, Message):  # our own message: only an over-long venue could make it too big
        raise InputError("the check-in fact cannot be written", out)
    return out


def walk_in(
    state: StateStore, secret: str, token: str, phone: str, *, identity: Path | None, by: str = WALK_IN_PAGE,
    now: datetime | None = None,
) -> CheckIn:  # fmt: skip
    """Check in a walk-in who scanned the venue QR code and gave ``phone``; see the module docstring."""
    event_id = read_event_token(secret, token)
    now_ = when(now, utcnow(), "now")
    number = normalise_phone(phone)
    key = f"phone::{number}"
    customer = phone_holder(identity, number)

    def work(conn: Connection) -> CheckIn:
        event = lock_event(conn, event_id)
        if event.status == "cancelled":
            open_for_check_in(event, now_)  # refuses: cancelled
        same = [K.c.phone_key == key] + ([] if customer is None else [K.c.customer_id == customer])
        earlier = conn.execute(select(K).where(K.c.event_id == event_id, or_(*same))).first()
        if earlier is not None:
            return _check_in_of(earlier, repeated=True)
        open_for_check_in(event, now_)
        seat = None
        if customer is not None:
            seat = conn.execute(select(S.c.id).where(S.c.event_id == event_id, S.c.customer_id == customer,
                                                     S.c.status == "confirmed")).scalar()  # fmt: skip
        if seat is None and seats_taken(conn, event_id) >= event.capacity:
            waiting = conn.execute(select(func.count()).where(S.c.event_id == event_id, S.c.status == "waiting"))
            raise Conflict(
                f"event {event_id} is full: all {event.capacity} seats are taken",
                [Problem(f"no free seat for a walk-in ({waiting.scalar_one()} waiting)", "event")],
            )
        done = _record(conn, event, now_, signup_id=seat, customer_id=customer, phone_key=key, method="walk_in",
                       recorded_by=by)  # fmt: skip
        fact = _identify(event, done.id, number, now_)
        row = {"source": INTERNAL_SOURCE, "message_id": fact.message_id, "type": fact.type, "received_at": now_,
               "payload": fact.json}  # fmt: skip
        insert_or_nothing(conn, ingest_buffer, [row])
        conn.execute(update(K).where(K.c.id == done.id).values(message_id=fact.message_id))
        return CheckIn(**{**asdict(done), "message_id": fact.message_id})

    return transaction(state, work)


def check_ins(state: StateStore, event_id: int, *, limit: int = 50, offset: int = 0) -> tuple[list[CheckIn], int]:
    """An event's check-ins, the latest first, a page at a time, and how many there are."""
    with state.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(K).where(K.c.event_id == event_id)).scalar_one())
        rows = conn.execute(select(K).where(K.c.event_id == event_id).order_by(K.c.at.desc(), K.c.id.desc())
                            .limit(limit).offset(offset)).all()  # fmt: skip
    return [_check_in_of(r) for r in rows], total
