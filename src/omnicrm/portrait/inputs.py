"""The facts the portrait reads, each row joined to its customer (OneID) and cut at an as-of time.

Every fact belongs to an identity record (``identity.extract.record_key``); the identity snapshot maps
records to customers. Facts after ``as_of`` are invisible, so a portrait can be computed as it would
have looked on any past day (the propensity model trains on such past portraits).

Order lines are read as their latest version: a marketplace re-export of an order (now refunded, say)
supersedes the earlier row of the same (source, order id, line). Orders placed through the merchant's
own shop arrive as Segment ``Order Completed`` events and join the marketplace and POS orders here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import ibis.expr.types as ir

from omnicrm.errors import NotFound
from omnicrm.identity.extract import record_key
from omnicrm.portrait.columns import (
    CHINA,
    CHINA_OFFSET_SECONDS,
    json_number,
    json_text,
    local_date,
    order_channel,
    promotion_kind,
)
from omnicrm.portrait.orders import ORDER_KEY, TIMES, orders_of, orders_then, shop_events
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import TIME_COLUMN

__all__ = [
    "CHINA",
    "CHINA_OFFSET_SECONDS",
    "PortraitInputs",
    "json_number",
    "json_text",
    "local_date",
    "order_channel",
    "promotion_kind",
]

# The order-line columns the portrait reads: shared (materialised) order lines keep only these.
PORTRAIT_LINE_COLUMNS = (
    "customer_id", "source", "order_id", "created_at", "category", "brand", "size", "colour", "quantity", "discount",
    "paid_amount", "refunded_amount", "refunded_at", "address", "channel", "promotion_kind", "superseded_at",
)  # fmt: skip


@dataclass
class PortraitInputs:
    """Facts with ``customer_id``, as of a moment; tables are built lazily and shared.

    ``shared()`` computes the facts joined to their customers once in the engine (order lines with their versions);
    inputs for an earlier moment taken from them with ``at`` read the same tables, cut by time, and compute nothing
    again: the propensity model's past portraits and today's read one copy of the facts.
    """

    engine: Engine
    records: ir.Table
    as_of: dt.datetime
    _cache: dict[str, ir.Table] = field(default_factory=dict, repr=False)
    _facts: dict[str, ir.Table] = field(default_factory=dict, repr=False)
    _facts_as_of: dt.datetime | None = field(default=None, repr=False)
    _everyone: PortraitInputs | None = field(default=None, repr=False)
    _computed: dict[str, ir.Table] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, engine: Engine, derived: DerivedStore, as_of: dt.datetime | None = None) -> PortraitInputs:
        snapshot = derived.current("identity")
        if snapshot is None:
            raise NotFound("no identity snapshot yet: run `omnicrm refresh` (OneID) before the portrait")
        records = engine.parquet([snapshot / "records.parquet"], "identity_records")
        return cls(engine=engine, records=records, as_of=_utc(as_of))

    @classmethod
    def from_snapshot(cls, engine: Engine, snapshot: Path, as_of: dt.datetime | None = None) -> PortraitInputs:
        return cls(engine, engine.parquet([snapshot / "records.parquet"], "identity_records"), _utc(as_of))

    @property
    def cutoff(self) -> ir.TimestampScalar:
        return ibis.timestamp(self.as_of.isoformat())

    def _facts_at(self, kind: str) -> ir.Table | None:
        """The shared facts of ``kind`` cut at this moment, or None when there are none."""
        if kind not in self._facts:
            return None
        t = self._facts[kind]
        return t if self.as_of == self._facts_as_of else t.filter(t[TIME_COLUMN[kind]] <= self.cutoff)

    def _with_customer(self, kind: str, time_column: str) -> ir.Table:
        shared = self._facts_at(kind)
        if shared is not None:
            return shared
        t = self.engine.fact_table(kind)
        t = t.filter(t[time_column] <= self.cutoff).mutate(record_key=record_key(kind, t))
        return t.join(self.records, "record_key").drop("record_key")

    def shared(self) -> PortraitInputs:
        """These inputs with the facts joined to their customers computed once in the engine: order lines (only
        ``PORTRAIT_LINE_COLUMNS``) with when each version was superseded, events, person records and messages."""
        if self._facts:
            return self
        out = self._with_facts(self.records, self.engine.materialise)
        # today's orders with when each last changed: the orders of an earlier moment are read from them
        lines = out._line_versions()
        current, earlier = lines.filter(lines.current), lines.filter(~lines.current)
        orders = orders_of(current.drop("current"), shop_events(out.events()), earlier=earlier)
        out._facts["orders"] = self.engine.materialise(orders, "orders")
        out._computed["orders"] = out._facts["orders"].drop(*TIMES)
        return out

    def only(self, customers: ir.Table) -> PortraitInputs:
        """These inputs for ``customers`` (a table of customer ids) alone, their facts computed once in the engine:
        the portrait of a few customers reads only theirs. The merchant's ``categories`` are still everyone's."""

        def keep(t: ir.Table, name: str) -> ir.Table:
            return self.engine.materialise(t.semi_join(customers, "customer_id"), name)

        out = self._with_facts(self.records.semi_join(customers, "customer_id"), keep)
        out._everyone = self
        return out

    def _with_facts(self, records: ir.Table, keep: Callable[[ir.Table, str], ir.Table]) -> PortraitInputs:
        out = PortraitInputs(self.engine, records, self.as_of)
        out._facts["customers"] = keep(self.customers(), "customers")
        out._facts["order_line"] = keep(self._versions().select(*PORTRAIT_LINE_COLUMNS), "order_line_versions")
        for kind, time_column in TIME_COLUMN.items():
            if kind != "order_line":
                out._facts[kind] = keep(self._with_customer(kind, time_column), kind)
        out._facts_as_of = self.as_of
        return out

    def at(self, as_of: dt.datetime) -> PortraitInputs:
        """The inputs as of another moment; an earlier one (or the same) reads these inputs' shared facts."""
        as_of = _utc(as_of)
        if as_of == self.as_of:
            return self
        out = PortraitInputs(self.engine, self.records, as_of)
        if self._facts_as_of is not None and as_of <= self._facts_as_of:
            out._facts, out._facts_as_of = self._facts, self._facts_as_of
        if self._everyone is not None:
            out._everyone = self._everyone.at(as_of)
        return out

    def materialised(self, as_of: dt.datetime | None = None, tables: tuple[str, ...] = ("orders",)) -> PortraitInputs:
        """The inputs as of ``as_of`` (default the same moment) over shared facts, with ``tables`` also computed once
        in the engine, for work that reads them many times. Order matters: orders read order lines and events."""
        out = self.shared().at(as_of or self.as_of)
        for name in tables:
            out.computed(name, getattr(out, name))
        return out

    def computed(self, name: str, build: Callable[[], ir.Table]) -> ir.Table:
        """``build()`` computed once in the engine for these inputs and kept under ``name``, for the tables several
        steps read (the orders, the purchases basis)."""
        if name not in self._computed:
            self._computed[name] = self.engine.materialise(build(), name)
        return self._computed[name]

    def _table(self, name: str, build: Callable[[], ir.Table]) -> ir.Table:
        """The computed table ``name`` if there is one, else its expression (built once)."""
        if name in self._computed:
            return self._computed[name]
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    def categories(self) -> ir.Table:
        """The product categories the merchant's order lines name (everyone's, also for inputs from ``only``)."""
        lines = (self._everyone or self).order_lines()
        return lines.select("category").filter(lambda t: t.category.notnull() & (t.category != "")).distinct()

    def customers(self) -> ir.Table:
        """Every customer OneID knows (one row each), whether or not they ever bought."""
        if "customers" in self._facts:
            return self._facts["customers"]
        return self.records.select("customer_id").distinct()

    def _versions(self) -> ir.Table:
        """Every version of every order line (created by the as-of moment), with customer_id, channel, promotion
        kind and ``superseded_at``: the earliest creation time of a later version (null for the latest one).

        A version is the one in force at a moment when it was created by then and no later version was: so the
        lines as of any earlier moment are a filter of this table, without ranking the versions again.
        """
        shared = self._facts_at("order_line")
        if shared is not None:
            return shared

        def read() -> ir.Table:  # each read its own scan: one shared subquery would be kept whole in memory
            t = self.engine.fact_table("order_line")
            return t.filter(t.created_at <= self.cutoff)

        line = ["source", "order_id", "line_no"]
        # nearly every line has one version: only the lines with several are ranked (found once, a small table)
        if "several" not in self._cache:
            t = read()
            several = t.group_by(line).aggregate(versions=t.count()).filter(lambda g: g.versions > 1)
            self._cache["several"] = self.engine.materialise(several.drop("versions"), "order_line_repeats")
        several = self._cache["several"]
        ranked = read().semi_join(several, line)
        newer = ibis.window(
            group_by=[ranked[c] for c in line],
            order_by=[ranked.ingested_at.desc(), ranked.ingest_id.desc(), ranked.source_line.desc()],
            rows=(None, -1),
        )
        ranked = ranked.mutate(superseded_at=ranked.created_at.min().over(newer))
        alone = read().anti_join(several, line)
        alone = alone.mutate(superseded_at=ibis.null(alone.created_at.type()))
        t = ibis.union(alone, ranked)
        t = t.mutate(record_key=record_key("order_line", t)).join(self.records, "record_key").drop("record_key")
        t = t.mutate(channel=order_channel("order_line", t))
        return t.mutate(promotion_kind=promotion_kind(t.promotion, t.created_at, t.channel != "store"))

    def order_lines(self) -> ir.Table:
        """The latest version of each order line, with customer_id, channel and promotion kind."""
        return self._table("order_lines", lambda: self._line_versions().filter(lambda t: t.current).drop("current"))

    def _line_versions(self) -> ir.Table:
        """Every version, with the refund as of the as-of moment and whether it is in force then (``current``)."""
        t = self._versions()
        t = t.mutate(current=t.superseded_at.isnull() | (t.superseded_at > self.cutoff)).drop("superseded_at")
        # a refund after the as-of moment had not happened yet (an unknown refund time counts)
        later = t.refunded_at.notnull() & (t.refunded_at > self.cutoff)
        refunded = ibis.cases((later, ibis.literal(0).cast(t.refunded_amount.type())), else_=t.refunded_amount)
        return t.mutate(refunded_amount=refunded)

    def orders(self) -> ir.Table:
        """One row per order from every channel: paid, refunded and discount (money), promotion kind, channel."""
        return self._table("orders", self._orders)

    def _orders(self) -> ir.Table:
        shop = shop_events(self.events())
        if "orders" not in self._facts:
            return orders_of(self.order_lines(), shop)
        lines = self.order_lines()
        return orders_then(
            self._facts["orders"],
            self.cutoff,
            lambda keys: orders_of(lines.semi_join(keys, ORDER_KEY), shop.semi_join(keys, ORDER_KEY)),
        )

    def events(self) -> ir.Table:
        return self._table("events", lambda: self._with_customer("event", "timestamp"))

    def people(self) -> ir.Table:
        return self._table("people", lambda: self._with_customer("person", "observed_at"))

    def messages(self) -> ir.Table:
        return self._table("messages", lambda: self._with_customer("message", "sent_at"))


def _utc(as_of: dt.datetime | None) -> dt.datetime:
    if as_of is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return as_of.astimezone(dt.UTC)
