"""Refunds: a refunded order gives back the points it earned, even those already spent.

The reversal takes, in this order: what is left of the order's own lot (pending or active), then the member's
other spendable lots (soonest-expiring first), and what no lot can cover is the shortfall. The rules decide the
shortfall (``refund_shortfall``), and the entry reports it either way:

- ``forgive`` (the default): the balance never goes negative; the entry takes what it could and records the rest
  as ``written_off`` (the liability report sums it).
- ``negative``: the entry takes the whole amount and the balance goes negative by the shortfall, a debt that the
  next points to become active repay (``draws.settle``).

A partial refund reverses in proportion to the money refunded; points that already expired from the order's lot
are not taken back (the member never kept them). Reversals are computed from the money the ledger has already
reversed, so telling the same refund twice takes nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from omnicrm.errors import InputError, NotFound, Problem
from omnicrm.loyalty.draws import Entry, close_lots, open_lots, take, write_entry
from omnicrm.loyalty.ledger import Shortfall
from omnicrm.loyalty.locks import bump, lock_members, transaction, when
from omnicrm.store.schema import point_draws, point_entries, point_lots
from omnicrm.store.state import StateStore, utcnow

__all__ = ["OrderLot", "order_lot", "refund_order", "reverse_to"]

L, E, D = point_lots, point_entries, point_draws


@dataclass(frozen=True)
class OrderLot:
    """What the ledger holds about one order's points: its lot and how much of it can still be reversed."""

    lot_id: int
    customer_id: int
    points: int
    status: str
    spend_cents: int  # the order's net paid when it earned
    spend_left: int  # that, less the refunds already reversed
    reversed: int  # points reversed so far (taken plus written off)
    expired: int  # points of the lot that expired
    reversible: int  # points - expired - reversed


def order_lot(conn: Connection, source: str, order_id: str) -> OrderLot | None:
    lot = conn.execute(select(L).where(L.c.source == source, L.c.order_id == order_id)).first()
    if lot is None:
        return None
    rev = conn.execute(
        select(
            func.coalesce(func.sum(E.c.written_off - E.c.points), 0),
            func.coalesce(func.sum(E.c.spend_cents), 0),
        ).where(E.c.lot_id == lot.id, E.c.kind == "reverse")
    ).one()
    expired = conn.execute(
        select(func.coalesce(func.sum(D.c.points), 0))
        .select_from(D.join(E, E.c.id == D.c.entry_id))
        .where(D.c.lot_id == lot.id, E.c.kind == "expire")
    ).scalar_one()
    reversed_, expired_ = int(rev[0]), int(expired)
    return OrderLot(
        int(lot.id), int(lot.customer_id), int(lot.points), lot.status, int(lot.spend_cents),
        int(lot.spend_cents) + int(rev[1]), reversed_, expired_, int(lot.points) - expired_ - reversed_,
    )  # fmt: skip


def reverse_to(
    conn: Connection, lot: OrderLot, net_cents: int | None, *, at: datetime, now: datetime, by: str,
    reference: str | None, reason: str | None, policy: Shortfall,
) -> Entry | None:  # fmt: skip
    """Reverse ``lot`` so that it keeps only the points of an order now worth ``net_cents`` (None: nothing, the
    whole order was refunded); the member is locked. None when nothing more is to be reversed (the refund was
    already taken into account)."""
    if net_cents is None or net_cents <= 0 or lot.spend_cents <= 0:
        refund, should = lot.spend_left, lot.points
    else:  # the points of the money refunded so far; earlier refunds of the order already reversed their share
        refund = lot.spend_left - net_cents
        should = lot.points * (lot.spend_cents - net_cents) // lot.spend_cents
    target = min(max(should - lot.reversed, 0), lot.reversible)
    if target <= 0:
        return None
    lots = open_lots(conn, lot.customer_id)
    own = [(x, min(x.remaining, target)) for x in lots if x.id == lot.lot_id and x.remaining > 0]
    others = take([x for x in lots if x.id != lot.lot_id], target - sum(n for _, n in own), at)
    draws = [d for d in own + others if d[1] > 0]
    taken = sum(n for _, n in draws)
    short = target - taken
    entry = write_entry(
        conn, lot.customer_id, "reverse", -(target if policy == "negative" else taken), draws, at=at, now=now,
        by=by, lot_id=lot.lot_id, reference=reference, reason=reason,
        written_off=short if policy == "forgive" else 0, spend_cents=-refund,
    )  # fmt: skip
    own_left = next((x.remaining for x in lots if x.id == lot.lot_id), 0) - sum(n for _, n in own)
    if target == lot.reversible and own_left == 0 and lot.status in ("pending", "active"):
        close_lots(conn, [lot.lot_id], "reversed", at)
    bump(conn, [lot.customer_id], now)
    return entry


def refund_order(
    state: StateStore, source: str, order_id: str, *, refunded_cents: int | None = None, by: str,
    reason: str | None = None, at: datetime | None = None, policy: Shortfall = "forgive",
) -> Entry | None:  # fmt: skip
    """Take back the points order ``source``/``order_id`` earned, for a refund of ``refunded_cents`` more of its
    money (None: the whole order). Returns the reversal entry (``written_off`` is the shortfall forgiven), or
    None when the order has nothing left to reverse."""
    if refunded_cents is not None and (isinstance(refunded_cents, bool) or refunded_cents <= 0):
        raise InputError(
            f"order {source}:{order_id}: a refund is an amount of money above zero",
            [Problem(f"got {refunded_cents!r}", "refunded_cents")],
        )
    now = utcnow()
    at_ = when(at, now)

    def work(conn: Connection) -> Entry | None:
        found = order_lot(conn, source, order_id)
        if found is None:
            raise NotFound(
                f"order {source}:{order_id} earned no points", [Problem("no lot has this order", "order_id")]
            )
        lock_members(conn, [found.customer_id], now)
        found = order_lot(conn, source, order_id)  # again, now that nobody else can change it
        assert found is not None
        net = None if refunded_cents is None else found.spend_left - refunded_cents
        return reverse_to(conn, found, net, at=at_, now=now, by=by, reference=order_id, reason=reason, policy=policy)

    return transaction(state, work)
