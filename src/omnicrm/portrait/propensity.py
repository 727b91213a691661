"""Repeat-purchase propensity of promotion-acquired buyers: will a first-time Double 11 (Double 12, 618) buyer
buy again within ``horizon_days``?

A cohort is the customers whose first purchase (net paid > 0) fell in one promotion period (found from the
orders: a promotion kind and year). Its features are the portrait as it stood ``lag_days`` after the period's
last day (the *feature cut*: facts after it are invisible); its label is whether the customer bought again in
the ``horizon_days`` after the cut. A LightGBM model learns from earlier cohorts and is measured (AUC) on a later
one, against a logistic regression on recency, frequency and monetary alone.

No leakage across the split: every training cohort's label window ends on or before the hold-out's feature
cut, and the hold-out's label window ends before the data does. Features see no fact after their cut, with three
caveats that come from the inputs: customers are today's OneID customers (merges found later apply to the past);
an order line's latest version counts, so a refund made after the cut is already netted; and person records are
visible only from when they were imported, so declared attributes (gender, membership, WeChat following) are
empty in past portraits when member lists were imported late (as in the demo).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from omnicrm.errors import InputError, Problem
from omnicrm.portrait.bases import PROMOTIONS
from omnicrm.portrait.inputs import CHINA, PortraitInputs, local_date
from omnicrm.portrait.tags.catalogue import BUILTIN
from omnicrm.portrait.tags.compute import compute_tags
from omnicrm.portrait.tags.model import arrow_type
from omnicrm.portrait.value import value_scores

__all__ = [
    "BASELINE_FEATURES",
    "FEATURE_TAGS",
    "Feature",
    "Promotion",
    "PropensityModel",
    "build_examples",
    "cohort_examples",
    "feature_portrait",
    "find_promotions",
    "fit_propensity",
    "rfm_matrix",
    "score_current",
    "train_propensity",
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
BASELINE_FEATURES = ("recency_days", "frequency", "monetary")
MIN_TRAIN, MIN_TRAIN_CLASS = 100, 10
MIN_HOLDOUT, MIN_HOLDOUT_CLASS = 30, 5
MIN_PROMOTION_ORDERS = 20
TOP_REASONS = 3
# Small trees for a few thousand buyers; chosen on an inner time split (train 618 + Double 11 2025, validate on
# Double 12 2025) of two simulated merchants, never on the hold-out.
PARAMS: dict[str, Any] = {
    "objective": "binary", "learning_rate": 0.05, "num_leaves": 4, "min_data_in_leaf": 50, "lambda_l2": 1.0,
    "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "cat_smooth": 10.0,
    "deterministic": True, "force_row_wise": True, "num_threads": 1, "verbose": -1,
}  # fmt: skip
ROUNDS = 150
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


@dataclass(frozen=True)
class Feature:
    """One model column: the tag it comes from, how it is encoded, and the levels of a category."""

    tag: str
    kind: str  # number / bool / category / list (a list counts its items)
    levels: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"n_{self.tag}" if self.kind == "list" else self.tag


def find_promotions(inputs: PortraitInputs) -> list[Promotion]:
    """Promotion periods in the orders (kind × year with at least ``MIN_PROMOTION_ORDERS`` purchases), by end."""
    o = inputs.orders()
    p = o.filter((o.net > 0) & o.promotion_kind.isin(PROMOTIONS)).mutate(day=local_date(o.created_at))
    g = p.group_by(kind=p.promotion_kind, year=p.day.year()).aggregate(
        start=p.day.min(), end=p.day.max(), orders=p.count()
    )
    rows = inputs.engine.to_arrow(g.filter(g.orders >= MIN_PROMOTION_ORDERS)).to_pylist()
    return sorted((Promotion(**r) for r in rows), key=lambda x: (x.end, x.kind))


def _cohort(at_cut: PortraitInputs, promotion: Promotion) -> ir.Table:
    """Customers whose first purchase, as known at the cut, fell in the promotion."""
    o = at_cut.orders()
    b = o.filter(o.net > 0)
    b = b.mutate(rank=ibis.row_number().over(group_by=b.customer_id, order_by=[b.created_at, b.source, b.order_id]))
    first = b.filter(b["rank"] == 0)
    day = local_date(first.created_at)
    start, end = ibis.date(promotion.start.isoformat()), ibis.date(promotion.end.isoformat())
    return first.filter((first.promotion_kind == promotion.kind) & (day >= start) & (day <= end)).select("customer_id")


def _labels(now: PortraitInputs, members: ir.Table, cut: dt.datetime, end: dt.datetime) -> ir.Table:
    """label = 1 when the member bought (net > 0, as known now) in (cut, end]."""
    o = now.orders()
    after, until = ibis.timestamp(cut.isoformat()), ibis.timestamp(end.isoformat())
    again = o.filter((o.net > 0) & (o.created_at > after) & (o.created_at <= until)).select("customer_id").distinct()
    j = members.left_join(again.mutate(bought=ibis.literal(1, "int8")), "customer_id")
    return j.select(members.customer_id, label=j.bought.fill_null(0).cast("int8"))


def feature_portrait(inputs: PortraitInputs, identifiers: ir.Table | None) -> pa.Table:
    """The feature tags of every customer as of ``inputs.as_of`` (referral tags need the identity's identifiers)."""
    skip = set() if identifiers is not None else {"referral_influence", "arrived_via_referral"}
    definitions = [d for d in BUILTIN if d.id in FEATURE_TAGS and d.id not in skip]
    value = value_scores(inputs).table
    return compute_tags(inputs, definitions, extra_bases=[value], identifiers=identifiers).tags


def cohort_examples(
    inputs: PortraitInputs, promotion: Promotion, *, lag_days: int = 3, horizon_days: int = 90,
    identifiers: ir.Table | None = None,
) -> pa.Table:  # fmt: skip
    """One row per cohort member: customer_id, cohort, label and the feature tags at the cut."""
    cut = promotion.feature_cut(lag_days)
    at_cut = inputs.materialised(cut)
    members = _cohort(at_cut, promotion)
    labels = inputs.engine.to_arrow(_labels(inputs, members, cut, promotion.label_end(lag_days, horizon_days)))
    labels = labels.sort_by("customer_id")
    tags = feature_portrait(at_cut, identifiers)
    rows = tags.take(pc.index_in(labels["customer_id"], tags["customer_id"]))
    cohort = pa.array([promotion.name] * labels.num_rows, pa.string())
    head = {"customer_id": labels["customer_id"], "cohort": cohort, "label": labels["label"]}
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


def _cohort_stats(examples: pa.Table) -> list[dict[str, Any]]:
    names = examples["cohort"].to_numpy(zero_copy_only=False)
    y = examples["label"].to_numpy(zero_copy_only=False)
    return [
        {"cohort": c, "buyers": int((names == c).sum()), "bought_again": int(y[names == c].sum())}
        for c in dict.fromkeys(names.tolist())
    ]


def _check(examples: pa.Table, role: str, least: int, least_class: int) -> None:
    """A clear error when a training set or hold-out has too few examples or only one class."""
    y = examples["label"].to_numpy(zero_copy_only=False)
    positives = int(y.sum())
    if len(y) >= least and min(positives, len(y) - positives) >= least_class:
        return
    stats = _cohort_stats(examples)
    problems = [Problem(f"cohort {c['cohort']}: {c['buyers']} buyers, {c['bought_again']} bought again") for c in stats]
    raise InputError(
        f"too few examples for the {role}: {len(y)} buyers ({positives} bought again, {len(y) - positives} did not);"
        f" it needs at least {least}, with at least {least_class} of each — use more cohorts or a longer horizon",
        problems,
    )


def _features(examples: pa.Table) -> list[Feature]:
    """The model's columns, with category levels declared by the catalogue or seen in training."""
    types = {d.id: (d.value_type, d.values) for d in BUILTIN}
    out = []
    for tag in FEATURE_TAGS:
        kind, declared = types[tag]
        levels: tuple[str, ...] = ()
        if kind == "category":
            seen = pc.unique(examples[tag].drop_null()).to_pylist()
            levels = tuple(declared) or tuple(sorted(seen))
        out.append(Feature(tag, kind, levels))
    return out


def _matrix(tags: pa.Table, features: Sequence[Feature]) -> tuple[np.ndarray, np.ndarray]:
    """(numbers for LightGBM, readable values for the reasons): one column per feature, NaN when unknown."""
    x = np.full((tags.num_rows, len(features)), np.nan)
    shown = np.empty((tags.num_rows, len(features)), dtype=object)
    for j, f in enumerate(features):
        col = tags[f.tag] if f.tag in tags.column_names else pa.nulls(tags.num_rows, arrow_type(f.kind))
        if f.kind == "list":
            x[:, j] = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
        elif f.kind == "category":
            x[:, j] = pc.index_in(col, pa.array(f.levels, pa.string())).to_numpy(zero_copy_only=False)
        else:
            x[:, j] = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        if f.kind == "category":
            shown[:, j] = pc.fill_null(col, "unknown").to_numpy(zero_copy_only=False)
        elif f.kind == "bool":
            shown[:, j] = np.where(np.isnan(x[:, j]), "unknown", np.where(x[:, j] > 0, "yes", "no"))
        else:
            shown[:, j] = np.where(np.isnan(x[:, j]), "unknown", np.char.mod("%g", np.round(x[:, j], 2)))
    return x, shown


@dataclass
class PropensityModel:
    """A fitted LightGBM propensity model, its hold-out AUCs against the RFM baseline and how it was made."""

    booster: lgb.Booster
    features: list[Feature]
    auc_holdout: float
    baseline_auc_holdout: float
    feature_importance: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)
    baseline: Any = field(default=None, repr=False)  # the fitted RFM logistic regression (not saved)

    def predict(self, tags: pa.Table) -> np.ndarray:
        return np.asarray(self.booster.predict(_matrix(tags, self.features)[0]))

    def score(self, tags: pa.Table, *, top: int = TOP_REASONS) -> pa.Table:
        """(customer_id, repeat_propensity, propensity_reasons): the reasons are the features that push the
        score up most, by their SHAP contribution in log-odds, e.g. ``frequency=2 (+0.31)``."""
        x, shown = _matrix(tags, self.features)
        p, contrib = np.zeros(len(x)), np.zeros_like(x)
        if len(x):
            p = np.asarray(self.booster.predict(x))
            contrib = np.asarray(self.booster.predict(x, pred_contrib=True))[:, :-1]
        order = np.argsort(-contrib, axis=1, kind="stable")[:, :top]
        push = np.take_along_axis(contrib, order, axis=1)
        names = np.array([f.name for f in self.features], dtype=object)[order]
        text = names + "=" + np.take_along_axis(shown, order, axis=1) + np.char.mod(" (%+.2f)", push).astype(object)
        keep = push >= 0.005
        offsets = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int32)
        reasons = pa.ListArray.from_arrays(pa.array(offsets), pa.array(text[keep].tolist(), pa.string()))
        return pa.table(
            {"customer_id": tags["customer_id"], "repeat_propensity": pa.array(p), "propensity_reasons": reasons}
        )

    def save(self, path: Path) -> None:
        """The LightGBM model as text and everything else as JSON, in the folder ``path``."""
        path.mkdir(parents=True, exist_ok=True)
        (path / "model.txt").write_text(self.booster.model_to_string(), encoding="utf-8")
        features = [{"tag": f.tag, "kind": f.kind, "levels": list(f.levels)} for f in self.features]
        aucs = {"auc_holdout": self.auc_holdout, "baseline_auc_holdout": self.baseline_auc_holdout}
        meta = {"features": features, **aucs, "feature_importance": self.feature_importance, "info": self.info}
        (path / "model.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1, default=str), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> PropensityModel:
        meta = json.loads((path / "model.json").read_text(encoding="utf-8"))
        booster = lgb.Booster(model_str=(path / "model.txt").read_text(encoding="utf-8"))
        features = [Feature(f["tag"], f["kind"], tuple(f["levels"])) for f in meta["features"]]
        aucs = meta["auc_holdout"], meta["baseline_auc_holdout"]
        return cls(booster, features, *aucs, meta["feature_importance"], meta["info"])


def rfm_matrix(tags: pa.Table) -> np.ndarray:
    """The baseline's inputs: recency_days, frequency and monetary (0 when unknown)."""
    cols = [pc.cast(tags[c], pa.float64()).to_numpy(zero_copy_only=False) for c in BASELINE_FEATURES]
    return np.nan_to_num(np.column_stack(cols))


def fit_propensity(
    train: pa.Table, holdout: pa.Table, *, seed: int = 7, rounds: int = ROUNDS, params: dict[str, Any] | None = None
) -> PropensityModel:
    """Fit LightGBM and the RFM logistic baseline on ``train``; measure both on ``holdout`` (AUC).

    Both tables hold ``cohort_examples`` rows (customer_id, cohort, label, feature tags)."""
    _check(train, "training set", MIN_TRAIN, MIN_TRAIN_CLASS)
    _check(holdout, "hold-out", MIN_HOLDOUT, MIN_HOLDOUT_CLASS)
    train = train.sort_by([("cohort", "ascending"), ("customer_id", "ascending")])  # the fit ignores row order
    features = _features(train)
    x, _ = _matrix(train, features)
    y = train["label"].to_numpy(zero_copy_only=False).astype(np.float64)
    y_hold = holdout["label"].to_numpy(zero_copy_only=False)
    config = {**PARAMS, **(params or {}), "seed": seed}
    cats = [j for j, f in enumerate(features) if f.kind == "category"]
    names = [f.name for f in features]
    data = lgb.Dataset(x, y, feature_name=names, categorical_feature=cats, params={"verbose": -1})
    booster = lgb.train(config, data, num_boost_round=rounds)
    gain = booster.feature_importance(importance_type="gain")
    importance = {n: round(float(g), 3) for n, g in sorted(zip(names, gain, strict=True), key=lambda t: -t[1])}
    model = PropensityModel(booster, features, 0.0, 0.0, importance)
    model.auc_holdout = float(roc_auc_score(y_hold, model.predict(holdout)))
    baseline = make_pipeline(StandardScaler(), LogisticRegression()).fit(rfm_matrix(train), y)
    model.baseline = baseline
    model.baseline_auc_holdout = float(roc_auc_score(y_hold, baseline.predict_proba(rfm_matrix(holdout))[:, 1]))
    lr = {"coef": baseline[-1].coef_[0].tolist(), "intercept": float(baseline[-1].intercept_[0])}
    cohorts = {"train": _cohort_stats(train), "holdout": _cohort_stats(holdout)}
    model.info = {**cohorts, "params": config, "rounds": rounds, "baseline": lr}
    return model


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


def train_propensity(
    inputs: PortraitInputs, *, train: Sequence[str] | None = None, holdout: str | None = None, lag_days: int = 3,
    horizon_days: int = 90, seed: int = 7, identifiers: ir.Table | None = None, say: Say = lambda _msg: None,
) -> PropensityModel:  # fmt: skip
    """``build_examples``, then ``fit_propensity``: the model and its hold-out AUC against the RFM baseline."""
    examples, held, info = build_examples(
        inputs, train=train, holdout=holdout, lag_days=lag_days, horizon_days=horizon_days,
        identifiers=identifiers, say=say,
    )  # fmt: skip
    model = fit_propensity(examples, held, seed=seed)
    model.info |= info
    return model


def score_current(
    model: PropensityModel, inputs: PortraitInputs, tags: pa.Table, promotion: Promotion | None = None
) -> pa.Table:
    """The ``repeat_propensity`` tag: the latest finished promotion's new buyers who have not bought since it ended
    are scored on today's portrait ``tags``; everyone else gets null."""
    today = inputs.as_of.astimezone(CHINA).date()
    found = [promotion] if promotion else [p for p in find_promotions(inputs) if p.end < today][-1:]
    target = tags.slice(0, 0)
    for p in found:
        o = inputs.orders()
        since = o.filter((o.net > 0) & (o.created_at >= ibis.timestamp(p.feature_cut(-1).isoformat())))
        waiting = _cohort(inputs, p).anti_join(since.select("customer_id").distinct(), "customer_id")
        target = tags.filter(pc.is_in(tags["customer_id"], inputs.engine.to_arrow(waiting)["customer_id"]))
    scored = model.score(target)
    rows = scored.take(pc.index_in(tags["customer_id"], scored["customer_id"]))
    return rows.set_column(0, "customer_id", tags["customer_id"])
