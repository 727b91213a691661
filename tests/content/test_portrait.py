"""Views feed the portrait: a person who reads baking articles gets the baking interest at the next refresh, their
views join them through the identifier their event carries, and recommendations read the refreshed interests and
leave out what each person has already viewed. On SQLite and PostgreSQL, over a small hand-made merchant."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import select

from omnicrm.content.library import create_item
from omnicrm.content.links import content_url, share
from omnicrm.content.recommend import recommend, top_per_person
from omnicrm.content.views import record_view
from omnicrm.ingest.loader import load
from omnicrm.segments.evaluate import SegmentEngine
from omnicrm.segments.saved import create_segment
from omnicrm.store.schema import ingest_buffer
from omnicrm.store.state import StateStore
from tests.portrait.test_tags import AS_OF, INGESTED, Shop, line, write

PUBLIC, SECRET = "https://crm.shop.example", "a-long-test-secret-for-content-links"
PUBLISHED = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
VIEWED = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)


@pytest.fixture
def shop(tmp_path: Path, state: StateStore) -> Shop:
    s = Shop(tmp_path, state)
    write(s.facts, "order_line", [
        line("A1", "13900000001", "2026-10-10T03:00:00", 300.0),
        line("B1", "13900000002", "2026-10-12T03:00:00", 200.0),
    ], "import-0000000001")  # fmt: skip
    write(s.facts, "person", [
        {"source": "crm", "source_key": "M777", "member_card": "M777", "name": "周末", "observed_at": INGESTED},
    ], "import-0000000002")  # fmt: skip
    s.refresh()
    return s


def interests(shop: Shop, customer_id: int) -> list[str]:
    return list(shop.tags(customer_id)["interests"] or [])


def view(shop: Shop, item_id: int, customer_id: int | None = None, *, channel: str = "sms", url: str = "") -> None:
    link = url or content_url(PUBLIC, SECRET, item_id, channel=channel, customer_id=customer_id)
    record_view(shop.state, secret_key=SECRET, token=link.rsplit("/", 1)[1], visitor="f" * 32,
                identity=shop.derived.current("identity"), now=VIEWED)  # fmt: skip


@pytest.mark.timeout(300)
def test_views_of_a_baking_article_give_the_baking_interest(shop: Shop) -> None:
    a, b, c = shop.customer("phone", "13900000001"), shop.customer("phone", "13900000002"), shop.customer(
        "member_card", "M777")  # fmt: skip
    assert "baking" not in interests(shop, a) and interests(shop, c) == []
    baking = create_item(shop.state, {"title_zh": "周末烘焙：戚风蛋糕入门", "url": "https://shop.example.com/chiffon",
                                      "status": "published"}, by="test", now=PUBLISHED)  # fmt: skip
    camping = create_item(shop.state, {"title_zh": "第一次露营带什么", "url": "https://shop.example.com/camp",
                                       "status": "published"}, by="test", now=PUBLISHED)  # fmt: skip
    view(shop, baking.id, a)
    view(shop, baking.id, a, channel="wechat")
    view(shop, camping.id, c)
    # b shares the baking article; a friend (anonymous) opens it: the view is not b's own reading
    shared = share(shop.state, baking.id, b, channel="wechat", idempotency_key="b-shares", public_url=PUBLIC,
                   secret_key=SECRET, now=VIEWED)  # fmt: skip
    view(shop, baking.id, url=shared.url)
    with shop.state.connect() as conn:
        traits = [json.loads(p)["traits"] for p in conn.execute(select(ingest_buffer.c.payload).order_by(
            ingest_buffer.c.id)).scalars()]  # fmt: skip
    assert traits == [{"phone": "+8613900000001"}, {"phone": "+8613900000001"}, {"member_card": "M777"}, None]
    assert load(shop.state, shop.facts).events == 4

    shop.refresh()
    assert shop.customer("phone", "13900000001") == a, "the views joined a, they made no new customer"
    assert "baking" in interests(shop, a) and shop.tags(a)["top_interest"] == "baking"
    assert interests(shop, c) == ["camping"]
    assert interests(shop, b) == [], "sharing is not reading"

    # recommendations over the refreshed interests
    second = create_item(shop.state, {"title_zh": "烤箱新手的第一个吐司", "url": "https://shop.example.com/toast",
                                      "status": "published"}, by="test", now=PUBLISHED)  # fmt: skip
    segments = SegmentEngine(shop.engine, shop.derived, now=AS_OF, state=shop.state)
    everyone = create_segment(shop.state, segments, name="everyone", text="monetary >= 0", schedule="manual",
                              by="test")  # fmt: skip
    found = recommend(shop.state, segments, everyone.id, limit=10)
    members = segments.audience(text="monetary >= 0").count
    assert found.members == members >= 3
    ranked = [(r.item.id, r.matches, r.viewed) for r in found.items]
    # the friend who opened b's share is a prospect of their own now, interested in baking too
    assert ranked == [(baking.id, 2, 1), (second.id, 2, 0), (camping.id, 1, 1)], "ties: the newest, then the first"
    assert [r.share for r in found.items] == pytest.approx([2 / members, 2 / members, 1 / members])
    top = top_per_person(shop.state, tags=shop.derived.current("portrait") / "tags.parquet",
                         customers=pa.table({"customer_id": [a, b, c]}), n=3, now=AS_OF)  # fmt: skip
    assert top.to_pylist() == [{"customer_id": a, "rank": 1, "item_id": second.id, "overlap": 1}], (
        "a already read the baking article; c already read the only camping one; b has no interests"
    )
