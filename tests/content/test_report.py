"""The content report, on SQLite and PostgreSQL: views, unique viewers, shares and share views per item, channel
and local day, counted by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omnicrm.content.library import create_item
from omnicrm.content.links import content_url, share
from omnicrm.content.report import content_report
from omnicrm.content.views import record_view
from omnicrm.errors import InputError
from omnicrm.store.state import StateStore

SECRET, PUBLIC = "a-long-test-secret-for-content-links", "https://crm.example"
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # 12:00 on the 20th in Shanghai


def test_views_shares_and_viewers_by_item_channel_and_day(state: StateStore) -> None:
    tea = create_item(state, {"title_zh": "冬日喝茶", "url": "https://x.example/tea", "status": "published"},
                      by="t", now=NOW - timedelta(days=30))  # fmt: skip
    yoga = create_item(state, {"title_zh": "瑜伽入门", "url": "https://x.example/yoga", "status": "published"},
                       by="t", now=NOW - timedelta(days=30))  # fmt: skip

    def view(item: int, at: datetime, customer: int | None = None, channel: str = "sms", visitor: str | None = None,
             url: str | None = None) -> None:  # fmt: skip
        link = url or content_url(PUBLIC, SECRET, item, channel=channel, customer_id=customer)
        record_view(state, secret_key=SECRET, token=link.rsplit("/", 1)[1], visitor=visitor, now=at)

    late = datetime(2026, 11, 18, 16, 30, tzinfo=UTC)  # 00:30 on the 19th in Shanghai, still the 18th in UTC
    view(tea.id, late, customer=1)
    view(tea.id, late + timedelta(hours=1), customer=1)  # the same person again
    view(tea.id, NOW, customer=2, channel="wechat")
    shared = share(state, tea.id, 2, channel="wechat", idempotency_key="s", public_url=PUBLIC, secret_key=SECRET,
                   now=NOW)  # fmt: skip
    view(tea.id, NOW, url=shared.url, visitor="a" * 32)
    view(tea.id, NOW, url=shared.url, visitor="a" * 32)  # the same browser again
    view(tea.id, NOW, url=shared.url)  # no cookie: a viewer of its own
    view(yoga.id, NOW - timedelta(days=8), customer=3)  # outside a 7-day window

    week = content_report(state, days=7, now=NOW)
    assert (week["first_day"], week["last_day"], week["since"]) == ("2026-11-14", "2026-11-20",
                                                                    "2026-11-13T16:00:00+00:00")  # fmt: skip
    assert week["totals"] == {"views": 6, "unique_viewers": 4, "shares": 1, "share_views": 3}
    assert week["items"] == [{"item_id": tea.id, "views": 6, "unique_viewers": 4, "shares": 1, "share_views": 3}]
    assert week["by_channel"] == [
        {"channel": "sms", "views": 2, "unique_viewers": 1, "shares": 0, "share_views": 0},
        {"channel": "wechat", "views": 4, "unique_viewers": 3, "shares": 1, "share_views": 3},
    ]
    days = {d["day"]: (d["views"], d["unique_viewers"], d["shares"]) for d in week["by_day"]}
    assert len(days) == 7 and days["2026-11-19"] == (2, 1, 0) and days["2026-11-20"] == (4, 3, 1)
    assert days["2026-11-18"] == (0, 0, 0), "days are local days"
    month = content_report(state, days=30, now=NOW, item_id=yoga.id)
    assert month["totals"] == {"views": 1, "unique_viewers": 1, "shares": 0, "share_views": 0}
    assert month["items"] == [{"item_id": yoga.id, "views": 1, "unique_viewers": 1, "shares": 0, "share_views": 0}]
    utc = content_report(state, days=7, now=NOW, timezone="UTC")
    assert {d["day"]: d["views"] for d in utc["by_day"]}["2026-11-18"] == 2


def test_a_report_of_a_bad_window_names_the_fields(state: StateStore) -> None:
    with pytest.raises(InputError) as exc:
        content_report(state, days=0, timezone="Mars/Olympus")
    assert {p.field for p in exc.value.problems} == {"days", "timezone"}
    empty = content_report(state, days=3, now=NOW)
    assert empty["totals"] == {"views": 0, "unique_viewers": 0, "shares": 0, "share_views": 0}
    assert [d["views"] for d in empty["by_day"]] == [0, 0, 0] and empty["items"] == []
