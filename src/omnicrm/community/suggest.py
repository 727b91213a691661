"""Suggested members of a community: the customers whose portrait interests include the community's.

Set-based over the portrait snapshot in force (``tags.parquet``: the ``interests`` list tag, from searches, chats and
clerk notes), as one Ibis expression on the analytic engine (DuckDB, or Spark at scale). Optionally only customers
of one city (the ``city`` tag) or who bought at one store (order lines with that ``store_code``, through the OneID
snapshot). Current members are left out when the state store is given, so the list is whom to invite next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import select

from omnicrm.community.communities import Community
from omnicrm.errors import NotFound, Problem
from omnicrm.portrait.inputs import PortraitInputs
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.schema import community_members
from omnicrm.store.state import StateStore

__all__ = ["Suggestions", "suggest_members"]


@dataclass(frozen=True)
class Suggestions:
    """How many customers match, and a page of them: customer_id, city and the community's interests they have."""

    total: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def customer_ids(self) -> list[int]:
        return [int(r["customer_id"]) for r in self.rows]


def _members(state: StateStore, community_id: int) -> pa.Table:
    m = community_members
    with state.connect() as conn:
        ids = conn.execute(select(m.c.customer_id).where(m.c.community_id == community_id, m.c.left_at.is_(None)))
        return pa.table({"customer_id": pa.array(list(ids.scalars()), pa.int64())})


def _store_buyers(engine: Engine, derived: DerivedStore, store: str) -> ir.Table:
    identity = derived.current("identity")
    if identity is None:
        raise NotFound("there is no OneID snapshot yet; run `omnicrm refresh` first", [Problem("unknown yet", "store")])
    lines = PortraitInputs.from_snapshot(engine, identity).order_lines()
    return lines.filter(lines.store_code == store).select("customer_id").distinct()


def suggest_members(
    engine: Engine, derived: DerivedStore, community: Community, *, state: StateStore | None = None,
    city: str | None = None, store: str | None = None, limit: int | None = 50, offset: int = 0,
) -> Suggestions:  # fmt: skip
    """Customers whose ``interests`` tag shares an interest with the community, ordered by customer id; a page of
    ``limit`` (None: all) from ``offset``, with the total. NotFound before the first portrait refresh."""
    portrait = derived.current("portrait")
    if portrait is None:
        raise NotFound("there is no portrait yet; run `omnicrm refresh` first", [Problem("no portrait", "community")])
    tags = engine.parquet([portrait / "tags.parquet"], "community_tags")
    if "interests" not in tags.columns:
        return Suggestions(0)
    wanted = ibis.literal(list(community.interests), type="array<string>")
    found = tags.mutate(matched=tags.interests.filter(lambda x: wanted.contains(x)))
    found = found.filter(found.matched.length() > 0)
    has_city = "city" in tags.columns
    if city:
        found = found.filter(found.city == city) if has_city else found.limit(0)
    if store:
        found = found.semi_join(_store_buyers(engine, derived, store), "customer_id")
    if state is not None:
        found = found.anti_join(engine.table_from_arrow(_members(state, community.id), "community_members"),
                                "customer_id")  # fmt: skip
    shown = found.select("customer_id", "matched", city=found.city if has_city else ibis.null("string"))
    total = int(engine.to_arrow(shown.count().as_table())[0][0].as_py())
    page = shown.order_by("customer_id")
    if limit is not None:
        page = page.limit(limit, offset=offset)
    rows = engine.to_arrow(page).to_pylist()
    return Suggestions(total, [{"customer_id": int(r["customer_id"]), "city": r["city"],
                                "interests": list(r["matched"] or [])} for r in rows])  # fmt: skip
