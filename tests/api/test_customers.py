"""The customers API: API keys with scopes, look-up by any identifier, identifiers with how they joined."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from omnicrm.access.api_keys import create_api_key
from tests.api.conftest import demo_merchant


@pytest.fixture(scope="module")
def merchant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo merchant with OneID and the portrait refreshed, shared by the tests of this module."""
    return demo_merchant(tmp_path_factory.mktemp("api"), people=200, seed=5)


@pytest.fixture
def client(merchant: Path, client_of: Callable[[Path], Iterator[TestClient]]) -> Iterator[TestClient]:
    yield from client_of(merchant)


def bearer(client: TestClient, *scopes: str) -> dict[str, str]:
    key = create_api_key(client.app.state.state_store, "test", list(scopes))  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {key}"}


def a_phone(client: TestClient) -> tuple[int, str]:
    snap = client.app.state.derived.current("identity")  # type: ignore[attr-defined]
    row = duckdb.sql(
        f"SELECT customer_id, value FROM '{snap / 'identifiers.parquet'}' WHERE id_type='phone' AND holders=1 LIMIT 1"
    ).fetchall()[0]
    return int(row[0]), str(row[1])


def test_lookup_and_identifiers(client: TestClient) -> None:
    headers = bearer(client, "customers:read")
    customer, phone = a_phone(client)
    res = client.get(
        "/api/customers/lookup", params={"type": "phone", "value": phone.removeprefix("+86")}, headers=headers
    )
    assert res.status_code == 200, res.text
    assert res.json()["customer_ids"] == [customer]
    detail = client.get(f"/api/customers/{customer}", headers=headers).json()
    assert detail["customer_id"] == customer
    assert any(i["id_type"] == "phone" and i["value"] == phone for i in detail["identifiers"])
    assert detail["identifiers"][0]["how"] == "anchor"


def test_keys_and_scopes(client: TestClient) -> None:
    customer, _ = a_phone(client)
    assert client.get(f"/api/customers/{customer}").status_code == 401
    assert client.get(f"/api/customers/{customer}", headers={"Authorization": "Bearer ak_nope"}).json() == {
        "code": "unauthorized",
        "message": "unknown or revoked API key; list keys with `omnicrm apikeys list`",
    }
    reader = bearer(client, "customers:read")
    res = client.post("/api/customers/join", json={"customer_a": 1, "customer_b": 2, "reason": "x"}, headers=reader)
    assert res.status_code == 403
    assert res.json()["code"] == "forbidden"


def test_join_is_recorded_for_the_next_refresh(client: TestClient) -> None:
    writer = bearer(client, "customers:read", "customers:write")
    res = client.post(
        "/api/customers/join", json={"customer_a": 1, "customer_b": 2, "reason": "same person"}, headers=writer
    )
    assert res.status_code == 200, res.text
    assert res.json()["applied"] == "at the next refresh"


def test_errors_name_the_problem(client: TestClient) -> None:
    headers = bearer(client, "customers:read")
    res = client.get("/api/customers/lookup", params={"type": "phone", "value": "13800000000"}, headers=headers)
    assert res.status_code == 400
    assert res.json()["message"] == "phone '13800000000' is not usable as an identifier: placeholder phone"
    assert client.get("/api/customers/99999999", headers=headers).status_code == 404


def test_tags_catalogue_and_a_customers_tags_with_reasons(client: TestClient) -> None:
    reader = bearer(client, "customers:read")
    catalogue = client.get("/api/tags", headers=reader).json()["tags"]
    assert len(catalogue) >= 40 and {"zh", "en"} <= set(catalogue[0]["name"])
    customer, _ = a_phone(client)
    body = client.get(f"/api/customers/{customer}/tags", headers=reader).json()
    by_id = {t["id"]: t for t in body["tags"]}
    assert by_id["lifecycle_stage"]["value"] in {"prospect", "new", "active", "cooling", "dormant", "churned"}
    assert "recency_days" in by_id["lifecycle_stage"]["inputs"] and by_id["lifecycle_stage"]["computed_at"]
    assert client.get("/api/customers/999999999/tags", headers=reader).status_code == 404
    assert client.get(f"/api/customers/{customer}/tags").status_code == 401


def test_manual_tags_through_the_api(client: TestClient) -> None:
    from omnicrm.portrait.refresh import catalogue, known_types
    from omnicrm.portrait.tags.custom import define_tag

    store = client.app.state.state_store  # type: ignore[attr-defined]
    define_tag(store, known_types(catalogue(store)), tag_id="vip_note", name_zh="贵宾", name_en="VIP",
                      value_type="category", by="test")  # fmt: skip
    customer, _ = a_phone(client)
    path = f"/api/customers/{customer}/tags/vip_note"
    assert client.put(path, json={"value": "gold"}, headers=bearer(client, "customers:read")).status_code == 403
    writer = bearer(client, "customers:read", "customers:write")
    assert client.put(path, json={"value": 3}, headers=writer).status_code == 400
    assert client.put(path, json={"value": "gold", "note": "big spender"}, headers=writer).status_code == 200
    tags = {t["id"]: t for t in client.get(f"/api/customers/{customer}/tags", headers=writer).json()["tags"]}
    assert tags["vip_note"]["value"] == "gold" and "big spender" in tags["vip_note"]["note"]
    assert client.delete(path, headers=writer).json() == {"cleared": True}
