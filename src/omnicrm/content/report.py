"""The content report: views, unique viewers, shares and the views shares brought, per item, channel and day.

The window is the last ``days`` calendar days in the merchant's time zone, today included. A viewer is the customer
when the link was theirs, else the browser (its cookie id); a view whose browser kept no cookie counts as a viewer
of its own. The window's views and shares are read from the state store once and added up in DuckDB.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select

from omnicrm.errors import InputError, Problem
from omnicrm.loyalty.locks import utc
from omnicrm.store.schema import content_shares, content_views
from omnicrm.store.state import StateStore, utcnow

__all__ = ["MAX_DAYS", "content_report"]

MAX_DAYS = 366
_UTC = pa.timestamp("us", tz="UTC")


def _window(days: int, timezone: str, now: dt.datetime) -> tuple[dt.datetime, dt.date, dt.date]:
    """(the window's start in UTC, its first and last local day)."""
    problems = []
    if not 1 <= days <= MAX_DAYS:
        problems.append(Problem(f"{days} is not from 1 to {MAX_DAYS}", "days"))
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(Problem(f"unknown time zone {timezone!r}, e.g. Asia/Shanghai", "timezone"))
    if problems:
        raise InputError("the content report cannot be made", problems)
    last = now.astimezone(zone).date()
    first = last - dt.timedelta(days=days - 1)
    return dt.datetime.combine(first, dt.time(), zone).astimezone(dt.UTC), first, last


def _days(at: pa.Array, timezone: str) -> pa.Array:
    """The local calendar day of each UTC time."""
    return pc.cast(pc.local_timestamp(pc.cast(at, pa.timestamp("us", tz=timezone))), pa.date32())


def _read(state: StateStore, since: dt.datetime, item_id: int | None, timezone: str) -> tuple[pa.Table, pa.Table]:
    """The window's views and shares, each with its local day."""
    v, s = content_views.c, content_shares.c
    views = select(v.id, v.item_id, v.channel, v.at, v.customer_id, v.visitor, v.referrer_id).where(v.at >= since)
    shares = select(s.item_id, s.channel, s.at).where(s.at >= since)
    if item_id is not None:
        views, shares = views.where(v.item_id == item_id), shares.where(s.item_id == item_id)
    with state.connect() as conn:
        vrows, srows = conn.execute(views).all(), conn.execute(shares).all()
    view_at = pa.array([utc(r.at) for r in vrows], _UTC)
    view_table = pa.table({
        "item_id": pa.array([r.item_id for r in vrows], pa.int64()),
        "channel": pa.array([r.channel for r in vrows], pa.string()), "day": _days(view_at, timezone),
        "id": pa.array([r.id for r in vrows], pa.int64()),
        "customer_id": pa.array([r.customer_id for r in vrows], pa.int64()),
        "visitor": pa.array([r.visitor for r in vrows], pa.string()),
        "referrer_id": pa.array([r.referrer_id for r in vrows], pa.int64()),
    })  # fmt: skip
    share_at = pa.array([utc(r.at) for r in srows], _UTC)
    share_table = pa.table({
        "item_id": pa.array([r.item_id for r in srows], pa.int64()),
        "channel": pa.array([r.channel for r in srows], pa.string()), "day": _days(share_at, timezone),
    })  # fmt: skip
    return view_table, share_table


_GROUPED = """
SELECT {key}, sum(views)::BIGINT AS views, sum(unique_viewers)::BIGINT AS unique_viewers,
       sum(shares)::BIGINT AS shares, sum(share_views)::BIGINT AS share_views
FROM (
    SELECT {key}, count(*) AS views, count(DISTINCT viewer) AS unique_viewers, 0 AS shares,
           count(referrer_id) AS share_views
    FROM v GROUP BY ALL
    UNION ALL BY NAME
    SELECT {key}, 0 AS views, 0 AS unique_viewers, count(*) AS shares, 0 AS share_views FROM s GROUP BY ALL
) GROUP BY ALL ORDER BY {key}
"""
_TOTALS = """
SELECT (SELECT count(*) FROM v)::BIGINT AS views, (SELECT count(DISTINCT viewer) FROM v)::BIGINT AS unique_viewers,
       (SELECT count(*) FROM s)::BIGINT AS shares, (SELECT count(referrer_id) FROM v)::BIGINT AS share_views
"""


def content_report(
    state: StateStore, *, item_id: int | None = None, days: int = 30, timezone: str = "Asia/Shanghai",
    now: dt.datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Views, unique viewers, shares and share views over the window: in total, per item (every item, when no
    ``item_id`` is given), per channel and per day (every day of the window, days without any as zeros)."""
    moment = utc(now) if now else utcnow()
    since, first, last = _window(days, timezone, moment)
    views, shares = _read(state, since, item_id, timezone)
    con = duckdb.connect()
    try:
        con.register("views_in", views)
        con.execute("CREATE TEMP VIEW v AS SELECT *, coalesce('c' || customer_id, 'b' || visitor, 'v' || id) AS viewer "
                    "FROM views_in")  # fmt: skip
        con.register("s", shares)
        totals = con.sql(_TOTALS).to_arrow_table().to_pylist()[0]
        items = con.sql(_GROUPED.format(key="item_id")).to_arrow_table().to_pylist()
        channels = con.sql(_GROUPED.format(key="channel")).to_arrow_table().to_pylist()
        per_day = {row["day"]: row for row in con.sql(_GROUPED.format(key="day")).to_arrow_table().to_pylist()}
    finally:
        con.close()
    zero = {"views": 0, "unique_viewers": 0, "shares": 0, "share_views": 0}
    every_day = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    return {
        "item_id": item_id, "days": days, "timezone": timezone, "since": since.isoformat(),
        "until": moment.isoformat(), "first_day": first.isoformat(), "last_day": last.isoformat(), "totals": totals,
        "items": items, "by_channel": channels,
        "by_day": [{**zero, **per_day.get(d, {}), "day": d.isoformat()} for d in every_day],
    }  # fmt: skip
