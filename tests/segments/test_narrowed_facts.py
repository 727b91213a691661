"""Behaviour conditions read only the order lines near their window (and, for orders, compare versions only where
they can matter): on facts full of edge cases they give the same members as the portrait's own order lines and
orders computed over all the facts.

The facts: orders around the edges of the windows (lines created seconds apart across a midnight), re-exports
that refund, move the created time by hours, change the promotion, the store or the category, duplicated rows in
one batch, refunds made after the moment, cancelled lines without a paid amount, orders after the moment."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnicrm.portrait.inputs import PortraitInputs
from omnicrm.segments.compile import compile_segment
from omnicrm.store.engine import Engine
from omnicrm.store.facts import ORDER_LINE, FactsStore

NOW = dt.datetime(2026, 11, 25, 6, tzinfo=dt.UTC)
CHINA = dt.timezone(dt.timedelta(hours=8))
CUSTOMERS = 30
CATEGORIES = ["连衣裙", "外套", "衬衫"]
# the edges of the windows the rules below use: China midnights
EDGES = [
    dt.datetime(2026, 11, 11, tzinfo=CHINA),
    dt.datetime(2026, 11, 1, tzinfo=CHINA),
    dt.datetime(2026, 10, 27, tzinfo=CHINA),  # the first day of the last 30
    dt.datetime(2026, 8, 28, tzinfo=CHINA),  # of the last 90
    dt.datetime(2025, 11, 26, tzinfo=CHINA),  # of the last 365
    dt.datetime(2026, 6, 19, tzinfo=CHINA),  # the day after 2026-06-18 (until)
    dt.datetime(2026, 11, 26, tzinfo=CHINA),  # tomorrow
]


def _line(order: dict[str, Any], line_no: int, rng: np.random.Generator, batch: int, source_line: int) -> dict:
    created = order["created"] + dt.timedelta(seconds=line_no)
    paid = None if rng.random() < 0.05 else Decimal(int(rng.choice([99, 259, 459])))
    refunded = Decimal(int(rng.choice([0, 0, 0, 50]))) if paid else None
    pos = order["source"] == "pos"
    return {
        "order_id": order["order_id"],
        "line_no": line_no,
        "phone": f"1380000{order['customer']:04d}",
        "store_code": "S001" if pos else None,
        "category": CATEGORIES[int(rng.integers(0, len(CATEGORIES)))],
        "brand": "言木",
        "quantity": 1,
        "paid_amount": paid,
        "refunded_amount": refunded,
        "currency": "CNY",
        "status": "completed",
        "promotion": order["promotion"],
        "created_at": created,
        "refunded_at": created + dt.timedelta(days=7) if refunded else None,
        "source": order["source"],
        "source_key": f"{order['order_id']}/{line_no}",
        "ingest_id": f"batch-{batch}",
        "ingested_at": NOW - dt.timedelta(hours=10 - batch),
        "source_file": "orders.csv",
        "source_line": source_line,
    }


def _reexport(row: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A later export of the same line: refunded now, and sometimes other fields changed."""
    out = dict(row, ingest_id="batch-2", ingested_at=NOW - dt.timedelta(hours=1), status="refunded")
    out["refunded_amount"] = out["paid_amount"]
    out["refunded_at"] = row["created_at"] + dt.timedelta(days=int(rng.integers(1, 20)))
    change = rng.random()
    if change < 0.2:
        out["created_at"] = row["created_at"] + dt.timedelta(hours=float(rng.uniform(-6, 6)))
    elif change < 0.4:
        out["promotion"] = None if row["promotion"] else "双11"
    elif change < 0.5:
        out["store_code"] = None if row["store_code"] else "S002"
    elif change < 0.7:
        out["category"] = CATEGORIES[(CATEGORIES.index(row["category"]) + 1) % len(CATEGORIES)]
    return out


def merchant(root: Path, seed: int = 11) -> tuple[FactsStore, pa.Table]:
    rng = np.random.default_rng(seed)
    orders = []
    for i in range(360):
        if i % 3 == 0:  # at an edge, give or take a few seconds
            created = EDGES[int(rng.integers(0, len(EDGES)))] + dt.timedelta(seconds=float(rng.integers(-4, 3)))
        else:
            created = NOW - dt.timedelta(hours=float(rng.uniform(-30, 24 * 420)))
        source = str(rng.choice(["tmall", "jd", "pos"]))
        orders.append(
            {
                "order_id": f"{source[0]}{i:05d}",
                "customer": int(rng.integers(1, CUSTOMERS - 3)),  # the last ones never ordered
                "source": source,
                "created": created.astimezone(dt.UTC),
                "promotion": [None, None, "双11", "双12", "618"][int(rng.integers(0, 5))],
            }
        )
    batch1, batch2 = [], []
    for order in orders:
        for line_no in range(1, int(rng.integers(1, 4)) + 1):
            row = _line(order, line_no, rng, 1, len(batch1) + 2)
            batch1.append(row)
            if rng.random() < 0.05:  # the same line twice in one export: the later row wins
                batch1.append(dict(row, refunded_amount=row["paid_amount"], source_line=len(batch1) + 2))
            if rng.random() < 0.25:
                batch2.append(_reexport(row, rng))
    facts = FactsStore(root / "facts")
    for batch, rows in (("1", batch1), ("2", batch2)):
        table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in ORDER_LINE} for r in rows], schema=ORDER_LINE)
        days = pa.compute.strftime(table["created_at"], format="%Y-%m-%d")
        for day in sorted(set(days.to_pylist())):
            folder = root / "facts" / "order_line" / f"date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table.filter(pa.compute.equal(days, day)), folder / f"batch-{batch}.parquet")
    records = pa.table(
        {
            "record_key": [f"o:{o['source']}:{o['order_id']}" for o in orders],
            "customer_id": pa.array([o["customer"] for o in orders], pa.int64()),
        }
    )
    return facts, records


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[FactsStore, pa.Table]:
    return merchant(tmp_path_factory.mktemp("narrowed"))


def members(shop: tuple[FactsStore, pa.Table], rule: Any, *, whole: bool) -> set[int]:
    facts, records = shop
    engine = Engine(facts)
    tags = engine.table_from_arrow(pa.table({"customer_id": pa.array(range(1, CUSTOMERS + 1), pa.int64())}), "tags")
    inputs = PortraitInputs(engine, engine.table_from_arrow(records, "records"), NOW)
    if whole:  # the portrait's order lines and orders over all the facts, computed first
        inputs = inputs.materialised(tables=("order_lines", "events", "orders"))
    query = compile_segment(rule, tags, {}, inputs, NOW)
    return set(engine.to_arrow(query.members)["customer_id"].to_pylist())


WHERE = {
    "order": st.fixed_dictionaries(
        {},
        optional={
            "channel": st.sampled_from(["store", "marketplace"]),
            "promotion": st.sampled_from(["double11", "double12", "618"]),
            "source": st.sampled_from(["tmall", "pos"]),
        },
    ),
    "purchase": st.fixed_dictionaries(
        {},
        optional={
            "category": st.sampled_from(CATEGORIES),
            "channel": st.sampled_from(["store", "marketplace"]),
            "promotion": st.sampled_from(["double11", "618"]),
        },
    ),
    "refund": st.fixed_dictionaries(
        {}, optional={"category": st.sampled_from(CATEGORIES), "channel": st.sampled_from(["store"])}
    ),
}


def _behaviour(did: str, where: dict[str, str], window: dict[str, Any], op: str, n: int) -> dict[str, Any]:
    node: dict[str, Any] = {"did": did, "count": {"op": op, "value": n}, **window}
    if where:
        node["where"] = where
    return node


windows = st.sampled_from(
    [
        {},
        {"within_days": 1},
        {"within_days": 30},
        {"within_days": 90},
        {"within_days": 365},
        {"since": "2026-11-11"},
        {"since": "2026-11-01"},
        {"until": "2026-06-18"},
        {"since": "2025-11-26", "until": "2026-11-10"},
        {"within_days": 30, "until": "2026-11-10"},
    ]
)
leaf = st.sampled_from(sorted(WHERE)).flatmap(
    lambda did: st.builds(
        _behaviour, st.just(did), WHERE[did], windows, st.sampled_from([">=", "=", "<="]), st.integers(0, 2)
    )
)
rules = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=2, max_size=2)),
        st.builds(lambda x: {"not": x}, inner),
    ),
    max_leaves=2,
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(rules)
def test_near_lines_give_the_members_of_all_the_facts(shop: tuple[FactsStore, pa.Table], rule: Any) -> None:
    assert members(shop, rule, whole=False) == members(shop, rule, whole=True)


@pytest.mark.parametrize(
    "rule",
    [
        {"did": "order", "since": "2026-11-11", "count": {"op": "=", "value": 0}},
        {"did": "order", "within_days": 30, "where": {"channel": "store"}, "count": {"op": ">=", "value": 1}},
        {"did": "purchase", "within_days": 90, "where": {"category": "连衣裙"}, "count": {"op": ">=", "value": 1}},
        {
            "did": "purchase",
            "since": "2026-11-01",
            "where": {"promotion": "double11"},
            "count": {"op": ">=", "value": 1},
        },
        {"did": "refund", "within_days": 30, "count": {"op": ">=", "value": 1}},
        # an order's first line in the window, its refunded line just after it
        {"did": "refund", "within_days": 30, "until": "2026-11-10", "count": {"op": "=", "value": 2}},
    ],
)
def test_typical_rules_are_not_trivial(shop: tuple[FactsStore, pa.Table], rule: Any) -> None:
    got = members(shop, rule, whole=False)
    assert got == members(shop, rule, whole=True)
    assert 0 < len(got) < CUSTOMERS - 3


def test_the_edges_are_in_the_facts(shop: tuple[FactsStore, pa.Table]) -> None:
    """Orders whose lines straddle a window's edge, and re-exports, are there to be got wrong."""
    facts, _ = shop
    con = ibis.duckdb.connect()
    lines = con.read_parquet([str(p) for p in facts.files("order_line")])
    first = dt.datetime(2026, 11, 11, tzinfo=CHINA).astimezone(dt.UTC)
    per = lines.group_by(["source", "order_id"]).aggregate(lo=lines.created_at.min(), hi=lines.created_at.max())
    across = per.filter((per.lo < first) & (per.hi >= first)).count().to_pyarrow().as_py()
    versions = lines.group_by(["source", "order_id", "line_no"]).aggregate(n=lines.count())
    assert across > 0 and versions.filter(versions.n > 1).count().to_pyarrow().as_py() > 20
