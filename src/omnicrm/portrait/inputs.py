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
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import ibis.expr.types as ir

from omnicrm.errors import NotFound
from omnicrm.identity.extract import record_key
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine

__all__ = ["CHINA", "CHINA_OFFSET_SECONDS", "PortraitInputs", "json_number", "json_text", "local_date"]

# China keeps one time zone and no daylight saving: local dates are UTC + 8 hours.
CHINA = dt.timezone(dt.timedelta(hours=8))
CHINA_OFFSET_SECONDS = 8 * 3600
_MONEY = "decimal(18, 2)"


def json_text(doc: ir.StringValue, path: str) -> ir.StringValue:
    """A string member of a JSON object kept as text, e.g. ``query`` or ``campaign.source`` (null if absent).

    A regular expression rather than a JSON function, so DuckDB and Spark read it alike.
    """
    *parents, name = path.split(".")
    scope = doc
    for parent in parents:
        scope = scope.re_extract(rf'"{parent}"\s*:\s*(\{{[^{{}}]*\}})', 1)
    found = scope.re_extract(rf'"{name}"\s*:\s*"((?:[^"\\]|\\.)*)"', 1)
    return ibis.cases((found == "", ibis.null("string")), else_=found)


def json_number(doc: ir.StringValue, name: str) -> ir.FloatingValue:
    found = doc.re_extract(rf'"{name}"\s*:\s*(-?[0-9]+(?:\.[0-9]+)?)', 1)
    return ibis.cases((found == "", ibis.null("float64")), else_=found.cast("float64"))


def local_date(ts: ir.TimestampValue) -> ir.DateValue:
    """The merchant's calendar day (China time) of a UTC timestamp."""
    return (ts + ibis.interval(seconds=CHINA_OFFSET_SECONDS)).date()


def promotion_kind(promotion: ir.StringValue, created_at: ir.TimestampValue, online: ir.BooleanValue) -> ir.StringValue:
    """double11 / double12 / 618 / other / null: the order's declared promotion, else (online orders only) the
    shopping festival its day falls in (1–11 November, 10–12 December, 1–18 June)."""
    p = promotion.lower()
    day = local_date(created_at)
    month, dom = day.month(), day.day()
    return ibis.cases(
        (p.re_search(r"双11|双十一|11\.11|double ?11"), "double11"),
        (p.re_search(r"双12|双十二|12\.12|double ?12"), "double12"),
        (p.re_search(r"618"), "618"),
        (p.notnull() & (p != ""), "other"),
        (online & (month == 11) & (dom <= 11), "double11"),
        (online & (month == 12) & (dom >= 10) & (dom <= 12), "double12"),
        (online & (month == 6) & (dom <= 18), "618"),
        else_=ibis.null("string"),
    )


def order_channel(kind: str, t: ir.Table) -> ir.StringValue:
    """marketplace / web / wechat / store: where an order (or event) happened."""
    source = t.source.lower()
    if kind == "event":
        return ibis.cases((source.re_search(r"wechat|weixin|mp|miniprogram"), "wechat"), else_="web")
    return ibis.cases(
        (t.store_code.notnull() | source.re_search(r"^(pos|store)"), "store"),
        (source.re_search(r"^(web|shop|site)"), "web"),
        (source.re_search(r"wechat|weixin|miniprogram|^mp"), "wechat"),
        else_="marketplace",
    )


TABLES = ("order_lines", "events", "people", "messages", "orders")


@dataclass
class PortraitInputs:
    """Facts with ``customer_id``, as of a moment; tables are built lazily and shared."""

    engine: Engine
    records: ir.Table
    as_of: dt.datetime
    _cache: dict[str, ir.Table] = field(default_factory=dict, repr=False)

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

    def _with_customer(self, kind: str, time_column: str) -> ir.Table:
        t = self.engine.fact_table(kind)
        t = t.filter(t[time_column] <= self.cutoff).mutate(record_key=record_key(kind, t))
        return t.join(self.records, "record_key").drop("record_key")

    def materialised(
        self,
        as_of: dt.datetime | None = None,
        tables: tuple[str, ...] = ("order_lines", "events", "people", "messages", "orders"),
    ) -> PortraitInputs:
        """The same inputs (as of ``as_of``, default the same moment) with ``tables`` computed once in the engine,
        for work that reads them many times. Order matters: orders read order lines and events."""
        out = PortraitInputs(self.engine, self.records, as_of or self.as_of)
        for name in tables:
            out._cache[name] = self.engine.materialise(getattr(out, name)(), name)
        return out

    def customers(self) -> ir.Table:
        """Every customer OneID knows (one row each), whether or not they ever bought."""
        return self.records.select("customer_id").distinct()

    def order_lines(self) -> ir.Table:
        """The latest version of each order line, with customer_id, channel and promotion kind."""
        if "order_lines" not in self._cache:
            t = self._with_customer("order_line", "created_at")
            latest = ibis.row_number().over(
                group_by=[t.source, t.order_id, t.line_no],
                order_by=[t.ingested_at.desc(), t.ingest_id.desc(), t.source_line.desc()],
            )
            t = t.mutate(version=latest).filter(lambda x: x.version == 0).drop("version")
            # a refund after the as-of moment had not happened yet (an unknown refund time counts)
            later = t.refunded_at.notnull() & (t.refunded_at > self.cutoff)
            t = t.mutate(refunded_amount=ibis.cases((later, ibis.literal(0).cast(t.refunded_amount.type())),
                                                    else_=t.refunded_amount))  # fmt: skip
            t = t.mutate(channel=order_channel("order_line", t))
            self._cache["order_lines"] = t.mutate(
                promotion_kind=promotion_kind(t.promotion, t.created_at, t.channel != "store")
            )
        return self._cache["order_lines"]

    def orders(self) -> ir.Table:
        """One row per order from every channel: paid, refunded and discount (money), promotion kind, channel."""
        if "orders" in self._cache:
            return self._cache["orders"]
        lines = self.order_lines()
        from_lines = lines.group_by(["customer_id", "source", "order_id"]).aggregate(
            created_at=lines.created_at.min(),
            channel=lines.channel.max(),
            promotion_kind=lines.promotion_kind.max(),
            paid=lines.paid_amount.fill_null(0).sum().cast(_MONEY),
            refunded=lines.refunded_amount.fill_null(0).sum().cast(_MONEY),
            discount=lines.discount.fill_null(0).sum().cast(_MONEY),
            quantity=lines.quantity.fill_null(1).sum().cast("int64"),
        )
        ev = self.events()
        shop = ev.filter(ev.event.isin(["Order Completed", "Order Refunded"])).mutate(
            order_id=json_text(ev.properties, "order_id"),
            revenue=json_number(ev.properties, "revenue").fill_null(json_number(ev.properties, "total")),
            disc=json_number(ev.properties, "discount"),
        )
        shop = shop.filter(shop.order_id.notnull())
        completed = shop.event == "Order Completed"
        from_events = shop.group_by(["customer_id", "source", "order_id"]).aggregate(
            created_at=shop.timestamp.min(),
            channel=order_channel("event", shop).max(),
            paid=shop.revenue.max(where=completed).fill_null(0).cast(_MONEY),
            refunded=shop.revenue.max(where=~completed).fill_null(0).cast(_MONEY),
            discount=shop.disc.max(where=completed).fill_null(0).cast(_MONEY),
        )
        from_events = from_events.mutate(
            promotion_kind=promotion_kind(ibis.null("string"), from_events.created_at, ibis.literal(True)),
            quantity=ibis.literal(1, "int64"),
        )
        orders = ibis.union(from_lines, from_events.select(from_lines.columns))
        self._cache["orders"] = orders.mutate(net=orders.paid - orders.refunded)
        return self._cache["orders"]

    def events(self) -> ir.Table:
        if "events" not in self._cache:
            self._cache["events"] = self._with_customer("event", "timestamp")
        return self._cache["events"]

    def people(self) -> ir.Table:
        if "people" not in self._cache:
            self._cache["people"] = self._with_customer("person", "observed_at")
        return self._cache["people"]

    def messages(self) -> ir.Table:
        if "messages" not in self._cache:
            self._cache["messages"] = self._with_customer("message", "sent_at")
        return self._cache["messages"]


def _utc(as_of: dt.datetime | None) -> dt.datetime:
    if as_of is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return as_of.astimezone(dt.UTC)
