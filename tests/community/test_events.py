"""Events one request at a time, on SQLite and PostgreSQL: the sign-up order and the waiting list, cancellation and
promotion, ticket check-in (a ticket works once), walk-ins on a full event, and every refusal with its field and the
state left as it was."""

from __future__ import annotations

from datetime import timedelta

import pytest

from omnicrm.community.attendance import community_attendance, event_attendance
from omnicrm.community.check_in import check_in_ticket, walk_in
from omnicrm.community.communities import create_community
from omnicrm.community.events import cancel_event, create_event, get_event
from omnicrm.community.signups import cancel_sign_up, get_sign_up, sign_up, sign_ups
from omnicrm.community.tokens import event_token, ticket_token
from omnicrm.errors import Conflict, InputError, NotFound, OmnicrmError
from omnicrm.store.state import StateStore
from tests.community.checks import NOW, counts, event, rows

SECRET = "events-secret"


def refused(state: StateStore, kind: type[OmnicrmError], field: str, call: object, *args: object, **kw: object) -> str:
    """Call, expect ``kind`` naming ``field``, and the community tables and ingest buffer unchanged; the message."""
    before = counts(state)
    with pytest.raises(kind) as caught:
        call(*args, **kw)  # type: ignore[operator]
    assert [p.field for p in caught.value.problems] == [field], caught.value
    assert counts(state) == before
    return caught.value.message


def test_sign_ups_fill_the_seats_then_wait_in_order(state: StateStore) -> None:
    e = event(state, 2)
    first = [sign_up(state, e.id, c, by="test", now=NOW + timedelta(minutes=c)) for c in range(1, 6)]
    assert [(s.customer_id, s.status, s.position) for s in first] == [
        (1, "confirmed", None), (2, "confirmed", None), (3, "waiting", 1), (4, "waiting", 2), (5, "waiting", 3),
    ]  # fmt: skip
    again = sign_up(state, e.id, 4, by="test", now=NOW + timedelta(hours=1))
    assert (again.id, again.status, again.position, again.repeated) == (first[3].id, "waiting", 2, True)
    assert again.signed_up_at == NOW + timedelta(minutes=4)  # the first tap keeps its place

    cancelled = cancel_sign_up(state, e.id, 2, by="test", now=NOW + timedelta(hours=2))
    assert cancelled.sign_up.status == "cancelled"
    assert [(p.customer_id, p.status, p.confirmed_at) for p in cancelled.promoted] == [
        (3, "confirmed", NOW + timedelta(hours=2))
    ]
    waiting, total = sign_ups(state, e.id, status="waiting")
    assert total == 2 and [(w.customer_id, w.position) for w in waiting] == [(4, 1), (5, 2)]
    assert get_sign_up(state, first[4].id).position == 2

    assert cancel_sign_up(state, e.id, 4, by="test", now=NOW).promoted == []  # a waiting place frees no seat
    assert cancel_sign_up(state, e.id, 2, by="test", now=NOW).repeated  # cancelling again changes nothing
    back = sign_up(state, e.id, 2, by="test", now=NOW + timedelta(hours=3))  # back at the end of the line
    assert (back.id, back.status, back.seq, back.position) == (first[1].id, "waiting", 6, 2)
    assert [(r.customer_id, r.status) for r in rows(state, e.id)] == [
        (1, "confirmed"), (3, "confirmed"), (4, "cancelled"), (5, "waiting"), (2, "waiting"),
    ]  # fmt: skip
    assert event_attendance(state, e.id).as_dict() | {"starts_at": None} == {
        "event_id": e.id, "title_zh": "周末烘焙课", "title_en": None, "starts_at": None, "status": "scheduled",
        "capacity": 2, "confirmed": 2, "waiting": 2, "cancelled": 1, "checked_in": 0, "attended": 0, "walk_ins": 0,
        "unknown_walk_ins": 0, "no_shows": 2, "free_seat_walk_ins": 0, "show_rate": 0.0, "seats_taken": 2,
    }  # fmt: skip


def test_sign_up_refusals_name_the_field_and_change_nothing(state: StateStore) -> None:
    later = event(state, 5, signup_opens_at=NOW + timedelta(days=1))
    message = refused(state, Conflict, "signup_opens_at", sign_up, state, later.id, 7, by="t", now=NOW)
    assert message == f"sign-up for event {later.id} opens at {(NOW + timedelta(days=1)).isoformat()}"
    e = event(state, 5)
    sign_up(state, e.id, 1, by="t", now=NOW)
    message = refused(state, Conflict, "signup_closes_at", sign_up, state, e.id, 7, by="t", now=e.starts_at)
    assert message == f"sign-up for event {e.id} closed at {e.starts_at.isoformat()}"
    assert refused(state, NotFound, "event_id", sign_up, state, 999, 7, by="t", now=NOW) == "event 999 does not exist"
    assert (
        refused(state, InputError, "customer_id", sign_up, state, e.id, 0, by="t", now=NOW) == "0 is not a customer id"
    )
    message = refused(state, NotFound, "customer_id", cancel_sign_up, state, e.id, 7, by="t", now=NOW)
    assert message == f"customer 7 has not signed up for event {e.id}"
    cancel_event(state, e.id, reason="the oven broke", by="t", now=NOW)
    assert get_event(state, e.id).phase(NOW) == "cancelled"
    assert (
        refused(state, Conflict, "event_id", sign_up, state, e.id, 7, by="t", now=NOW) == f"event {e.id} was cancelled"
    )
    assert sign_up(state, e.id, 1, by="t", now=NOW).repeated  # who had signed up still reads their sign-up


def test_event_form_problems_all_at_once(state: StateStore) -> None:
    naive = NOW.replace(tzinfo=None)
    with pytest.raises(InputError) as caught:
        create_event(state, title_zh=" ", starts_at=naive, ends_at=None, capacity=0, by="t", now=NOW)
    assert [(p.field, p.reason) for p in caught.value.problems] == [
        ("title_zh", "required"),
        ("venue", "give the store code or the venue (or both)"),
        ("starts_at", "give it with an offset, e.g. +08:00"),
        ("capacity", "a whole number of seats from 1 to 100,000, not 0"),
    ]
    with pytest.raises(InputError) as caught:
        create_event(state, title_zh="课", venue="公园", starts_at=NOW - timedelta(hours=1), ends_at=NOW - timedelta(hours=2),
                     capacity=10, by="t", now=NOW)  # fmt: skip
    assert [(p.field, p.reason) for p in caught.value.problems] == [
        ("starts_at", f"must be in the future (it is {NOW.isoformat()} now)"),
        ("ends_at", f"must be after starts_at ({(NOW - timedelta(hours=1)).isoformat()})"),
    ]
    with pytest.raises(NotFound) as missing:
        event(state, 5, community_id=42)
    assert missing.value.problems[0].field == "community_id"
    assert counts(state)["community_events"] == 0


def test_a_ticket_checks_in_once(state: StateStore) -> None:
    community = create_community(state, name_zh="烘焙社", name_en="Bakers", interests=["baking"], by="t", now=NOW)
    e = event(state, 1, community_id=community.id)
    seat = sign_up(state, e.id, 11, by="t", now=NOW)
    queued = sign_up(state, e.id, 12, by="t", now=NOW)
    ticket, at = ticket_token(SECRET, seat.id), e.starts_at - timedelta(minutes=30)

    early = e.checkin_opens_at - timedelta(seconds=1)
    message = refused(state, Conflict, "checkin_opens_at", check_in_ticket, state, SECRET, ticket, by="c", now=early)
    assert message == f"check-in for event {e.id} opens at {e.checkin_opens_at.isoformat()}"
    forged = ticket[:-2] + ("AA" if ticket[-2:] != "AA" else "BB")
    assert refused(state, InputError, "ticket", check_in_ticket, state, SECRET, forged, by="c", now=at) == (
        "this ticket is not valid"
    )
    assert refused(state, InputError, "ticket", check_in_ticket, state, "another-secret", ticket, by="c", now=at)
    assert refused(
        state, InputError, "ticket", check_in_ticket, state, SECRET, event_token(SECRET, e.id), by="c", now=at
    )
    message = refused(state, Conflict, "ticket", check_in_ticket, state, SECRET, ticket_token(SECRET, queued.id), by="c",
                      now=at)  # fmt: skip
    assert message == f"sign-up {queued.id} of customer 12 is on the waiting list: it has no seat"

    done = check_in_ticket(state, SECRET, f" {ticket}\n", by="clerk-1", now=at, idempotency_key="scan-1")
    assert (done.customer_id, done.signup_id, done.method, done.at, done.repeated) == (11, seat.id, "ticket", at, False)
    retry = check_in_ticket(state, SECRET, ticket, by="clerk-1", now=at, idempotency_key="scan-1")
    assert (retry.id, retry.repeated) == (done.id, True)
    message = refused(state, Conflict, "ticket", check_in_ticket, state, SECRET, ticket, by="clerk-2", now=at)
    assert message == f"ticket of sign-up {seat.id} was already used at {at.isoformat()} (clerk-1)"
    assert refused(state, Conflict, "idempotency_key", check_in_ticket, state, SECRET, ticket_token(SECRET, queued.id),
                   by="c", now=at, idempotency_key="scan-1")  # fmt: skip
    message = refused(state, Conflict, "customer_id", cancel_sign_up, state, e.id, 11, by="t", now=at)
    assert "an attended sign-up cannot be cancelled" in message

    figures = community_attendance(state, community.id)
    assert (figures.attendees, figures.members, figures.totals["attended"]) == (1, {"checked_in": 1}, 1)
    late = e.checkin_closes_at
    other = sign_up(state, event(state, 3).id, 13, by="t", now=NOW)
    message = refused(state, Conflict, "checkin_closes_at", check_in_ticket, state, SECRET,
                      ticket_token(SECRET, other.id), by="c", now=late)  # fmt: skip
    assert message.startswith(f"check-in for event {other.event_id} closed at ")


def test_walk_ins_on_a_full_or_cancelled_event_are_refused(state: StateStore) -> None:
    e = event(state, 1, venue="滨江公园南门")
    sign_up(state, e.id, 21, by="t", now=NOW)
    token, at = event_token(SECRET, e.id), e.starts_at
    message = refused(state, Conflict, "event", walk_in, state, SECRET, token, "139 1234 0001", identity=None, now=at)
    assert message == f"event {e.id} is full: all 1 seats are taken"
    assert refused(state, InputError, "phone", walk_in, state, SECRET, token, "12345", identity=None, now=at)
    assert refused(
        state, InputError, "token", walk_in, state, SECRET, token + "x", "13912340001", identity=None, now=at
    )
    assert refused(state, InputError, "token", walk_in, state, SECRET, ticket_token(SECRET, 1), "13912340001",
                   identity=None, now=at)  # fmt: skip
    cancel_sign_up(state, e.id, 21, by="t", now=NOW)
    before = e.checkin_opens_at - timedelta(minutes=1)
    assert refused(state, Conflict, "checkin_opens_at", walk_in, state, SECRET, token, "13912340001", identity=None,
                   now=before)  # fmt: skip
    first = walk_in(state, SECRET, token, "139-1234-0001", identity=None, now=at)
    assert (first.customer_id, first.signup_id, first.method, first.message_id) == (None, None, "walk_in",
                                                                                   f"check-in-{first.id}")  # fmt: skip
    again = walk_in(state, SECRET, token, "+86 139 1234 0001", identity=None, now=at + timedelta(minutes=5))
    assert (again.id, again.repeated, again.at) == (first.id, True, at)
    assert counts(state)["ingest_buffer"] == 1  # the repeat wrote no second fact
    cancel_event(state, e.id, reason="storm warning", by="t", now=at)
    message = refused(state, Conflict, "event", walk_in, state, SECRET, token, "13912340002", identity=None, now=at)
    assert message == f"event {e.id} was cancelled"
