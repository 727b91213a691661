"""The community API on SQLite and PostgreSQL: create a community and an event, sign people up by phone (through
OneID) and by customer id, tickets only for seats, the till's check-in once (a retry with its key returns the first),
a cancellation promoting the next person, attendance, and errors in the one JSON shape naming their field."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from omnicrm.access.api_keys import create_api_key
from omnicrm.api.app import create_app
from omnicrm.identity.explain import lookup
from omnicrm.identity.refresh import refresh_identity
from omnicrm.settings import load_settings
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore
from tests.portrait.test_tags import ts, write

PHONES = ("13900000301", "13900000302", "13900000303")


@pytest.fixture
def api(state: StateStore, tmp_path: Path) -> Iterator[tuple[TestClient, list[int]]]:
    settings = load_settings(data_dir=tmp_path / "data", state_url=state.url, loader_interval_seconds=0,
                             campaign_interval_seconds=0)  # fmt: skip
    facts, derived = FactsStore(settings.facts_dir), DerivedStore(settings.derived_dir)
    people = [{"source": "crm", "source_key": f"m{i}", "phone": p, "observed_at": ts("2026-03-01")}
              for i, p in enumerate(PHONES)]  # fmt: skip
    write(facts, "person", people, "crm-1")
    refresh_identity(state, Engine(facts), derived, probabilistic=False)
    ids = [lookup(derived.current("identity"), "phone", p)[0] for p in PHONES]
    with TestClient(create_app(settings)) as client:
        yield client, ids


def test_events_through_the_api(api: tuple[TestClient, list[int]], state: StateStore) -> None:
    client, ids = api
    run = {"Authorization": f"Bearer {create_api_key(state, 'crm', ['loyalty:read', 'loyalty:write'])}"}
    till = {"Authorization": f"Bearer {create_api_key(state, 'door', ['till'])}"}
    club = client.post("/api/community/communities", headers=run,
                       json={"name_zh": "茶友会", "name_en": "Tea friends", "interests": ["tea"]})  # fmt: skip
    assert club.status_code == 201 and club.json()["interests"] == ["tea"]
    starts = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)
    body = {"community_id": club.json()["id"], "title_zh": "品茶会", "store_code": "HZ01", "capacity": 2,
            "starts_at": starts.replace(tzinfo=None).isoformat(), "ends_at": (starts + dt.timedelta(hours=1)).isoformat()}  # fmt: skip
    naive = client.post("/api/community/events", headers=run, json=body)
    assert naive.status_code == 400
    assert naive.json()["problems"] == [{"reason": "give it with an offset, e.g. +08:00", "field": "starts_at"}]
    assert client.post("/api/community/events", headers=till, json=body).status_code == 403
    event = client.post("/api/community/events", headers=run, json={**body, "starts_at": starts.isoformat()})
    assert event.status_code == 201
    e = event.json()["id"]

    first = client.post(f"/api/community/events/{e}/signups", headers=run,
                        json={"identifier": {"type": "phone", "value": "139-0000-0301"}}).json()  # fmt: skip
    assert (first["customer_id"], first["status"]) == (ids[0], "confirmed") and first["ticket"]
    second = client.post(f"/api/community/events/{e}/signups", headers=run, json={"customer_id": ids[1]}).json()
    third = client.post(f"/api/community/events/{e}/signups", headers=run, json={"customer_id": ids[2]}).json()
    assert (third["status"], third["position"], "ticket" in third) == ("waiting", 1, False)
    unknown = client.post(f"/api/community/events/{e}/signups", headers=run,
                          json={"identifier": {"value": "13900000399"}})  # fmt: skip
    assert unknown.status_code == 404 and unknown.json()["problems"][0]["field"] == "identifier"
    assert client.get(f"/api/community/signups/{third['id']}/ticket.svg", headers=run).status_code == 409
    svg = client.get(f"/api/community/signups/{first['id']}/ticket.svg", headers=run)
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"

    scan = {"ticket": first["ticket"], "idempotency_key": "door-1"}
    assert client.post("/api/community/check-in", headers=run, json=scan).status_code == 403  # the till's scope
    done = client.post("/api/community/check-in", headers=till, json=scan)
    assert done.status_code == 200 and done.json()["customer_id"] == ids[0] and done.json()["event"]["id"] == e
    retry = client.post("/api/community/check-in", headers=till, json=scan)
    assert (retry.json()["id"], retry.json()["repeated"]) == (done.json()["id"], True)
    used = client.post("/api/community/check-in", headers=till, json={"ticket": first["ticket"]})
    assert used.status_code == 409 and used.json()["problems"][0]["field"] == "ticket"
    forged = client.post("/api/community/check-in", headers=till, json={"ticket": first["ticket"][:-1] + "A"})
    assert forged.status_code == 400 and forged.json()["code"] == "invalid_request"

    cancelled = client.post(f"/api/community/events/{e}/signups/{ids[1]}/cancel", headers=run).json()
    assert cancelled["signup"]["status"] == "cancelled"
    assert [(p["customer_id"], p["status"], bool(p["ticket"])) for p in cancelled["promoted"]] == [
        (ids[2], "confirmed", True)
    ]
    shown = client.get(f"/api/community/events/{e}", headers=run).json()
    assert shown["venue_url"].startswith("http://127.0.0.1:8000/e/") and shown["phase"] == "signup"
    assert {k: shown["attendance"][k] for k in ("confirmed", "waiting", "cancelled", "checked_in", "seats_taken")} == {
        "confirmed": 2, "waiting": 0, "cancelled": 1, "checked_in": 1, "seats_taken": 2}  # fmt: skip
    report = client.get(f"/api/community/communities/{club.json()['id']}/attendance", headers=run).json()
    assert report["attendees"] == 1 and report["members"] == {"checked_in": 1}
    assert second["status"] == "confirmed"

    stop = client.post(f"/api/community/events/{e}/cancel", headers=run, json={"reason": "茶叶没到"})
    assert stop.json()["status"] == "cancelled"
    late = client.post(f"/api/community/events/{e}/signups", headers=run, json={"customer_id": ids[1]})
    assert late.status_code == 409 and late.json()["problems"] == [
        {"reason": "a cancelled event takes no sign-ups", "field": "event_id"}
    ]
