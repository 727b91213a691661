"""The content library on SQLite and PostgreSQL: topics checked or found in the text, bad input refused with every
field named and nothing written, idempotent creates, edits that name the version they read, concurrent edits and
shares, filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from omnicrm.content.library import check_item, create_item, get_item, list_items, live_items, update_item
from omnicrm.content.links import share
from omnicrm.errors import Conflict, InputError, NotFound
from omnicrm.store.schema import content_items, content_shares
from omnicrm.store.state import StateStore
from tests.loyalty.checks import run

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
BAKING = {"title_zh": "周末烘焙：戚风蛋糕入门", "url": "https://shop.example.com/articles/chiffon"}
PUBLIC, SECRET = "https://crm.shop.example", "a-long-test-secret-for-content-links"


def rows(state: StateStore, table: Any = content_items) -> int:
    with state.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def problems(exc: pytest.ExceptionInfo[InputError]) -> dict[str, str]:
    return {p.field or "": p.reason for p in exc.value.problems}


def test_topics_are_found_in_the_title_or_checked_against_the_taxonomy(state: StateStore) -> None:
    found = create_item(state, BAKING, by="test", now=T0)
    assert (found.topics, found.topics_derived, found.kind, found.status) == (("baking",), True, "article", "draft")
    assert found.publish_at is None and found.version == 1 and not found.live(T0)
    english = create_item(state, {"title_zh": "露营装备清单", "summary_en": "Trail running and a tent", "url":
                                  "http://shop.example.com/camp"}, by="test", now=T0)  # fmt: skip
    assert english.topics == ("camping", "running")
    given = create_item(state, {**BAKING, "topics": ["coffee", "baking", "coffee"], "kind": "video"}, by="t", now=T0)
    assert (given.topics, given.topics_derived, given.kind) == (("coffee", "baking"), False, "video")


def test_bad_input_names_every_field_and_writes_nothing(state: StateStore) -> None:
    bad = {"title_zh": "  ", "url": "javascript:alert(document.cookie)", "topics": ["bakeing", "baking"],
           "kind": "podcast", "status": "live", "colour": "red"}  # fmt: skip
    with pytest.raises(InputError) as exc:
        create_item(state, bad, by="test", now=T0)
    assert exc.value.message == "the new content item is not valid"
    assert problems(exc) == {
        "colour": "unknown field; the fields are kind, title_zh, title_en, summary_zh, summary_en, url, topics, "
        "store_code, community, status, publish_at, end_at",
        "kind": "'podcast' is not one of article, lecture, video",
        "title_zh": "an item needs a Chinese title",
        "url": "only http:// and https:// addresses can be shared, not 'javascript:'",
        "status": "'live' is not one of draft, published, archived",
        "topics": "unknown interest 'bakeing' — did you mean 'baking'?",
    }
    assert rows(state) == 0


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("data:text/html,<script>alert(1)</script>", "only http:// and https:// addresses can be shared, not 'data:'"),
        ("JavaScript:alert(1)", "only http:// and https:// addresses can be shared, not 'javascript:'"),
        ("/articles/1", "write the whole address, starting with https://"),
        ("https:///path", "the address has no host name after https://"),
        ("https://shop.example.com/a b", "the address contains spaces or control characters; encode them (%20)"),
        ("", "give the address the item links to, e.g. https://shop.example.com/articles/1"),
    ],
)
def test_only_whole_http_addresses_can_be_shared(url: str, reason: str) -> None:
    with pytest.raises(InputError) as exc:
        check_item({**BAKING, "url": url})
    assert problems(exc) == {"url": reason}


def test_other_field_errors(state: StateStore) -> None:
    with pytest.raises(InputError) as exc:
        check_item({"title_zh": "周末好去处", "url": "https://x.example/a"})
    assert problems(exc) == {"topics": "no topics given, and no interest is named in the title or summary; choose "
                                       "at least one interest"}  # fmt: skip
    with pytest.raises(InputError) as exc:
        check_item({**BAKING, "topics": ["nothing_like_it"]})
    assert problems(exc)["topics"].startswith("unknown interest 'nothing_like_it' — topics are interest ids: running,")
    with pytest.raises(InputError) as exc:
        check_item({**BAKING, "publish_at": datetime(2026, 11, 1), "end_at": "2026-10-01T00:00:00+08:00",
                    "title_en": "x" * 201})  # fmt: skip
    assert problems(exc) == {"publish_at": "the time has no time zone; give it with an offset, e.g. +08:00",
                             "title_en": "201 characters; at most 200"}  # fmt: skip
    with pytest.raises(InputError) as exc:
        check_item({**BAKING, "publish_at": T0, "end_at": T0 - timedelta(days=1)})
    assert problems(exc) == {"end_at": "the end must come after the start (publish_at)"}
    assert rows(state) == 0


def test_publishing_and_the_dates_decide_when_it_is_live(state: StateStore) -> None:
    item = create_item(state, {**BAKING, "status": "published"}, by="test", now=T0)
    assert item.publish_at == T0 and item.live(T0) and not item.live(T0 - timedelta(seconds=1))
    later = create_item(state, {**BAKING, "title_zh": "圣诞烘焙", "status": "published",
                                "publish_at": "2026-12-01T10:00:00+08:00", "end_at": "2026-12-26T00:00:00+08:00"},
                        by="test", now=T0)  # fmt: skip
    assert later.publish_at == datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    assert [i.id for i in live_items(state, T0)] == [item.id]
    assert [i.id for i in live_items(state, datetime(2026, 12, 2, tzinfo=UTC))] == [item.id, later.id]
    assert [i.id for i in live_items(state, datetime(2026, 12, 26, tzinfo=UTC))] == [item.id]
    archived = update_item(state, item.id, {"status": "archived"}, now=T0 + timedelta(days=1))
    assert archived.status == "archived" and archived.version == 2 and not archived.live(T0 + timedelta(days=2))


def test_a_repeated_create_makes_one_item(state: StateStore) -> None:
    first = create_item(state, BAKING, by="test", idempotency_key="k-1", now=T0)
    again = create_item(state, BAKING, by="test", idempotency_key="k-1", now=T0 + timedelta(minutes=1))
    assert again == first and rows(state) == 1
    with pytest.raises(Conflict) as exc:
        create_item(state, {**BAKING, "title_zh": "别的文章", "topics": ["baking"]}, by="test", idempotency_key="k-1")
    assert exc.value.problems[0].field == "idempotency_key" and rows(state) == 1


@pytest.mark.timeout(120)
def test_concurrent_creates_with_one_key_make_one_item(state: StateStore) -> None:
    made = run(16, lambda i: create_item(state, BAKING, by=f"t{i}", idempotency_key="same", now=T0))
    assert not [m for m in made if isinstance(m, Exception)]
    assert len({m.id for m in made}) == 1 and rows(state) == 1


def test_edits_name_the_version_they_read(state: StateStore) -> None:
    item = create_item(state, BAKING, by="test", now=T0)
    edited = update_item(state, item.id, {"title_zh": "手冲咖啡入门"}, version=1, now=T0)
    assert (edited.version, edited.topics, edited.topics_derived) == (2, ("coffee",), True), "found again"
    with pytest.raises(Conflict) as exc:
        update_item(state, item.id, {"title_zh": "stale"}, version=1)
    assert exc.value.message == "content item 1 was changed meanwhile (now version 2, you read 1)"
    assert get_item(state, item.id).title_zh == "手冲咖啡入门"
    chosen = update_item(state, item.id, {"topics": ["tea"]}, version=2)
    kept = update_item(state, item.id, {"title_zh": "手冲咖啡与烘焙"}, version=3)
    assert (chosen.topics, kept.topics, kept.topics_derived) == (("tea",), ("tea",), False), "chosen topics stay"
    with pytest.raises(InputError) as bad:
        update_item(state, item.id, {"url": "javascript:void(0)"})
    assert bad.value.message == "content item 1 is not valid" and get_item(state, item.id).version == 4
    with pytest.raises(NotFound):
        update_item(state, 999, {"title_zh": "x"})


@pytest.mark.timeout(120)
def test_concurrent_edits_lose_nothing(state: StateStore) -> None:
    item = create_item(state, BAKING, by="test", now=T0)
    results = run(12, lambda i: update_item(state, item.id, {"summary_zh": f"第{i}版"}, version=1))
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 1 and all(isinstance(r, Conflict) for r in lost), results
    assert get_item(state, item.id).version == 2 and get_item(state, item.id).summary_zh == won[0].summary_zh


@pytest.mark.timeout(120)
def test_shares_are_idempotent_and_only_of_live_items(state: StateStore) -> None:
    draft = create_item(state, BAKING, by="test", now=T0)
    args: dict[str, Any] = {"public_url": PUBLIC, "secret_key": SECRET, "now": T0}
    with pytest.raises(Conflict) as exc:
        share(state, draft.id, 7, channel="wechat", idempotency_key="s-0", **args)
    assert exc.value.message == "content item 1 is draft and not live now; only a live item can be shared"
    assert rows(state, content_shares) == 0
    update_item(state, draft.id, {"status": "published"}, now=T0)
    results = run(10, lambda i: share(state, draft.id, 7, channel="wechat", idempotency_key="s-1", **args))
    assert len({r.id for r in results}) == 1 and rows(state, content_shares) == 1, results
    assert results[0].url.startswith(f"{PUBLIC}/c/")
    with pytest.raises(Conflict):
        share(state, draft.id, 8, channel="wechat", idempotency_key="s-1", **args)
    with pytest.raises(InputError) as bad:
        share(state, draft.id, 7, channel="carrier pigeon", idempotency_key="s-2", **args)
    assert bad.value.problems[0].field == "channel" and rows(state, content_shares) == 1


def test_filters_and_pages(state: StateStore) -> None:
    for i in range(5):
        create_item(state, {**BAKING, "title_zh": f"烘焙第{i}课", "kind": "lecture" if i % 2 else "article"},
                    by="t", now=T0)  # fmt: skip
    create_item(state, {"title_zh": "Yoga at home", "title_en": "Yoga_100% at home", "url": "https://x.example/y",
                        "status": "published"}, by="t", now=T0)  # fmt: skip
    page, total = list_items(state, limit=2)
    assert total == 6 and [i.title_zh for i in page] == ["Yoga at home", "烘焙第4课"]
    assert list_items(state, kind="lecture")[1] == 2 and list_items(state, status="published")[1] == 1
    assert list_items(state, topic="yoga")[1] == 1 and list_items(state, topic="baking")[1] == 5
    assert list_items(state, topic="ball_sports")[1] == 0
    assert list_items(state, query="第3")[1] == 1 and list_items(state, query="100%")[1] == 1
    assert list_items(state, query="第_课")[1] == 0, "wildcards are taken literally"
