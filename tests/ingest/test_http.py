"""The Segment-compatible HTTP API: each kind of bad input gets a clear error, and nothing accepted is lost."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from omnicrm.api.app import create_app
from omnicrm.ingest.sources import create_source
from omnicrm.settings import Settings
from omnicrm.store.schema import ingest_buffer, quarantine


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def key(client: TestClient) -> str:
    return create_source(client.app.state.state_store, "web", "web", write_key="wk_test_web")  # type: ignore[attr-defined]


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def rows(client: TestClient, table: sa.Table) -> list[Any]:
    with client.app.state.state_store.connect() as conn:  # type: ignore[attr-defined]
        return list(conn.execute(sa.select(table)).all())


def track(i: int, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Product Viewed", "userId": f"u{i}", "messageId": f"m{i}", **extra}


def test_every_endpoint_accepts_its_message_type(client: TestClient, key: str) -> None:
    bodies = {
        "identify": {"userId": "u1", "traits": {"phone": "13812345678"}},
        "track": {"anonymousId": "d1", "event": "Products Searched", "properties": {"query": "碎花连衣裙"}},
        "page": {"anonymousId": "d1", "name": "Home"},
        "screen": {"userId": "u1", "name": "商品详情"},
        "group": {"userId": "u1", "groupId": "family-1"},
        "alias": {"userId": "u1", "previousId": "d1"},
    }
    for endpoint, body in bodies.items():
        res = client.post(f"/v1/{endpoint}", json=body, headers=basic(key))
        assert res.status_code == 200, res.text
        assert res.json()["success"] is True
    assert len(rows(client, ingest_buffer)) == 6


def test_write_key_in_the_body_as_the_segment_client_sends_it(client: TestClient, key: str) -> None:
    res = client.post("/v1/batch", json={"writeKey": key, "batch": [track(1)]})
    assert res.status_code == 200


def test_gzip_bodies(client: TestClient, key: str) -> None:
    body = gzip.compress(orjson.dumps({"batch": [track(i) for i in range(50)]}))
    res = client.post("/v1/batch", content=body, headers={**basic(key), "Content-Encoding": "gzip"})
    assert res.json() == {"success": True, "accepted": 50, "duplicates": 0}


def test_resending_the_same_message_ids_is_a_no_op(client: TestClient, key: str) -> None:
    batch = {"batch": [track(i) for i in range(10)]}
    assert client.post("/v1/batch", json=batch, headers=basic(key)).json()["accepted"] == 10
    again = client.post("/v1/batch", json=batch, headers=basic(key)).json()
    assert again == {"success": True, "accepted": 0, "duplicates": 10}
    assert len(rows(client, ingest_buffer)) == 10


def test_wrong_write_key(client: TestClient, key: str) -> None:
    res = client.post("/v1/batch", json={"batch": [track(1)]}, headers=basic("wk_wrong_key"))
    assert res.status_code == 401
    assert res.json() == {
        "code": "unauthorized",
        "message": "unknown or disabled write key 'wk_wron…'; list sources with `omnicrm sources list`, "
        "create one with `omnicrm sources add NAME --kind KIND`",
    }


def test_no_write_key(client: TestClient, key: str) -> None:
    res = client.post("/v1/batch", json={"batch": [track(1)]})
    assert res.status_code == 401
    assert res.json()["message"].startswith("no write key")


def test_malformed_json_names_the_position(client: TestClient, key: str) -> None:
    res = client.post("/v1/batch", content=b'{"batch": [ {"type": "track",, } ]}', headers=basic(key))
    assert res.status_code == 400
    body = res.json()
    assert body["code"] == "invalid_request"
    assert body["message"].startswith("the request body is not valid JSON: ")
    assert "line 1 column 30" in body["message"]


def test_bad_gzip(client: TestClient, key: str) -> None:
    res = client.post("/v1/batch", content=b"not gzip", headers={**basic(key), "Content-Encoding": "gzip"})
    assert res.status_code == 400
    assert "is not valid gzip" in res.json()["message"]


def test_batch_must_be_a_list(client: TestClient, key: str) -> None:
    res = client.post("/v1/batch", json={"batch": {"type": "track"}}, headers=basic(key))
    assert res.status_code == 400
    assert res.json()["problems"] == [{"reason": "must be a list", "field": "batch"}]


def test_partly_bad_batch_keeps_the_good_and_quarantines_the_bad(client: TestClient, key: str) -> None:
    batch = [
        track(0),
        {"type": "track", "event": "x", "messageId": "no-ids"},
        track(2, properties="not an object"),
        track(3),
    ]
    res = client.post("/v1/batch", json={"batch": batch}, headers=basic(key))
    assert res.status_code == 400
    body = res.json()
    assert body["accepted"] == 2
    assert body["problems"] == [
        {"index": 1, "field": "userId", "reason": "userId or anonymousId is required (one may be null, not both)"},
        {"index": 2, "field": "properties", "reason": "must be a JSON object, got str"},
    ]
    assert sorted(r.message_id for r in rows(client, ingest_buffer)) == ["m0", "m3"]
    q = rows(client, quarantine)
    assert [(r.message_index, r.field) for r in q] == [(1, "userId"), (2, "properties")]
    assert orjson.loads(q[1].raw)["properties"] == "not an object"
    # the client retries the whole batch: nothing is accepted twice
    again = client.post("/v1/batch", json={"batch": batch}, headers=basic(key)).json()
    assert again["accepted"] == 0 and again["duplicates"] == 2


def test_oversize_single_message_is_413(client: TestClient, key: str) -> None:
    res = client.post("/v1/track", json=track(1, properties={"x": "y" * 40_000}), headers=basic(key))
    assert res.status_code == 413
    assert res.json()["code"] == "payload_too_large"


def test_oversize_message_inside_a_batch_is_quarantined_alone(client: TestClient, key: str) -> None:
    batch = [track(0), track(1, properties={"x": "y" * 40_000})]
    res = client.post("/v1/batch", json={"batch": batch}, headers=basic(key))
    assert res.status_code == 400
    assert res.json()["accepted"] == 1
    assert res.json()["problems"][0]["index"] == 1
    assert "over the limit of 32,768 bytes" in res.json()["problems"][0]["reason"]


def test_oversize_batch_is_413_and_accepts_nothing(client: TestClient, key: str) -> None:
    big = {"batch": [track(i, properties={"x": "y" * 20_000}) for i in range(220)]}  # ~4.4 MB
    res = client.post("/v1/batch", json=big, headers=basic(key))
    assert res.status_code == 413
    assert "over the limit of 4,194,304" in res.json()["message"]
    assert rows(client, ingest_buffer) == []


def test_gzip_bomb_is_413(client: TestClient, key: str) -> None:
    body = gzip.compress(b'{"batch": [' + b" " * 5_000_000 + b"]}")
    res = client.post("/v1/batch", content=body, headers={**basic(key), "Content-Encoding": "gzip"})
    assert res.status_code == 413


def test_back_pressure_answers_503_with_retry_after(client: TestClient, key: str) -> None:
    receiver = client.app.state.receiver  # type: ignore[attr-defined]
    receiver.buffered = receiver.buffer_high_water + 1
    res = client.post("/v1/batch", json={"batch": [track(1)]}, headers=basic(key))
    assert res.status_code == 503
    assert res.headers["Retry-After"] == "10"
    assert res.json()["code"] == "unavailable"


def test_unknown_endpoint(client: TestClient, key: str) -> None:
    res = client.post("/v1/shout", json={}, headers=basic(key))
    assert res.status_code == 404
    assert res.json()["code"] == "not_found"
