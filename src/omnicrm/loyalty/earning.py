"""Points from orders: a set-based award over a table of orders, safe to replay.

``award_orders`` computes every order's points in the engine (``rules.order_points``, one Ibis expression on
DuckDB or Spark), then writes the ledger in chunks of orders, one transaction each, holding the chunk's members:

- an order that never earned gets a lot (pending until its return window ends);
- an order that already earned (under any rule version) earns nothing more: replaying the same orders, or
  re-reading facts after a refresh, awards once;
- an order that earned and is now worth less (a refund came in with a later export) has the difference of its
  points reversed (``refunds.reverse_to``), in proportion to the money refunded.

``order_facts`` builds the input from the portrait's inputs (OneID customers, latest version of each order line,
shop orders from ``Order Completed`` events); any other table with ``rules.ORDER_COLUMNS`` works as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import Connection, func, select, tuple_

from omnicrm.loyalty.ledger import Award, write_awards
from omnicrm.loyalty.locks import CHUNK, lock_members, transaction, utc, when
from omnicrm.loyalty.refunds import order_lot, reverse_to
from omnicrm.loyalty.rules import LoyaltyRules, order_points
from omnicrm.loyalty.tiers import tier_multipliers
from omnicrm.portrait.inputs import PortraitInputs
from omnicrm.portrait.orders import ORDER_KEY
from omnicrm.store.engine import duckdb_backend
from omnicrm.store.schema import point_entries, point_lots
from omnicrm.store.state import StateStore, utcnow

__all__ = ["AwardResult", "award_orders", "order_facts", "points_of_orders"]

L, E = point_lots, point_entries


@dataclass
class AwardResult:
    """What one run of ``award_orders`` did."""

    orders: int = 0  # orders read
    awarded: int = 0  # new lots
    points: int = 0  # points in the new lots
    already: int = 0  # orders that had already earned (replays)
    nothing: int = 0  # orders that earn no points (nothing paid, all refunded, or a channel at 0x)
    reversed_orders: int = 0  # orders whose refund reversed points in this run
    reversed_points: int = 0  # points those reversals took back
    written_off: int = 0  # points of those reversals forgiven (policy forgive: already spent, nothing left)

    def add(self, other: AwardResult) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def order_facts(inputs: PortraitInputs) -> ir.Table:
    """The orders of ``inputs`` in the shape ``award_orders`` reads: one row per order and product category (the
    latest version of its lines, refunds as of the inputs' moment), and one per shop order (no category)."""
    lines = inputs.order_lines()
    by_category = lines.group_by([*ORDER_KEY, "category"]).aggregate(
        paid_at=lines.created_at.min(),
        channel=lines.channel.max(),
        paid=lines.paid_amount.fill_null(0).sum(),
        refunded=lines.refunded_amount.fill_null(0).sum(),
    )
    shop = inputs.orders().anti_join(by_category, ORDER_KEY)
    shop = shop.select(
        *ORDER_KEY, category=ibis.null("string"), paid_at="created_at", channel="channel", paid="paid",
        refunded="refunded",
    )  # fmt: skip
    return ibis.union(by_category.select(shop.columns), shop.cast(by_category.select(shop.columns).schema()))


def points_of_orders(state: StateStore, orders: pa.Table | ir.Table, rules: LoyaltyRules) -> pa.Table:
    """Each order's points under ``rules`` with the members' current tier multipliers (computes, writes nothing)."""
    tiers = tier_multipliers(state, rules.tiers)
    if isinstance(orders, pa.Table):
        con = duckdb_backend()
        expr = order_points(ibis.memtable(orders), rules, ibis.memtable(tiers) if tiers is not None else None)
        return con.to_pyarrow(expr)
    return order_points(orders, rules, ibis.memtable(tiers) if tiers is not None else None).to_pyarrow()


def _detail(r: dict[str, Any], version: int) -> dict[str, Any]:
    return {
        "rule_version": version, "net": str(r["net"]), "channel_x": str(r["channel_x"]), "tier_x": str(r["tier_x"]),
        "birthday_x": str(r["birthday_x"]), "campaign_x": str(r["campaign_x"]), "campaigns": r["campaigns"] or [],
    }  # fmt: skip


def _spend_left(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """For orders that earned: the money they earned on, less the refunds already reversed (cents)."""
    refunds = (
        select(E.c.lot_id, func.sum(E.c.spend_cents).label("back")).where(E.c.kind == "reverse").group_by(E.c.lot_id)
    ).subquery()
    rows = conn.execute(
        select(L.c.source, L.c.order_id, L.c.spend_cents + func.coalesce(refunds.c.back, 0))
        .select_from(L.outerjoin(refunds, refunds.c.lot_id == L.c.id))
        .where(tuple_(L.c.source, L.c.order_id).in_(keys))
    ).all()
    return {(s, o): int(v) for s, o, v in rows}


def _award_chunk(
    conn: Connection, *, rows: list[dict[str, Any]], rules: LoyaltyRules, now: datetime, by: str
) -> AwardResult:
    out = AwardResult(orders=len(rows))
    lock_members(conn, (r["customer_id"] for r in rows), now)
    earned = _spend_left(conn, [(r["source"], r["order_id"]) for r in rows])
    awards = []
    for r in rows:
        key = (r["source"], r["order_id"])
        if key in earned:
            out.already += 1
            if int(r["spend_cents"]) < earned[key]:  # a refund the ledger has not reversed yet
                lot = order_lot(conn, *key)
                assert lot is not None
                entry = reverse_to(
                    conn, lot, int(r["spend_cents"]), at=now, now=now, by=by, reference=r["order_id"],
                    reason="order refunded", policy=rules.refund_shortfall,
                )  # fmt: skip
                if entry is not None:
                    out.reversed_orders += 1
                    out.reversed_points += -entry.points
                    out.written_off += entry.written_off
        elif int(r["points"]) <= 0:
            out.nothing += 1
        else:
            expires = r["expires_at"]
            awards.append(Award(
                int(r["customer_id"]), r["source"], r["order_id"], int(r["points"]), utc(r["paid_at"]),
                utc(r["activates_at"]), utc(expires) if expires is not None else None, rules.version,
                int(r["spend_cents"]), _detail(r, rules.version),
            ))  # fmt: skip
    created = write_awards(conn, awards=awards, by=by, now=now) if awards else []
    out.awarded, out.points = len(created), sum(lot.points for lot in created)
    out.already += len(awards) - len(created)
    return out


def award_orders(
    state: StateStore, orders: pa.Table | ir.Table, rules: LoyaltyRules, *, now: datetime | None = None,
    by: str = "system",
) -> AwardResult:  # fmt: skip
    """Award points for ``orders`` (columns: ``rules.ORDER_COLUMNS``) under ``rules``, idempotently.

    Returns what was awarded, what had already been, and what refunds reversed. Orders paid after ``now`` are
    left for a later run."""
    now_ = when(now, utcnow(), "now")
    computed = points_of_orders(state, orders, rules)
    result = AwardResult()
    rows = [r for r in computed.to_pylist() if utc(r["paid_at"]) <= now_]
    for start in range(0, len(rows), CHUNK):
        work = partial(_award_chunk, rows=rows[start : start + CHUNK], rules=rules, now=now_, by=by)
        result.add(transaction(state, work))
    return result
