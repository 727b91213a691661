"""Compute the tags of every customer: bases → measures (ratios, ranks) → one projection of all tags.

The bases are materialised once each in the engine; the model scores (CLV) and text interests are
computed in Python over per-customer arrays (vectorised) and joined back as tables. The result is a
wide Arrow table (customer_id + one column per tag) and the wide basis table that explains it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa

from omnicrm.errors import InputError, Problem
from omnicrm.portrait import bases
from omnicrm.portrait.inputs import PortraitInputs
from omnicrm.portrait.tags.model import Params, TagDefinition, cast_value

__all__ = ["PortraitResult", "compute_tags", "lifecycle_thresholds", "measures", "rank_scores"]

_MIN_GAPS = 30
_DEFAULT_LIFECYCLE = (90, 180, 365)
LIFECYCLE_QUANTILES = (0.75, 0.90, 0.98)
Say = Callable[[str], None]


@dataclass
class PortraitResult:
    tags: pa.Table
    basis: pa.Table
    params: Params
    stats: dict[str, Any] = field(default_factory=dict)


def lifecycle_thresholds(gaps: pa.Table) -> tuple[tuple[int, int, int], str]:
    """Active/cooling/dormant limits in days: quantiles of the merchant's gaps between purchase days."""
    days = np.asarray(gaps["gap_days"].to_numpy(zero_copy_only=False), dtype=np.float64)
    counts = np.asarray(gaps["n"].to_numpy(zero_copy_only=False), dtype=np.float64)
    total = counts.sum()
    if total < _MIN_GAPS:
        return _DEFAULT_LIFECYCLE, f"defaults: only {int(total)} repeat purchases (need {_MIN_GAPS})"
    order = np.argsort(days, kind="stable")
    days, cum = days[order], np.cumsum(counts[order]) / total
    found = [int(days[np.searchsorted(cum, q)]) for q in LIFECYCLE_QUANTILES]
    a = max(found[0], 7)
    b = max(found[1], a + 1)
    c = max(found[2], b + 1)
    share = "/".join(f"{q:.0%}" for q in LIFECYCLE_QUANTILES)
    return (a, b, c), f"{share} of {int(total):,} gaps between repeat purchases fall within {a}/{b}/{c} days"


def _ratio(num: ir.NumericValue, den: ir.NumericValue) -> ir.FloatingValue:
    den = den.cast("float64")
    return ibis.cases((den > 0, num.cast("float64") / den), else_=ibis.null("float64"))


def _days_between(later: dt.date, earlier: ir.DateValue) -> ir.IntegerValue:
    return ibis.date(later.isoformat()).delta(earlier, unit="day")


def measures(b: ir.Table, as_of: dt.datetime, scores: ir.Table | None = None) -> ir.Table:
    """Per-customer quantities several tags share: recency, tenure, ratios, ages and RFM ranks (``scores``, when
    the customers in ``b`` are to be ranked among others: see ``rank_scores``)."""
    today = as_of.date()
    age = ibis.literal(today.year) - b.birthday.year()
    before_birthday = (b.birthday.month() > today.month) | (
        (b.birthday.month() == today.month) & (b.birthday.day() > today.day)
    )
    span = bases.days_since(as_of, b.first_purchase_at) - bases.days_since(as_of, b.last_purchase_at)
    b = b.mutate(
        recency_days=_recency(b, as_of),
        tenure_days=bases.days_since(as_of, b.first_purchase_at).cast("float64"),
        age_years=(age - before_birthday.cast("int64")).cast("float64"),
        member_tenure_days=_days_between(today, b.member_joined_at.substr(0, 10).cast("date")).cast("float64"),
        purchase_interval_days=ibis.cases(
            (b.purchase_days >= 2, span.cast("float64") / (b.purchase_days - 1)), else_=ibis.null("float64")
        ),
        avg_order_value=_ratio(b.spend, b.purchases),
        avg_unit_price=_unit_price(b),
        discount_rate=_ratio(b.discount_total, b.spend.cast("float64") + b.discount_total.cast("float64")),
        promo_share=_ratio(b.promo_purchases, b.purchases),
        return_rate=_ratio(b.refunded_orders, b.orders),
        channels_bought=sum((ibis.coalesce(b[f"purchases_{c}"], 0) > 0).cast("int64") for c in bases.CHANNELS),
    )
    return b.join(_scores(b) if scores is None else scores, "customer_id")


def _recency(b: ir.Table, as_of: dt.datetime) -> ir.FloatingValue:
    return bases.days_since(as_of, b.last_purchase_at).cast("float64")


def _unit_price(b: ir.Table) -> ir.FloatingValue:
    return _ratio(b.item_spend, b.items)


def rank_scores(inputs: PortraitInputs) -> ir.Table:
    """The RFM scores and price rank of every customer, from everyone's purchases and prices alone."""
    b = _join_all(inputs.customers(), [bases.buyers(inputs), bases.prices(inputs)])
    b = b.mutate(spend=b.spend.fill_null(0), purchases=b.purchases.fill_null(0), items=b.items.fill_null(0))
    return _scores(b.mutate(recency_days=_recency(b, inputs.as_of), avg_unit_price=_unit_price(b)))


def _scores(b: ir.Table) -> ir.Table:
    """RFM scores (percent ranks among buyers, in fifths) and the price rank, per customer.

    Ranked on a narrow table: a window over every basis column would carry all of them through the sort."""
    b = b.select("customer_id", "purchases", "recency_days", "spend", "avg_unit_price")
    buyer = b.purchases > 0

    def score(order_by: ir.Value) -> ir.Value:
        rank = ibis.percent_rank().over(group_by=buyer, order_by=order_by)
        return ibis.cases((buyer, ibis.least((rank * 5).floor() + 1, 5)), else_=0).cast("float64")

    priced = b.avg_unit_price.notnull()
    return b.select(
        "customer_id",
        r_score=score(b.recency_days.desc()),
        f_score=score(b.purchases),
        m_score=score(b.spend),
        price_rank=ibis.cases(
            (priced, ibis.percent_rank().over(group_by=priced, order_by=b.avg_unit_price)), else_=ibis.null("float64")
        ),
    )


def _join_all(customers: ir.Table, parts: Sequence[ir.Table]) -> ir.Table:
    out = customers
    for part in parts:
        out = out.left_join(part, "customer_id").drop("customer_id_right")
    return out


def _fill_counts(b: ir.Table) -> ir.Table:
    """Customers absent from a basis had none of what it counts: zero, not unknown."""
    counts = [
        c
        for c, t in b.schema().items()
        if (t.is_integer() and c != "customer_id") or c in ("spend", "spend_365d", "discount_total")
    ]
    return b.mutate(**{c: b[c].fill_null(0) for c in counts})


def compute_tags(
    inputs: PortraitInputs,
    definitions: Sequence[TagDefinition],
    *,
    extra_bases: Sequence[pa.Table] = (),
    identifiers: ir.Table | None = None,
    only: ir.Table | None = None,
    say: Say = lambda _msg: None,
) -> PortraitResult:
    """Every customer's value of every definition (built-ins; rule tags are evaluated after, over these).

    ``only`` (a table of customer ids): the tags of these customers alone, as they are among everyone (RFM scores,
    price band and lifecycle thresholds still rank them against every customer): a cohort's portrait reads only
    its members' facts, and everyone's purchases and prices.
    """
    engine = inputs.engine
    stats: dict[str, Any] = {}
    say("lifecycle thresholds from the merchant's own purchase rhythm…")
    thresholds, basis_note = lifecycle_thresholds(engine.to_arrow(bases.purchase_gaps(inputs)))
    params = Params(as_of=inputs.as_of, lifecycle_days=thresholds, lifecycle_basis=basis_note)
    stats["lifecycle_days"] = {"active": thresholds[0], "cooling": thresholds[1], "dormant": thresholds[2]}
    stats["lifecycle_basis"] = basis_note
    own = inputs if only is None else inputs.only(only)
    # (name, inputs, basis); referrals count referees among everyone
    builders: list[tuple[str, PortraitInputs, Callable[[PortraitInputs], ir.Table]]] = [
        ("purchases", own, bases.purchases),
        ("prices", own, bases.prices),
        ("preferences", own, bases.preferences),
        ("attributes", own, bases.attributes),
        ("needs", own, bases.needs),
        ("service", own, bases.service),
    ]
    if identifiers is not None:
        builders.append(("referrals", inputs, lambda i: bases.referrals(i, identifiers)))
    parts: list[ir.Table] = []
    for name, source, build in builders:
        say(f"basis: {name}…")
        parts.append(source.computed(f"basis_{name}", partial(build, source)))
    for i, extra in enumerate(extra_bases):
        parts.append(engine.table_from_arrow(extra, f"basis_extra_{i}"))
    scores = None if only is None else engine.materialise(rank_scores(inputs), "rank_scores")
    joined = measures(_fill_counts(_join_all(own.customers(), parts)), inputs.as_of, scores)
    joined = engine.materialise(joined, "basis")
    _check_definitions(definitions, joined)
    say(f"computing {len(definitions)} tags…")
    wide = joined.select("customer_id", **_expressions(definitions, joined, params)).order_by("customer_id")
    tags = engine.to_arrow(wide)
    basis = engine.to_arrow(joined.order_by("customer_id"))
    stats["customers"] = tags.num_rows
    return PortraitResult(tags=tags, basis=basis, params=params, stats=stats)


def _expressions(definitions: Sequence[TagDefinition], b: ir.Table, params: Params) -> dict[str, ir.Value]:
    """Each definition's value expression, cast to its type; a definition that does not compile is named."""
    out: dict[str, ir.Value] = {}
    problems: list[Problem] = []
    for d in definitions:
        if d.expr is None:
            continue
        try:
            out[d.id] = cast_value(d.expr(b, params), d.value_type)
        except Exception as exc:  # an Ibis error of any kind: the definition is wrong, not the data
            problems.append(Problem(f"tag '{d.id}' does not compile: {type(exc).__name__}: {exc}", field=d.id))
    if problems:
        raise InputError("tag definitions refused", problems)
    return out


def _check_definitions(definitions: Sequence[TagDefinition], basis: ir.Table) -> None:
    """Refuse definitions whose inputs are not basis columns or whose expression does not compile."""
    problems: list[Problem] = []
    columns = set(basis.columns)
    seen: set[str] = set()
    for d in definitions:
        if d.id in seen:
            problems.append(Problem(f"tag '{d.id}' is defined twice", field=d.id))
        seen.add(d.id)
        missing = [c for c in d.inputs if c not in columns]
        if missing:
            problems.append(Problem(f"tag '{d.id}' names unknown input field(s): {', '.join(missing)}", field=d.id))
    if problems:
        raise InputError("tag definitions refused", problems)
