"""The customer 360: identifiers, tags with reasons, orders and the cross-channel timeline, paged."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import demo_merchant
from tests.api.test_customers import a_phone, bearer


@pytest.fixture(scope="module")
def merchant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_merchant(tmp_path_factory.mktemp("c360"), people=300, seed=11)


@pytest.fixture
def client(merchant: Path, client_of: Callable[[Path], Iterator[TestClient]]) -> Iterator[TestClient]:
    yield from client_of(merchant)


def _facts(merchant: Path, kind: str) -> ds.Dataset:
    return ds.dataset(merchant / "facts" / kind, format="parquet", partitioning="hive")


def test_every_fact_is_on_exactly_one_timeline(client: TestClient, merchant: Path) -> None:
    """One timeline row per order line (latest version), event, message and profile record; an anonymous
    walk-in sale (no identifier at all) belongs to no customer."""
    snap = client.app.state.derived.current("timeline")  # type: ignore[attr-defined]
    timeline = ds.dataset(snap / "timeline.parquet").to_table()
    counted = pc.value_counts(timeline["kind"])
    per_kind = dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True))
    ids = ["marketplace_nick", "phone", "email", "member_card", "wechat_openid", "wechat_unionid"]
    lines = _facts(merchant, "order_line").to_table(columns=["source", "order_id", "line_no", *ids])
    known = pc.or_(*[pc.not_equal(pc.fill_null(lines[c], ""), "") for c in ids[:2]])
    for c in ids[2:]:
        known = pc.or_(known, pc.not_equal(pc.fill_null(lines[c], ""), ""))
    distinct_lines = lines.filter(known).group_by(["source", "order_id", "line_no"]).aggregate([]).num_rows
    assert distinct_lines < lines.group_by(["source", "order_id", "line_no"]).aggregate([]).num_rows
    assert per_kind.get("order") == distinct_lines
    assert per_kind.get("event") == _facts(merchant, "event").count_rows()
    assert per_kind.get("message") == _facts(merchant, "message").count_rows()
    assert per_kind.get("profile") == _facts(merchant, "person").count_rows()
    assert pc.all(pc.is_valid(timeline["customer_id"])).as_py()


def test_360_of_a_customer_found_by_phone(client: TestClient) -> None:
    headers = bearer(client, "customers:read")
    customer, phone = a_phone(client)
    res = client.get(f"/api/customers/{customer}/360", headers=headers, params={"limit": 200})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["customer_id"] == customer
    assert any(i["value"] == phone for i in body["identity"]["identifiers"])
    tags = {t["id"]: t for t in body["tags"]["tags"]}
    assert "rfm_segment" in tags and "lifecycle_stage" in tags
    rows = body["timeline"]["rows"]
    assert sum(body["timeline"]["counts"].values()) >= len(rows) > 0
    assert [r["occurred_at"] for r in rows] == sorted((r["occurred_at"] for r in rows), reverse=True)
    orders = body["orders"]
    order_rows = {r["ref"] for r in rows if r["kind"] == "order"}
    if body["timeline"]["counts"].get("order", 0) <= 200 and not body["timeline"]["has_more"]:
        assert {o["order_id"] for o in orders} <= order_rows
    assert [o["created_at"] for o in orders] == sorted((o["created_at"] for o in orders), reverse=True)


def test_timeline_pages_do_not_overlap(client: TestClient) -> None:
    headers = bearer(client, "customers:read")
    snap = client.app.state.derived.current("timeline")  # type: ignore[attr-defined]
    t = ds.dataset(snap / "timeline.parquet").to_table(columns=["customer_id"])
    counted = pc.value_counts(t["customer_id"])
    counts = counted.field("counts")
    busiest = int(counted.field("values")[pc.index(counts, pc.max(counts)).as_py()].as_py())
    whole = client.get(f"/api/customers/{busiest}/360", headers=headers, params={"limit": 200}).json()["timeline"]
    n = min(len(whole["rows"]), 12)
    assert n >= 4, "the busiest demo customer has a few timeline rows"
    half = n // 2
    first = client.get(f"/api/customers/{busiest}/360", headers=headers, params={"limit": half}).json()["timeline"]
    second = client.get(
        f"/api/customers/{busiest}/360", headers=headers, params={"limit": half, "offset": half}
    ).json()["timeline"]
    assert first["has_more"] is True
    assert first["rows"] + second["rows"] == whole["rows"][: 2 * half]
    only_orders = client.get(
        f"/api/customers/{busiest}/360", headers=headers, params={"kind": "order", "limit": 200}
    ).json()["timeline"]["rows"]
    assert {r["kind"] for r in only_orders} <= {"order"}


def test_bad_requests_name_the_field(client: TestClient) -> None:
    headers = bearer(client, "customers:read")
    customer, _ = a_phone(client)
    assert client.get(f"/api/customers/{customer}/360").status_code == 401
    assert client.get(f"/api/customers/{customer}/360", headers=bearer(client, "segments:read")).status_code == 403
    res = client.get(f"/api/customers/{customer}/360", headers=headers, params={"limit": 0})
    assert res.status_code == 422 and "limit" in res.text
    res = client.get(f"/api/customers/{customer}/360", headers=headers, params={"kind": "tweet"})
    assert res.status_code == 400 and "tweet" in res.json()["message"]
    res = client.get("/api/customers/987654321/360", headers=headers)
    assert res.status_code == 404 and "987654321" in res.json()["message"]
