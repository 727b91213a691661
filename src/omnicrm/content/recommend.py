"""Recommendations of content: live items ranked for a segment's members, and each person's top items.

Both compare an item's topics with the portrait's ``interests`` tag (interest ids of the same taxonomy), set-based in
DuckDB over the tags snapshot in force:

- **For a segment** (``recommend``): each live item with the number of members holding at least one of its topics
  (``matches``), that number over the members (``share``) and how many members already viewed it (``viewed``).
  Ranked by matches, then the newest first; items no member is interested in are left out.
- **Per person** (``top_per_person``, which a campaign calls with its recipients to put each one's links in the
  message): the items matching a person's interests that they have not viewed yet, ranked by how many of the
  person's interests the item covers, then by the person's strongest interest it covers (the tag lists interests
  strongest first), then by how many of the given customers it matches, then the newest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import select

from omnicrm.content.library import Item, live_items
from omnicrm.errors import InputError, Problem
from omnicrm.loyalty.locks import utc
from omnicrm.segments.evaluate import SegmentEngine
from omnicrm.segments.saved import get_segment
from omnicrm.store.schema import content_views
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "MAX_LIMIT", "MAX_PER_PERSON", "Recommendation", "SegmentRecommendations", "rank_for_members", "recommend",
    "top_per_person",
]  # fmt: skip

MAX_LIMIT = 100
MAX_PER_PERSON = 20
PER_PERSON_SCHEMA = pa.schema(
    [("customer_id", pa.int64()), ("rank", pa.int64()), ("item_id", pa.int64()), ("overlap", pa.int64())]
)

_SEGMENT = """
WITH m AS (SELECT DISTINCT customer_id FROM members),
mi AS (
    SELECT DISTINCT customer_id, unnest(interests) AS topic
    FROM read_parquet($tags) WHERE customer_id IN (SELECT customer_id FROM m)
),
it AS (SELECT DISTINCT item_id, unnest(topics) AS topic FROM items),
hit AS (SELECT it.item_id, count(DISTINCT mi.customer_id) AS matches FROM it JOIN mi USING (topic) GROUP BY ALL),
seen AS (
    SELECT item_id, count(DISTINCT customer_id) AS viewed
    FROM viewed WHERE customer_id IN (SELECT customer_id FROM m) GROUP BY ALL
)
SELECT i.item_id, h.matches, coalesce(s.viewed, 0) AS viewed
FROM items i JOIN hit h USING (item_id) LEFT JOIN seen s USING (item_id)
ORDER BY h.matches DESC, i.publish_at DESC NULLS LAST, i.item_id
LIMIT $limit
"""

_PER_PERSON = """
WITH c AS (SELECT DISTINCT customer_id FROM customers),
ci AS (
    SELECT customer_id, topic, list_position(interests, topic) AS pos
    FROM (SELECT customer_id, interests, unnest(interests) AS topic FROM read_parquet($tags)
          WHERE customer_id IN (SELECT customer_id FROM c))
),
it AS (SELECT DISTINCT item_id, unnest(topics) AS topic FROM items),
pairs AS (
    SELECT ci.customer_id, it.item_id, count(DISTINCT ci.topic) AS overlap, min(ci.pos) AS best
    FROM ci JOIN it USING (topic) GROUP BY ALL
),
audience AS (SELECT item_id, count(*) AS matches FROM pairs GROUP BY ALL),
fresh AS (
    SELECT p.* FROM pairs p
    WHERE NOT EXISTS (SELECT 1 FROM viewed v WHERE v.customer_id = p.customer_id AND v.item_id = p.item_id)
),
ranked AS (
    SELECT f.customer_id, f.item_id, f.overlap,
           row_number() OVER (PARTITION BY f.customer_id
                              ORDER BY f.overlap DESC, f.best, a.matches DESC, i.publish_at DESC NULLS LAST,
                                       f.item_id) AS rank
    FROM fresh f JOIN audience a USING (item_id) JOIN items i USING (item_id)
)
SELECT customer_id, rank, item_id, overlap FROM ranked WHERE rank <= $n ORDER BY customer_id, rank
"""


@dataclass(frozen=True)
class Recommendation:
    """An item for a segment: members interested in its topics, their share of the members, members who viewed it."""

    item: Item
    matches: int
    share: float
    viewed: int

    def as_dict(self) -> dict[str, Any]:
        return {"item": self.item.as_dict(), "matches": self.matches, "share": self.share, "viewed": self.viewed}


@dataclass(frozen=True)
class SegmentRecommendations:
    """The ranked items for a segment's members now, over the portrait snapshot ``portrait``."""

    segment_id: int
    segment_name: str
    members: int
    portrait: str
    items: list[Recommendation]

    def as_dict(self) -> dict[str, Any]:
        return {"segment_id": self.segment_id, "segment_name": self.segment_name, "members": self.members,
                "portrait": self.portrait, "items": [r.as_dict() for r in self.items]}  # fmt: skip


def _check(value: int, field: str, high: int) -> None:
    if not 1 <= value <= high:
        raise InputError(f"{field} must be from 1 to {high}", [Problem(f"{value} is out of range", field)])


def _items_table(items: list[Item]) -> pa.Table:
    return pa.table(
        {
            "item_id": pa.array([it.id for it in items], pa.int64()),
            "topics": pa.array([list(it.topics) for it in items], pa.list_(pa.string())),
            "publish_at": pa.array([it.publish_at for it in items], pa.timestamp("us", tz="UTC")),
        }
    )


def _viewed(state: StateStore, items: list[Item]) -> pa.Table:
    """(customer_id, item_id) of every known customer's views of these items."""
    v = content_views.c
    query = (
        select(v.customer_id, v.item_id)
        .where(v.customer_id.is_not(None), v.item_id.in_([it.id for it in items]))
        .distinct()
    )
    with state.connect() as conn:
        rows = conn.execute(query).all() if items else []
    return pa.table(
        {
            "customer_id": pa.array([r.customer_id for r in rows], pa.int64()),
            "item_id": pa.array([r.item_id for r in rows], pa.int64()),
        }
    )


def _ids(table: pa.Table, name: str) -> pa.Table:
    if "customer_id" not in table.schema.names:
        raise InputError(f"the {name} have no customer_id column", [Problem("missing column", "customer_id")])
    return table.select(["customer_id"]).cast(pa.schema([("customer_id", pa.int64())]))


def rank_for_members(
    state: StateStore, *, tags: Path, members: pa.Table, limit: int = 10, now: dt.datetime | None = None
) -> tuple[int, list[Recommendation]]:  # fmt: skip
    """(how many members, the live items ranked for them) over the tags file ``tags`` (see the module docstring)."""
    _check(limit, "limit", MAX_LIMIT)
    items = live_items(state, utc(now) if now else utcnow())
    people = _ids(members, "members")
    con = duckdb.connect()
    try:
        con.register("members", people)
        con.register("items", _items_table(items))
        con.register("viewed", _viewed(state, items))
        count = int(con.sql("SELECT count(DISTINCT customer_id) FROM members").fetchall()[0][0])
        rows = con.sql(_SEGMENT, params={"tags": str(tags), "limit": limit}).fetchall() if items and count else []
    finally:
        con.close()
    by_id = {it.id: it for it in items}
    return count, [Recommendation(by_id[int(i)], int(m), int(m) / count, int(v)) for i, m, v in rows]


def recommend(state: StateStore, segments: SegmentEngine, segment_id: int, limit: int = 10) -> SegmentRecommendations:
    """The live items ranked for the members the segment has now (its rule over the portrait in force)."""
    _check(limit, "limit", MAX_LIMIT)
    segment = get_segment(state, segment_id)
    members = segments.audience(segment.rule).members
    tags = segments.portrait / "tags.parquet"
    # items live now (the engine's moment is cut to the second: an item published in this second would not count)
    count, ranked = rank_for_members(state, tags=tags, members=members, limit=limit)
    return SegmentRecommendations(segment.id, segment.name, count, segments.portrait.name, ranked)


def top_per_person(
    state: StateStore, *, tags: Path, customers: pa.Table, n: int = 3, now: dt.datetime | None = None
) -> pa.Table:  # fmt: skip
    """Each customer's top ``n`` live items they have not viewed: (customer_id, rank from 1, item_id, overlap: how
    many of their interests the item covers), ordered by customer and rank. Customers with no matching item have no
    rows. ``customers`` is a table with a ``customer_id`` column (a campaign's recipients)."""
    _check(n, "n", MAX_PER_PERSON)
    people = _ids(customers, "customers")
    items = live_items(state, utc(now) if now else utcnow())
    if not items:
        return PER_PERSON_SCHEMA.empty_table()
    con = duckdb.connect()
    try:
        con.register("customers", people)
        con.register("items", _items_table(items))
        con.register("viewed", _viewed(state, items))
        out = con.sql(_PER_PERSON, params={"tags": str(tags), "n": n}).to_arrow_table()
    finally:
        con.close()
    return out.cast(PER_PERSON_SCHEMA)
