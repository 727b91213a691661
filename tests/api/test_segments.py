"""The segments API over a small demo merchant: live counts (JSON and text alike, equal to a direct count),
saved segments, snapshots and their diff, overlap, CSV export, errors naming the field, and scopes."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from omnicrm.access.api_keys import create_api_key
from omnicrm.consent.personalisation import set_choice
from tests.api.conftest import demo_merchant


@pytest.fixture(scope="module")
def merchant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo merchant with OneID and the portrait refreshed, shared by the tests of this module."""
    return demo_merchant(tmp_path_factory.mktemp("segments"), people=300, seed=8)


@pytest.fixture
def client(merchant: Path, client_of: Callable[[Path], Iterator[TestClient]]) -> Iterator[TestClient]:
    yield from client_of(merchant)


def headers(client: TestClient, *scopes: str) -> dict[str, str]:
    key = create_api_key(client.app.state.state_store, "test", list(scopes))  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {key}"}


def direct_count(client: TestClient, where: str) -> int:
    snap = client.app.state.derived.current("portrait")  # type: ignore[attr-defined]
    return int(duckdb.sql(f"SELECT count(*) FROM '{snap / 'tags.parquet'}' WHERE {where}").fetchall()[0][0])


def test_live_count_by_json_and_text_equals_a_direct_count(client: TestClient) -> None:
    h = headers(client, "segments:read")
    rule = {"all": [{"tag": "monetary", "op": ">=", "value": 1000},
                    {"tag": "lifecycle_stage", "op": "in", "value": ["active", "cooling"]}]}  # fmt: skip
    by_json = client.post("/api/segments/count", json={"rule": rule}, headers=h).json()
    by_text = client.post(
        "/api/segments/count", json={"text": 'monetary >= 1000 AND lifecycle_stage IN ("active", "cooling")'}, headers=h
    ).json()
    expected = direct_count(client, "monetary >= 1000 AND lifecycle_stage IN ('active', 'cooling')")
    assert by_json["count"] == by_text["count"] == expected > 0
    assert by_text["rule"] == rule and by_json["of"] >= expected


def test_behaviour_rules_count(client: TestClient) -> None:
    h = headers(client, "segments:read")
    bought = client.post("/api/segments/count", json={"text": "bought IN LAST 365 DAYS"}, headers=h).json()["count"]
    never = client.post("/api/segments/count", json={"text": "NO purchase"}, headers=h).json()["count"]
    total = client.post("/api/segments/count", json={"text": "NOT bought IN LAST 365 DAYS"}, headers=h).json()
    assert bought + total["count"] == total["of"] and never == direct_count(client, "frequency = 0")


def test_saved_segment_snapshots_and_diff(client: TestClient) -> None:
    r, w = headers(client, "segments:read"), headers(client, "segments:read", "segments:write")
    created = client.post("/api/segments", json={"name": "big spenders", "text": "monetary >= 2000"}, headers=w)
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    first = client.post(f"/api/segments/{sid}/snapshots", headers=w).json()
    client.patch(f"/api/segments/{sid}", json={"text": "monetary >= 1000"}, headers=w).raise_for_status()
    second = client.post(f"/api/segments/{sid}/snapshots", headers=w).json()
    changes = client.get(f"/api/segments/{sid}/diff", params={"before": first["id"], "after": second["id"]},
                         headers=r).json()  # fmt: skip
    assert changes["exited"] == [] and len(changes["entered"]) == second["members"] - first["members"] > 0
    page = client.get(f"/api/segments/{sid}/members", params={"limit": 5}, headers=r).json()
    assert page["count"] == second["members"] and len(page["customer_ids"]) == 5
    exported = client.get(f"/api/segments/{sid}/export.csv", params={"tags": "monetary,top_categories"}, headers=r)
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["customer_id", "monetary", "top_categories"] and len(rows) == second["members"] + 1
    # whoever asks for non-personalised marketing only leaves every export at once (PIPL art. 24)
    first_member = int(rows[1][0])
    snap = client.app.state.derived.current("identity")  # type: ignore[attr-defined]
    key = duckdb.sql(f"SELECT min(key) FROM '{snap / 'identifiers.parquet'}' WHERE customer_id = {first_member}"
                     ).fetchall()[0][0]  # fmt: skip
    set_choice(client.app.state.state_store, subject=key, non_personalised=True, source="preference_centre",  # type: ignore[attr-defined]
               by="test")  # fmt: skip
    again = list(csv.reader(io.StringIO(client.get(f"/api/segments/{sid}/export.csv", headers=r).text)))
    assert len(again) == len(rows) - 1 and str(first_member) not in {row[0] for row in again}
    set_choice(client.app.state.state_store, subject=key, non_personalised=False, source="preference_centre",  # type: ignore[attr-defined]
               by="test")  # fmt: skip
    other = client.post("/api/segments", json={"name": "active", "text": 'lifecycle_stage = "active"'}, headers=w)
    both = client.post("/api/segments/overlap", json=[sid, other.json()["id"]], headers=r).json()
    assert both["pairs"][0]["both"] == direct_count(client, "monetary >= 1000 AND lifecycle_stage = 'active'")
    listed = client.get("/api/segments", params={"limit": 1}, headers=r).json()
    assert listed["total"] >= 2 and len(listed["segments"]) == 1
    after = client.get("/api/segments", params={"limit": 1, "offset": 1}, headers=r).json()["segments"]
    assert after and after[0]["id"] != listed["segments"][0]["id"]


def test_bad_rules_name_the_field_and_scopes_hold(client: TestClient) -> None:
    r, w = headers(client, "segments:read"), headers(client, "segments:write")
    bad = client.post("/api/segments/count", json={"rule": {"tag": "monetry", "op": ">", "value": 1}}, headers=r)
    assert bad.status_code == 400 and "monetry" in bad.text
    text = client.post("/api/segments/count", json={"text": "monetary >"}, headers=r)
    assert text.status_code == 400 and "character" in text.text
    assert client.post("/api/segments", json={"name": "x", "text": "monetary > 1"}, headers=r).status_code == 403
    assert client.post("/api/segments/count", json={"text": "monetary > 1"}).status_code == 401
    assert client.post("/api/segments", json={"name": " ", "text": "monetary > 1"}, headers=w).status_code == 400
    assert client.get("/api/segments/424242", headers=headers(client, "segments:read")).status_code == 404


def test_analytics_equal_a_plain_pandas_count(client: TestClient) -> None:
    h = headers(client, "analytics:read")
    snap = client.app.state.derived.current("portrait")  # type: ignore[attr-defined]
    tags = duckdb.sql(f"SELECT * FROM '{snap / 'tags.parquet'}'").df()
    buyers = tags[tags["frequency"] > 0]
    repeat = client.get("/api/analytics/repeat-purchase", headers=h).json()
    assert repeat["buyers"] == len(buyers) and repeat["repeat_buyers"] == int(buyers["repeat_buyer"].sum())
    grid = client.get("/api/analytics/rfm", headers=h).json()["grid"]
    assert sum(c["customers"] for c in grid) == len(buyers)
    mix = client.get("/api/analytics/channels", headers=h).json()
    assert mix["cross_channel_share"] == pytest.approx(float(buyers["cross_channel"].mean()))
    cohorts = client.get("/api/analytics/cohorts", headers=h).json()["cohorts"]
    assert sum(c["buyers"] for c in cohorts) == len(buyers)
    assert {c["cohort"].split("_")[0] for c in cohorts} >= {"double11", "organic"}
    for c in cohorts:
        rates = [c[f"retention_{d}d"] for d in (30, 90, 180, 365) if c[f"eligible_{d}d"] == c["buyers"]]
        assert rates == sorted(rates)  # same customers, longer window: never lower
    clv = client.get("/api/analytics/clv", headers=h).json()
    assert clv["customers"] == int(buyers["clv_365d"].notna().sum()) and all(b["from"] >= 0 for b in clv["bins"])
    oneid = client.get("/api/analytics/oneid", headers=h).json()
    assert oneid["customers"] == len(tags)
    assert client.get("/api/analytics/rfm", headers=headers(client, "segments:read")).status_code == 403
