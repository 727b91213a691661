"""Walk-ins through OneID (O2O), on SQLite and PostgreSQL: a phone OneID knows checks in as its customer and makes them
a member; an unknown one checks in by phone alone. Either way an identify fact goes through ingest, and after the
loader and the next OneID refresh the check-in's record belongs to the person who holds the phone."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from omnicrm.community.check_in import INTERNAL_SOURCE, walk_in
from omnicrm.community.communities import create_community, members
from omnicrm.community.signups import sign_up
from omnicrm.community.tokens import event_token
from omnicrm.errors import Conflict
from omnicrm.identity.explain import lookup
from omnicrm.identity.refresh import refresh_identity
from omnicrm.ingest.loader import load
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import ingest_buffer
from omnicrm.store.state import StateStore
from tests.community.checks import NOW, event
from tests.portrait.test_tags import ts, write

SECRET = "walk-in-secret"
KNOWN, STRANGER, SIGNED = "13912345601", "13912345602", "13912345603"


def person(phone: str, name: str, key: str) -> dict[str, object]:
    return {"source": "crm", "source_key": key, "phone": phone, "name": name, "observed_at": ts("2026-03-01")}


def test_a_walk_in_is_linked_to_their_oneid_customer(state: StateStore, tmp_path: Path) -> None:
    facts, derived = FactsStore(tmp_path / "facts"), DerivedStore(tmp_path / "derived")
    write(facts, "person", [person(KNOWN, "林晓", "m1"), person(SIGNED, "周舟", "m2")], "crm-1")
    refresh_identity(state, Engine(facts), derived, probabilistic=False)
    snapshot = derived.current("identity")
    (known,), (signed,) = lookup(snapshot, "phone", KNOWN), lookup(snapshot, "phone", SIGNED)

    club = create_community(state, name_zh="徒步社", name_en="Hikers", interests=["hiking"], by="t", now=NOW)
    e = event(state, 3, community_id=club.id, venue="滨江公园南门")
    seat = sign_up(state, e.id, signed, by="t", now=NOW)
    token, at = event_token(SECRET, e.id), e.starts_at - timedelta(minutes=10)

    mine = walk_in(state, SECRET, token, "139 1234 5601", identity=snapshot, now=at)
    assert (mine.customer_id, mine.signup_id, mine.method) == (known, None, "walk_in")
    with pytest.raises(Conflict) as seated:  # a walk-in holds a seat already: no second one by signing up
        sign_up(state, e.id, known, by="t", now=at)
    assert seated.value.problems[0].field == "customer_id"
    theirs = walk_in(state, SECRET, token, SIGNED, identity=snapshot, now=at)
    assert (theirs.customer_id, theirs.signup_id) == (signed, seat.id)  # their sign-up is their seat
    stranger = walk_in(state, SECRET, token, f"+86{STRANGER}", identity=snapshot, now=at)
    assert stranger.customer_id is None
    page, total = members(state, club.id)
    assert total == 2 and {(m.customer_id, m.source) for m in page} == {(known, "checked_in"), (signed, "checked_in")}

    with state.connect() as conn:
        buffered = conn.execute(select(ingest_buffer).order_by(ingest_buffer.c.id)).all()
    assert [(b.source, b.message_id, b.type) for b in buffered] == [
        (INTERNAL_SOURCE, f"check-in-{c.id}", "identify") for c in (mine, theirs, stranger)
    ]
    fact = json.loads(buffered[0].payload)
    assert fact["anonymousId"] == f"check-in-{mine.id}" and fact["traits"] == {"phone": f"+86{KNOWN}"}
    assert fact["context"]["check_in"] == {"id": mine.id, "event_id": e.id, "community_id": club.id,
                                           "store_code": "SH01", "venue": "滨江公园南门"}  # fmt: skip

    loaded = load(state, facts)
    assert loaded.events == 3
    refresh_identity(state, Engine(facts), derived, probabilistic=False)
    after = derived.current("identity")
    assert lookup(after, "anonymous_id", f"check-in-{mine.id}") == [known]
    assert lookup(after, "anonymous_id", f"check-in-{theirs.id}") == [signed]
    (newcomer,) = lookup(after, "phone", STRANGER)
    assert newcomer not in (known, signed)
    assert lookup(after, "anonymous_id", f"check-in-{stranger.id}") == [newcomer]

    # at the next event the stranger is a customer, and a member once checked in
    later = event(state, 3, community_id=club.id, venue="滨江公园南门", starts_at=e.starts_at + timedelta(days=7),
                  ends_at=e.ends_at + timedelta(days=7))  # fmt: skip
    again = walk_in(state, SECRET, event_token(SECRET, later.id), STRANGER, identity=after,
                    now=later.starts_at)  # fmt: skip
    assert again.customer_id == newcomer
    assert members(state, club.id)[1] == 3
