"""Orders from order lines and shop events, and the orders of an earlier moment read from today's.

An order's row as of a past moment is today's row when nothing about it changed since then: every version of its
lines was created, and every refund made, by that moment (``settled_at``). Only the orders that changed later are
computed again, from their lines as of that moment; the propensity model reads the orders of several past moments
this way instead of grouping every order line again for each.
"""

from __future__ import annotations

from collections.abc import Callable

import ibis
import ibis.expr.types as ir

from omnicrm.portrait.columns import json_number, json_text, order_channel, promotion_kind

__all__ = ["MONEY", "ORDER_KEY", "TIMES", "orders_of", "orders_then", "shop_events"]

MONEY = "decimal(18, 2)"
ORDER_KEY = ["customer_id", "source", "order_id"]
TIMES = ("first_seen", "settled_at")  # when an order's first version appeared, and when its last change happened


def shop_events(events: ir.Table) -> ir.Table:
    """Orders placed through the merchant's own shop: Segment ``Order Completed`` / ``Order Refunded`` events."""
    shop = events.filter(events.event.isin(["Order Completed", "Order Refunded"])).mutate(
        order_id=json_text(events.properties, "order_id"),
        revenue=json_number(events.properties, "revenue").fill_null(json_number(events.properties, "total")),
        disc=json_number(events.properties, "discount"),
    )
    return shop.filter(shop.order_id.notnull())


def orders_of(lines: ir.Table, shop: ir.Table, earlier: ir.Table | None = None) -> ir.Table:
    """One row per order: paid, refunded, discount and net (money), quantity, promotion kind, channel.

    ``earlier``: the versions of the lines that later ones replaced; the orders then also carry ``TIMES`` (over
    every version), for ``orders_then``.
    """
    money = {
        "paid": lines.paid_amount.fill_null(0),
        "refunded": lines.refunded_amount.fill_null(0),
        "discount": lines.discount.fill_null(0),
    }
    times = (
        {"last_created": lines.created_at.max(), "last_refund": lines.refunded_at.max()} if earlier is not None else {}
    )
    from_lines = lines.group_by(ORDER_KEY).aggregate(
        created_at=lines.created_at.min(),
        channel=lines.channel.max(),
        promotion_kind=lines.promotion_kind.max(),
        **{name: value.sum().cast(MONEY) for name, value in money.items()},
        quantity=lines.quantity.fill_null(1).sum().cast("int64"),
        **times,
    )
    completed = shop.event == "Order Completed"
    from_events = shop.group_by(ORDER_KEY).aggregate(
        created_at=shop.timestamp.min(),
        channel=order_channel("event", shop).max(),
        paid=shop.revenue.max(where=completed).fill_null(0).cast(MONEY),
        refunded=shop.revenue.max(where=~completed).fill_null(0).cast(MONEY),
        discount=shop.disc.max(where=completed).fill_null(0).cast(MONEY),
        **({"first_seen": shop.timestamp.min(), "settled_at": shop.timestamp.max()} if times else {}),
    )
    from_events = from_events.mutate(
        promotion_kind=promotion_kind(ibis.null("string"), from_events.created_at, ibis.literal(True)),
        quantity=ibis.literal(1, "int64"),
    )
    if earlier is not None:
        old = earlier.group_by(ORDER_KEY).aggregate(
            old_first=earlier.created_at.min(),
            old_created=earlier.created_at.max(),
            old_refund=earlier.refunded_at.max(),
        )
        j = from_lines.left_join(old, ORDER_KEY)
        from_lines = j.select(
            *(j[c] for c in from_lines.columns if c not in times),
            first_seen=ibis.least(j.created_at, j.old_first),
            settled_at=ibis.greatest(j.last_created, j.last_refund, j.old_created, j.old_refund),
        )
    orders = ibis.union(from_lines, from_events.select(from_lines.columns))
    return orders.mutate(net=orders.paid - orders.refunded)


def orders_then(now: ir.Table, cutoff: ir.TimestampScalar, redo: Callable[[ir.Table], ir.Table]) -> ir.Table:
    """The orders as of ``cutoff`` from ``now`` (orders with ``TIMES``, of a later moment): those settled by then
    as they are, those that changed later from ``redo(keys)`` (their orders computed as of ``cutoff``)."""
    changed = now.filter((now.first_seen <= cutoff) & (now.settled_at > cutoff)).select(*ORDER_KEY).distinct()
    settled = now.filter(now.settled_at <= cutoff).anti_join(changed, ORDER_KEY).drop(*TIMES)
    # in the types the engine stored today's orders with (Spark widens a difference of decimals)
    return ibis.union(settled, redo(changed).select(settled.columns).cast(settled.schema()))
