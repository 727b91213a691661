"""Views through ``/c/{token}`` on SQLite and PostgreSQL: recorded with customer, browser, channel and referrer, and
written as a Content Viewed event, then a redirect to the stored address; forged, foreign and unknown tokens are
refused with a 404 and record nothing; a burst of concurrent views records every one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from omnicrm.api.content import VISITOR_COOKIE
from omnicrm.campaigns.links import make_token
from omnicrm.content.library import create_item, update_item
from omnicrm.content.links import content_url, read_link, share
from omnicrm.content.views import EVENT, SOURCE, record_view
from omnicrm.errors import InputError, NotFound
from omnicrm.store.schema import content_views, ingest_buffer
from omnicrm.store.state import StateStore
from tests.content.conftest import PUBLIC, SECRET
from tests.loyalty.checks import run

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
BAKING = {"title_zh": "周末烘焙：戚风蛋糕入门", "title_en": "Weekend baking", "url": "https://shop.example.com/chiffon",
          "status": "published"}  # fmt: skip


def counts(state: StateStore) -> tuple[int, int]:
    with state.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in (content_views, ingest_buffer)
        )


def token_of(url: str) -> str:
    assert url.startswith(f"{PUBLIC}/c/"), url
    return url.rsplit("/", 1)[1]


def test_a_view_through_a_share_link_is_recorded_and_redirects(state: StateStore, client: TestClient) -> None:
    item = create_item(state, BAKING, by="test", now=T0)
    shared = share(state, item.id, 42, channel="wechat", idempotency_key="share-1", public_url=PUBLIC,
                   secret_key=SECRET, now=T0)  # fmt: skip
    res = client.get(f"/c/{token_of(shared.url)}", follow_redirects=False)
    assert res.status_code == 302 and res.headers["location"] == "https://shop.example.com/chiffon"
    assert res.headers["referrer-policy"] == "no-referrer" and res.headers["cache-control"] == "no-store"
    visitor = res.cookies[VISITOR_COOKIE]
    assert len(visitor) == 32 and "path=/c/" in res.headers["set-cookie"].lower()
    with state.connect() as conn:
        view = conn.execute(select(content_views)).one()
        event = conn.execute(select(ingest_buffer)).one()
    assert (view.item_id, view.customer_id, view.visitor, view.channel, view.referrer_id, view.share_id) == (
        item.id, None, visitor, "wechat", 42, shared.id)  # fmt: skip
    assert (event.source, event.message_id, event.type) == (SOURCE, view.message_id, "track")
    payload = json.loads(event.payload)
    assert payload["event"] == EVENT and payload["anonymousId"] == visitor and payload["traits"] is None
    assert payload["properties"] == {
        "item_id": item.id, "title": "周末烘焙：戚风蛋糕入门", "title_en": "Weekend baking", "kind": "article",
        "topics": ["baking"], "channel": "wechat", "url": "https://shop.example.com/chiffon", "customer_id": None,
        "referrer_customer_id": 42, "share_id": shared.id,
    }  # fmt: skip
    again = client.get(f"/c/{token_of(shared.url)}", follow_redirects=False)  # the same browser, its cookie kept
    assert again.status_code == 302 and VISITOR_COOKIE in again.cookies
    with state.connect() as conn:
        assert conn.execute(select(content_views.c.visitor).order_by(content_views.c.id)).scalars().all() == [
            visitor, visitor]  # fmt: skip


def test_a_persons_link_records_them(state: StateStore, client: TestClient) -> None:
    item = create_item(state, BAKING, by="test", now=T0)
    url = content_url(PUBLIC, SECRET, item.id, channel="sms", customer_id=1001)
    assert read_link(SECRET, token_of(url)).customer_id == 1001
    assert client.get(f"/c/{token_of(url)}", follow_redirects=False).status_code == 302
    with state.connect() as conn:
        view = conn.execute(select(content_views)).one()
        payload = json.loads(conn.execute(select(ingest_buffer.c.payload)).scalar_one())
    assert (view.customer_id, view.channel, view.referrer_id) == (1001, "sms", None)
    # no identity snapshot yet: the event says whose it is, without identifiers to join it by
    assert payload["anonymousId"] == "content-customer-1001" and payload["properties"]["customer_id"] == 1001


@pytest.mark.parametrize("how", ["forged", "altered", "campaign", "unknown item", "unknown share", "garbage"])
def test_forged_or_unknown_tokens_are_refused_and_record_nothing(state: StateStore, client: TestClient,
                                                                  how: str) -> None:  # fmt: skip
    item = create_item(state, BAKING, by="test", now=T0)
    good = token_of(content_url(PUBLIC, SECRET, item.id, channel="wechat", customer_id=5))
    tokens = {
        "forged": token_of(content_url(PUBLIC, "another merchant's secret", item.id, channel="wechat")),
        "altered": good[:-2] + ("AA" if good[-2:] != "AA" else "BB"),
        "campaign": make_token(SECRET, item.id, "wechat", 5, 0),  # a campaign link's token is not a content link
        "unknown item": token_of(content_url(PUBLIC, SECRET, 999, channel="wechat")),
        "unknown share": token_of(content_url(PUBLIC, SECRET, item.id, share_id=77)),
        "garbage": "not-a-token",
    }
    res = client.get(f"/c/{tokens[how]}", follow_redirects=False)
    assert res.status_code == 404 and "链接无效" in res.text and "location" not in res.headers
    assert counts(state) == (0, 0)
    with pytest.raises((InputError, NotFound)):
        record_view(state, secret_key=SECRET, token=tokens[how], now=T0)
    assert counts(state) == (0, 0)


def test_links_of_items_not_live_stop_working(state: StateStore, client: TestClient) -> None:
    item = create_item(state, {**BAKING, "end_at": T0 + timedelta(days=30)}, by="test", now=T0)
    url = content_url(PUBLIC, SECRET, item.id)
    assert record_view(state, secret_key=SECRET, token=token_of(url), now=T0).url == BAKING["url"]
    with pytest.raises(NotFound) as exc:
        record_view(state, secret_key=SECRET, token=token_of(url), now=T0 + timedelta(days=30))
    assert exc.value.message == "content item 1 is published and not live now"
    update_item(state, item.id, {"status": "archived"})
    assert client.get(f"/c/{token_of(url)}", follow_redirects=False).status_code == 404
    assert counts(state) == (1, 1)


@pytest.mark.timeout(120)
def test_a_burst_of_views_records_every_one(state: StateStore) -> None:
    item = create_item(state, BAKING, by="test", now=T0)
    tokens = [token_of(content_url(PUBLIC, SECRET, item.id, channel="email", customer_id=c)) for c in range(1, 41)]
    results = run(40, lambda i: record_view(state, secret_key=SECRET, token=tokens[i], visitor=f"{i:032x}", now=T0))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({r.id for r in results}) == 40 and counts(state) == (40, 40)
    with state.connect() as conn:
        people = conn.execute(select(content_views.c.customer_id).order_by(content_views.c.customer_id)).scalars()
        assert list(people) == list(range(1, 41))
