"""The content API over HTTP, on SQLite and PostgreSQL: create (idempotent by key), bad input as 400 naming each field
with nothing stored, edits that name their version, links, shares, the report and recommendations' errors."""

from __future__ import annotations

from fastapi.testclient import TestClient

from omnicrm.access.api_keys import create_api_key
from omnicrm.store.state import StateStore
from tests.content.conftest import PUBLIC

BAKING = {"title_zh": "周末烘焙：戚风蛋糕入门", "url": "https://shop.example.com/chiffon"}


def bearer(state: StateStore, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(state, 'content test', list(scopes))}"}


def test_the_library_through_the_api(state: StateStore, client: TestClient) -> None:
    write, read = bearer(state, "loyalty:write"), bearer(state, "loyalty:read")
    made = client.post("/api/content/items", json={**BAKING, "status": "published"},
                       headers={**write, "Idempotency-Key": "item-1"})  # fmt: skip
    assert made.status_code == 201, made.text
    item = made.json()
    assert item["topics"] == ["baking"] and item["status"] == "published" and item["version"] == 1
    assert item["link"].startswith(f"{PUBLIC}/c/")
    again = client.post("/api/content/items", json={**BAKING, "status": "published", "idempotency_key": "item-1"},
                        headers=write)  # fmt: skip
    assert again.json()["id"] == item["id"]
    assert client.get("/api/content/items", headers=read).json()["total"] == 1

    changed = client.patch(f"/api/content/items/{item['id']}", json={"title_en": "Weekend baking", "version": 1},
                           headers=write)  # fmt: skip
    assert changed.status_code == 200 and changed.json()["version"] == 2
    stale = client.patch(f"/api/content/items/{item['id']}", json={"title_en": "x", "version": 1}, headers=write)
    assert stale.status_code == 409 and stale.json()["problems"] == [
        {"field": "version", "reason": "reload the item and make the change again"}]  # fmt: skip

    link = client.get(f"/api/content/items/{item['id']}/link", params={"channel": "email", "customer_id": 5},
                      headers=read).json()  # fmt: skip
    assert link["url"].startswith(f"{PUBLIC}/c/") and link["url"] != item["link"]
    bad_channel = client.get(f"/api/content/items/{item['id']}/link", params={"channel": "fax"}, headers=read)
    assert bad_channel.status_code == 400 and bad_channel.json()["problems"][0]["field"] == "channel"
    shared = client.post(f"/api/content/items/{item['id']}/shares", headers=write,
                         json={"customer_id": 9, "channel": "wechat", "idempotency_key": "share-9"})  # fmt: skip
    assert shared.status_code == 201 and shared.json()["customer_id"] == 9
    assert client.get(shared.json()["url"].removeprefix(PUBLIC), follow_redirects=False).status_code == 302
    figures = client.get("/api/content/report", params={"content_id": item["id"], "days": 7}, headers=read).json()
    assert figures["totals"] == {"views": 1, "unique_viewers": 1, "shares": 1, "share_views": 1}
    assert client.get("/api/content/report", params={"content_id": 99}, headers=read).status_code == 404


def test_bad_input_is_a_400_naming_each_field_and_stores_nothing(state: StateStore, client: TestClient) -> None:
    write = bearer(state, "loyalty:write")
    res = client.post("/api/content/items", headers=write,
                      json={"title_zh": "", "url": "javascript:alert(1)", "topics": ["bakeing"]})  # fmt: skip
    assert res.status_code == 400
    body = res.json()
    assert body["code"] == "invalid_request" and body["message"] == "the new content item is not valid"
    assert body["problems"] == [
        {"field": "title_zh", "reason": "an item needs a Chinese title"},
        {"field": "url", "reason": "only http:// and https:// addresses can be shared, not 'javascript:'"},
        {"field": "topics", "reason": "unknown interest 'bakeing' — did you mean 'baking'?"},
    ]
    naive = client.post("/api/content/items", headers=write, json={**BAKING, "publish_at": "2026-11-11T10:00:00"})
    assert naive.status_code == 400 and naive.json()["problems"][0]["field"] == "publish_at"
    assert client.get("/api/content/items", headers=bearer(state, "loyalty:read")).json()["total"] == 0
    mismatch = client.post("/api/content/items", json={**BAKING, "idempotency_key": "a"},
                           headers={**write, "Idempotency-Key": "b"})  # fmt: skip
    assert mismatch.status_code == 400 and mismatch.json()["problems"][0]["field"] == "idempotency_key"


def test_recommendations_without_a_portrait_or_segment_say_so(state: StateStore, client: TestClient) -> None:
    read = bearer(state, "loyalty:read")
    res = client.get("/api/content/recommendations", params={"segment_id": 1}, headers=read)
    assert res.status_code == 404 and "refresh" in res.json()["message"]
    res = client.get("/api/content/customers/1/recommendations", headers=read)
    assert res.status_code == 404 and "refresh" in res.json()["message"]
