"""Every customer's cross-channel timeline: orders, events, service messages and profile records, one row each.

A derived snapshot (area ``timeline``) recomputed from facts by ``omnicrm refresh`` after OneID. It is
written sorted by customer and time in small row groups, so that the customer 360 reads one customer's
rows from one or two row groups (Parquet min/max statistics) instead of scanning every fact: the page
stays fast on a merchant with a million customers.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import ibis
import ibis.expr.types as ir
import pyarrow as pa

from omnicrm.errors import NotFound
from omnicrm.portrait.inputs import PortraitInputs, json_text, order_channel
from omnicrm.store.derived import CUSTOMER_ROW_GROUP, DerivedStore
from omnicrm.store.engine import Engine

__all__ = ["AREA", "SCHEMA", "TimelineRefresh", "refresh_timeline"]

AREA = "timeline"
_MONEY = "decimal(18, 2)"
_DETAIL = 280  # characters of a message or event detail kept for the page

SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.int64()),
        pa.field("occurred_at", pa.timestamp("us", tz="UTC")),
        pa.field("kind", pa.string()),  # order, event, message, profile
        pa.field("channel", pa.string()),  # marketplace, store, web, wechat, or the message channel
        pa.field("source", pa.string()),
        pa.field("title", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("amount", pa.decimal128(18, 2)),
        pa.field("refunded", pa.decimal128(18, 2)),
        pa.field("ref", pa.string()),  # order id, message id or source key
        pa.field("status", pa.string()),
    ]
)

Say = Callable[[str], None]


@dataclass(frozen=True)
class TimelineRefresh:
    snapshot: Path
    rows: int
    customers: int
    seconds: float


def _join(*parts: ir.StringValue) -> ir.StringValue:
    """Non-empty parts joined with " · " (nulls and blanks left out)."""
    cleaned = [ibis.cases((p.isnull() | (p == ""), ibis.null("string")), else_=p) for p in parts]
    return ibis.literal(" · ").join(cleaned) if len(cleaned) > 1 else cleaned[0]


def _shape(
    t: ir.Table,
    *,
    at: ir.TimestampValue,
    kind: str,
    channel: ir.StringValue,
    title: ir.StringValue,
    detail: ir.StringValue,
    ref: ir.StringValue,
    amount: ir.Value | None = None,
    refunded: ir.Value | None = None,
    status: ir.StringValue | None = None,
) -> ir.Table:
    none_money = ibis.null(_MONEY)
    return t.select(
        customer_id=t.customer_id.cast("int64"),
        occurred_at=at,
        kind=ibis.literal(kind),
        channel=channel,
        source=t.source,
        title=title,
        detail=detail.substr(0, _DETAIL),
        amount=(amount if amount is not None else none_money).cast(_MONEY),
        refunded=(refunded if refunded is not None else none_money).cast(_MONEY),
        ref=ref,
        status=status if status is not None else ibis.null("string"),
    )


def timeline_expr(inputs: PortraitInputs) -> ir.Table:
    """All four kinds of facts of every customer as timeline rows, newest first within a customer."""
    lines = inputs.order_lines()
    orders = _shape(
        lines,
        at=lines.created_at,
        kind="order",
        channel=lines.channel,
        title=lines.product_name.fill_null(lines.sku.fill_null("")),
        detail=_join(lines.category, lines.brand, lines.size, lines.colour, lines.promotion, lines.store_code),
        ref=lines.order_id,
        amount=lines.paid_amount,
        refunded=lines.refunded_amount,
        status=lines.status,
    )
    ev = inputs.events()
    props = ev.properties.fill_null("")
    events = _shape(
        ev,
        at=ev.timestamp,
        kind="event",
        channel=order_channel("event", ev),
        title=ev.event.fill_null(ev.name).fill_null(ev.type),
        detail=_join(
            json_text(props, "query"),
            json_text(props, "name"),
            json_text(props, "category"),
            json_text(props, "order_id"),
            json_text(props, "url"),
        ),
        ref=ev.message_id,
    )
    msg = inputs.messages()
    messages = _shape(
        msg,
        at=msg.sent_at,
        kind="message",
        channel=msg.channel,
        title=msg.direction,
        detail=msg.text.fill_null(""),
        ref=msg.message_id,
    )
    ppl = inputs.people()
    people = _shape(
        ppl,
        at=ppl.observed_at,
        kind="profile",
        channel=ibis.literal("profile"),
        title=ppl.source,
        detail=_join(ppl.name, ppl.gender, ppl.province, ppl.city),
        ref=ppl.source_key.fill_null(ppl.ingest_id),
    )
    rows = ibis.union(orders, events, messages, people)
    return rows.order_by([rows.customer_id, rows.occurred_at.desc(), rows.kind, rows.ref, rows.title, rows.detail])


def refresh_timeline(engine: Engine, derived: DerivedStore, *, say: Say = lambda _msg: None) -> TimelineRefresh:
    """Write every customer's timeline from the facts, as of now, and publish it."""
    started = time.perf_counter()
    identity = derived.current("identity")
    if identity is None:
        raise NotFound("no identity snapshot yet: run `omnicrm refresh` so OneID runs before the timeline")
    inputs = PortraitInputs.from_snapshot(engine, identity)
    snapshot = derived.new_snapshot(AREA)
    say("timeline: orders, events, messages and profiles per customer…")
    path = snapshot / "timeline.parquet"
    engine.write_parquet(timeline_expr(inputs), path, row_group_size=CUSTOMER_ROW_GROUP, schema=SCHEMA)
    counted = duckdb.connect().execute(f"SELECT count(*), count(DISTINCT customer_id) FROM read_parquet('{path}')")
    rows, customers = counted.fetchall()[0]
    seconds = round(time.perf_counter() - started, 3)
    stats = {
        "rows": rows,
        "customers": customers,
        "identity_snapshot": identity.name,
        "computed_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "seconds": seconds,
    }
    (snapshot / "stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    derived.publish(AREA, snapshot)
    return TimelineRefresh(snapshot, rows, customers, seconds)
