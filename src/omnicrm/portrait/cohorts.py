"""Promotion cohorts and the examples the repeat-purchase propensity model learns from.

A cohort is the customers whose first purchase (net paid > 0) fell in one promotion period (found from the
orders: a promotion kind and year). Its features are the portrait as it stood ``lag_days`` after the period's
last day (the *feature cut*: facts after it are invisible); its label is whether the customer bought again in
the ``horizon_days`` after the cut.

No leakage across the split: every training cohort's label window ends on or before the hold-out's feature
cut, and the hold-out's label window ends before the data does. Features see no fact after their cut, with three
caveats that come from the inputs: customers are today's OneID customers (merges found later apply to the past);
an order line's latest version counts, so a refund made after the cut is already netted; and person records are
visible only from when they were imported, so declared attributes (gender, membership, WeChat following) are
empty in past portraits when member lists were imported late (as in the demo).

The past portraits read the facts the current refresh already joined to customers (``PortraitInputs.shared``),
and each is the portrait of the cohort's members alone, ranked among everyone as it was then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc

from omnicrm.errors import InputError
from omnicrm.portrait.bases import PROMOTIONS, buyers, first_purchase
from omnicrm.portrait.inputs import CHINA, PortraitInputs, local_date
from omnicrm.portrait.tags.catalogue import BUILTIN
from omnicrm.portrait.tags.compute import compute_tags
from omnicrm.portrait.value import value_scores

__all__ = [
    "FEATURE_TAGS",
    "Promotion",
    "build_examples",
    "cohort",
    "cohort_examples",
    "feature_portrait",
    "find_promotions",
]

# The portrait tags the model reads. Left out: place and product attributes with many values (city, province,
# brand, sizes, colour), birthday_month (a date, not a behaviour) and text interests (costly; little signal).
FEATURE_TAGS: tuple[str, ...] = (
    # rfm and lifecycle
    "recency_days", "frequency", "monetary", "avg_order_value", "spend_365d", "rfm_segment", "lifecycle_stage",
    "tenure_days", "purchase_interval_days", "repeat_buyer",
    # preferences and promotions
    "preferred_category", "top_categories", "price_band", "avg_unit_price", "discount_rate", "discount_sensitivity",
    "acquired_double11", "acquired_double12", "promotion_only", "promotion_share", "double11_purchases",
    # channels, needs, service, attributes
    "preferred_channel", "first_channel", "channels_used", "cross_channel", "online_offline", "needs_7d",
    "needs_30d", "return_rate", "complaints_90d", "complainer", "arrived_via_referral", "referral_influence",
    "gender", "age_band", "is_member", "member_tenure_days", "wechat_follower", "activity_cities",
    # predicted value (BG/NBD, Gamma-Gamma fitted on the history before the cut)
    "p_alive", "expected_purchases_90d", "expected_spend",
)  # fmt: skip
MIN_PROMOTION_ORDERS = 20
Say = Callable[[str], None]


@dataclass(frozen=True)
class Promotion:
    """One promotion period (kind and year), its first and last day in China time, and its paid orders."""

    kind: str
    year: int
    start: dt.date
    end: dt.date
    orders: int = 0

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.year}"

    def feature_cut(self, lag_days: int) -> dt.datetime:
        """The end of the day ``lag_days`` after the promotion's last day (China time), in UTC."""
        day = self.end + dt.timedelta(days=lag_days + 1)
        return dt.datetime.combine(day, dt.time(), CHINA).astimezone(dt.UTC)

    def label_end(self, lag_days: int, horizon_days: int) -> dt.datetime:
        return self.feature_cut(lag_days) + dt.timedelta(days=horizon_days)

    def windows(self, lag_days: int, horizon_days: int) -> dict[str, str]:
        cut, end = self.feature_cut(lag_days), self.label_end(lag_days, horizon_days)
        return {"feature_cut": cut.isoformat(), "label_end": end.isoformat()}


def find_promotions(inputs: PortraitInputs) -> list[Promotion]:
    """Promotion periods in the orders (kind × year with at least ``MIN_PROMOTION_ORDERS`` purchases), by end."""

    def periods() -> ir.Table:
        o = inputs.orders()
        p = o.filter((o.net > 0) & o.promotion_kind.isin(PROMOTIONS)).mutate(day=local_date(o.created_at))
        g = p.group_by(kind=p.promotion_kind, year=p.day.year()).aggregate(
            start=p.day.min(), end=p.day.max(), orders=p.count()
        )
        return g.filter(g.orders >= MIN_PROMOTION_ORDERS)

    rows = inputs.engine.to_arrow(inputs.computed("promotions", periods)).to_pylist()
    return sorted((Promotion(**r) for r in rows), key=lambda x: (x.end, x.kind))


def cohort(inputs: PortraitInputs, promotion: Promotion) -> ir.Table:
    """Customers whose first purchase, as known at ``inputs.as_of``, fell in the promotion, with the time of their
    last purchase."""
    b = inputs.computed("buyers", lambda: buyers(inputs))
    day = local_date(b.first_purchase_at)
    start, end = ibis.date(promotion.start.isoformat()), ibis.date(promotion.end.isoformat())
    began = b.filter((day >= start) & (day <= end))
    o = inputs.orders().semi_join(began, "customer_id")
    first = o.group_by("customer_id").aggregate(**first_purchase(o))
    first = first.filter(first.first_purchase_promotion == promotion.kind).select("customer_id")
    return began.semi_join(first, "customer_id").select("customer_id", "last_purchase_at")


def _labels(now: PortraitInputs, members: ir.Table, cut: dt.datetime, end: dt.datetime) -> ir.Table:
    """label = 1 when the member bought (net > 0, as known now) in (cut, end]."""
    o = now.orders()
    after, until = ibis.timestamp(cut.isoformat()), ibis.timestamp(end.isoformat())
    again = o.filter((o.net > 0) & (o.created_at > after) & (o.created_at <= until)).select("customer_id").distinct()
    j = members.left_join(again.mutate(bought=ibis.literal(1, "int8")), "customer_id")
    return j.select(members.customer_id, label=j.bought.fill_null(0).cast("int8"))


def feature_portrait(inputs: PortraitInputs, identifiers: ir.Table | None, only: ir.Table | None = None) -> pa.Table:
    """The feature tags of every customer (or of ``only``) as of ``inputs.as_of`` (referral tags need the identity's
    identifiers)."""
    skip = set() if identifiers is not None else {"referral_influence", "arrived_via_referral"}
    definitions = [d for d in BUILTIN if d.id in FEATURE_TAGS and d.id not in skip]
    value = value_scores(inputs).table
    return compute_tags(inputs, definitions, extra_bases=[value], identifiers=identifiers, only=only).tags


def cohort_examples(
    inputs: PortraitInputs, promotion: Promotion, *, lag_days: int = 3, horizon_days: int = 90,
    identifiers: ir.Table | None = None,
) -> pa.Table:  # fmt: skip
    """One row per cohort member: customer_id, cohort, label and the feature tags at the cut."""
    cut = promotion.feature_cut(lag_days)
    at_cut = inputs.materialised(cut)
    members = cohort(at_cut, promotion).select("customer_id")
    labels = inputs.engine.to_arrow(_labels(inputs, members, cut, promotion.label_end(lag_days, horizon_days)))
    labels = labels.sort_by("customer_id")
    tags = feature_portrait(at_cut, identifiers, only=members)
    rows = tags.take(pc.index_in(labels["customer_id"], tags["customer_id"]))
    name = pa.array([promotion.name] * labels.num_rows, pa.string())
    head = {"customer_id": labels["customer_id"], "cohort": name, "label": labels["label"]}
    return pa.table(head | {c: rows[c] for c in rows.column_names if c != "customer_id"})


def _data_end(inputs: PortraitInputs) -> dt.datetime:
    o = inputs.orders()
    last = inputs.engine.to_arrow(o.aggregate(last=o.created_at.max()))["last"][0].as_py()
    if last is None:
        raise InputError("no orders yet: the propensity model needs promotion cohorts and what they did next")
    return min(last.astimezone(dt.UTC), inputs.as_of)


def _split(
    promotions: Sequence[Promotion], data_end: dt.datetime, lag: int, horizon: int,
    train: Sequence[str] | None, holdout: str | None,
) -> tuple[list[Promotion], Promotion]:  # fmt: skip
    """Training cohorts and the hold-out: given by name, else the latest complete cohort and all before it."""
    by_name = {p.name: p for p in promotions}
    unknown = [n for n in [*(train or ()), *([holdout] if holdout else [])] if n not in by_name]
    if unknown:
        raise InputError(f"unknown promotion cohort(s) {', '.join(unknown)}; found: {', '.join(by_name) or 'none'}")
    done = [p for p in promotions if p.label_end(lag, horizon) <= data_end]
    if holdout is None:
        if not done:
            raise InputError(f"no promotion cohort has {horizon} days of data after its feature cut yet")
        held = done[-1]
    else:
        held = by_name[holdout]
    if held.label_end(lag, horizon) > data_end:
        raise InputError(f"hold-out cohort {held.name}: its {horizon}-day label window ends after the data")
    cut = held.feature_cut(lag)
    chosen = [by_name[n] for n in train] if train else [p for p in done if p.label_end(lag, horizon) <= cut]
    leaks = [p.name for p in chosen if p.label_end(lag, horizon) > cut]
    if leaks:
        raise InputError(f"training cohort(s) {', '.join(leaks)}: label window overlaps hold-out {held.name}'s cut")
    if not chosen:
        raise InputError(f"no promotion cohort ends its label window before hold-out {held.name}'s feature cut")
    return chosen, held


def build_examples(
    inputs: PortraitInputs, *, train: Sequence[str] | None = None, holdout: str | None = None, lag_days: int = 3,
    horizon_days: int = 90, identifiers: ir.Table | None = None, say: Say = lambda _msg: None,
) -> tuple[pa.Table, pa.Table, dict[str, Any]]:  # fmt: skip
    """Training and hold-out examples (``cohort_examples`` rows) of the promotion cohorts in ``inputs`` (the
    merchant now). By default the hold-out is the latest cohort whose label window has ended, and the training
    set every cohort whose label window ended before the hold-out's feature cut."""
    now = inputs.materialised(tables=("orders",))
    data_end = _data_end(now)
    chosen, held = _split(find_promotions(now), data_end, lag_days, horizon_days, train, holdout)
    parts = []
    for p in [*chosen, held]:
        say(f"cohort {p.name}: portrait as of {p.feature_cut(lag_days):%Y-%m-%d %H:%M} UTC…")
        parts.append(cohort_examples(now, p, lag_days=lag_days, horizon_days=horizon_days, identifiers=identifiers))
    windows = {p.name: p.windows(lag_days, horizon_days) for p in [*chosen, held]}
    info = {"lag_days": lag_days, "horizon_days": horizon_days, "data_end": data_end.isoformat(), "cohorts": windows}
    return pa.concat_tables(parts[:-1], promote_options="permissive"), parts[-1], info
