"""Campaign measurement: uplift of conversion and revenue against the holdout, with 95% intervals, and ROI.

Intent to treat: every customer drawn into the treatment arm counts, whether or not the send reached them (a
failed send is part of what the campaign did); the holdout arm is the control; excluded rows are ignored. A
customer converted when they placed at least one paid order (``paid > 0``, any channel, online or in a store) in
``[assigned_at, assigned_at + conversion_days)``; their revenue is what their orders of that window were paid less
what was refunded of them, as known at ``now`` (a refund after ``now`` had not happened yet). Orders come from the
portrait's own per-order table (``PortraitInputs.orders``: order lines and shop events joined to OneID), and a
recipient's id of launch day is followed through the snapshot's redirects when OneID merged it since. Two
recipients who have since merged into one customer are each credited with that customer's orders.

The statistics are in ``omnicrm.campaigns.uplift``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from numbers import Integral
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, and_, case, func, select

from omnicrm.campaigns.uplift import ArmStats, Interval, Uplift, pooled_difference, uplift
from omnicrm.errors import InputError, NotFound, Problem
from omnicrm.portrait.inputs import PortraitInputs
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.schema import campaign_recipients, campaigns, link_clicks
from omnicrm.store.state import StateStore

__all__ = ["ArmFigures", "CampaignMeasure", "ChannelMeasure", "Measure", "channel_report", "measure_campaign"]

ARMS = ("treatment", "holdout")


@dataclass(frozen=True)
class ArmFigures:
    """One arm as counted: size (reached), delivered (status sent), clicked (distinct customers), converted,
    revenue (paid less refunded, in the window) and cost, money in currency units; ``revenue_var`` is the sample
    variance of revenue per person (0 in sums over campaigns, where it means nothing)."""

    reached: int
    delivered: int
    clicked: int
    converted: int
    revenue: float
    cost: float
    revenue_var: float = 0.0

    @property
    def stats(self) -> ArmStats:
        return ArmStats(self.reached, self.converted, self.revenue, self.revenue_var)


def _summed(arms: Sequence[ArmFigures]) -> ArmFigures:
    return ArmFigures(*(sum(getattr(a, f.name) for a in arms) for f in fields(ArmFigures)[:6]))


def _roi(incremental_revenue: Interval, cost: float) -> Interval | None:
    """(incremental revenue − cost) / cost, the bounds of the revenue interval carried through (ROI grows with
    revenue); None when the campaign cost nothing."""
    if cost <= 0:
        return None
    return Interval(*(None if v is None else (v - cost) / cost for v in asdict(incremental_revenue).values()))


@dataclass(frozen=True)
class Measure:
    """What is measured of a campaign, or of a channel's campaigns together (definitions in the module's docstring):
    each arm, the cost (of every row, excluded ones too), the uplift, incremental conversions and revenue (uplift ×
    treatment size) and ROI."""

    channel: str
    treatment: ArmFigures
    holdout: ArmFigures
    cost: float
    uplift: Uplift
    incremental_conversions: Interval
    incremental_revenue: Interval
    roi: Interval | None

    def as_dict(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class CampaignMeasure(Measure):
    """One campaign at ``measured_at``; ``window_complete``: every recipient's attribution window had ended."""

    campaign_id: int
    name: str
    conversion_days: int
    measured_at: dt.datetime
    window_complete: bool


@dataclass(frozen=True)
class ChannelMeasure(Measure):
    """A channel's campaigns together, counts and money summed, uplift pooled (see ``channel_report``);
    ``measured_campaigns`` are those with both arms, which the pooled uplift reads."""

    campaigns: int
    measured_campaigns: int


def _utc(value: dt.datetime) -> dt.datetime:
    """A time of the state store in UTC (SQLite hands back naive UTC times)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    if now.tzinfo is None:
        raise InputError("now must carry a time zone", [Problem("naive datetime", field="now")])
    return now.astimezone(dt.UTC)


def _state_figures(conn: Connection, ids: list[int], step: str) -> dict[tuple[int, str], tuple[Any, ...]]:
    """(campaign, arm) → (reached, delivered, clicked, cost in micros, last assigned_at), counted in the state
    database (every arm, excluded too: its cost, if any, is the campaign's)."""
    r = campaign_recipients.c
    clicks = select(link_clicks.c.campaign_id, link_clicks.c.step, link_clicks.c.customer_id).distinct().subquery()
    on = and_(clicks.c.campaign_id == r.campaign_id, clicks.c.step == r.step, clicks.c.customer_id == r.customer_id)
    query = (
        select(r.campaign_id, r.arm, func.count(), func.sum(case((r.status == "sent", 1), else_=0)),
               func.count(clicks.c.customer_id), func.coalesce(func.sum(r.cost_micros), 0), func.max(r.assigned_at))
        .select_from(campaign_recipients.outerjoin(clicks, on))
        .where(r.campaign_id.in_(ids), r.step == step)
        .group_by(r.campaign_id, r.arm)
    )  # fmt: skip
    return {(int(row[0]), str(row[1])): tuple(row[2:]) for row in conn.execute(query).all()}


def _recipients(conn: Connection, ids: list[int], step: str) -> pa.Table:
    """(campaign_id, customer_id, arm, assigned_at, window_end) of both arms' recipients, as Arrow."""
    r, c = campaign_recipients.c, campaigns.c
    query = (
        select(r.campaign_id, r.customer_id, r.arm, r.assigned_at, c.conversion_days)
        .join_from(campaign_recipients, campaigns, c.id == r.campaign_id)
        .where(r.campaign_id.in_(ids), r.step == step, r.arm.in_(ARMS))
    )
    cols = list(zip(*conn.execute(query).all(), strict=True)) or [()] * 5
    assigned = pa.array(cols[3], pa.timestamp("us", tz="UTC"))  # naive times (SQLite's) are UTC
    span = pa.array(np.asarray(cols[4], np.int64) * 86_400_000_000, pa.int64()).cast(pa.duration("us"))
    return pa.table({
        "campaign_id": pa.array(cols[0], pa.int64()), "customer_id": pa.array(cols[1], pa.int64()),
        "arm": pa.array(cols[2], pa.string()), "assigned_at": assigned, "window_end": pc.add(assigned, span),
    })  # fmt: skip


def _outcomes(
    engine: Engine, identity: Path, recipients: pa.Table, now: dt.datetime
) -> dict[tuple[int, str], tuple[int, float, float]]:
    """(campaign, arm) → (converted, revenue, sample variance of revenue per person): the recipients joined to their
    orders of the window in the engine, one set-based query."""
    r = engine.table_from_arrow(recipients, "campaign_recipients")
    moved = engine.parquet([identity / "redirects.parquet"], "identity_redirects")
    moved = moved.select(old_id=moved.old_id, merged_into=moved.customer_id)
    j = r.left_join(moved, r.customer_id == moved.old_id)
    buyer = ibis.coalesce(j.merged_into, j.customer_id)
    # a table of its own (``view``), as it is joined twice below
    r = j.select("campaign_id", "customer_id", "arm", "assigned_at", "window_end", buyer=buyer).view()
    o = PortraitInputs.from_snapshot(engine, identity, now).orders()
    o = o.select(buyer_id=o.customer_id, ordered_at=o.created_at, paid=o.paid, net=o.net)
    hit = r.join(o, [r.buyer == o.buyer_id, o.ordered_at >= r.assigned_at, o.ordered_at < r.window_end])
    per = hit.group_by(["campaign_id", "customer_id"]).aggregate(
        bought=(hit.paid > 0).any(), spent=hit.net.sum().cast("float64")
    )
    k = r.left_join(per, [r.campaign_id == per.campaign_id, r.customer_id == per.customer_id])
    person = k.select(
        campaign_id=r.campaign_id, arm=r.arm, converted=k.bought.fill_null(False).cast("int64"),
        revenue=k.spent.fill_null(0.0),
    )  # fmt: skip
    arms = person.group_by(["campaign_id", "arm"]).aggregate(
        converted=person.converted.sum(), revenue=person.revenue.sum(), var=person.revenue.var(how="sample")
    )
    rows = engine.to_arrow(arms).to_pylist()
    return {(int(a["campaign_id"]), a["arm"]): (int(a["converted"]), a["revenue"], a["var"] or 0.0) for a in rows}


def _measure_all(
    state: StateStore, engine: Engine, derived: DerivedStore, where: Any, now: dt.datetime, step: str,
    confidence: float,
) -> list[CampaignMeasure]:  # fmt: skip
    """The measures of the campaigns ``where`` selects, read in one state transaction (a consistent view of the send
    log) and one engine query, whatever their number."""
    c = campaigns.c
    with state.connect() as conn:
        rows = conn.execute(select(c.id, c.name, c.channel, c.conversion_days).where(where).order_by(c.id)).all()
        counted = _state_figures(conn, [int(x.id) for x in rows], step)
        recipients = _recipients(conn, [int(x.id) for x in rows], step)
    outcomes: dict[tuple[int, str], tuple[int, float, float]] = {}
    if recipients.num_rows:
        identity = derived.current("identity")
        if identity is None:
            raise NotFound("there is no identity snapshot yet; run `omnicrm refresh` before measuring campaigns")
        outcomes = _outcomes(engine, identity, recipients, now)
    by_campaign: dict[int, list[tuple[Any, ...]]] = {}
    for (i, _), value in counted.items():
        by_campaign.setdefault(i, []).append(value)
    out = []
    for x in rows:
        cid, days = int(x.id), int(x.conversion_days)
        arms = []
        for arm in ARMS:
            n, delivered, clicked, micros, _ = counted.get((cid, arm), (0, 0, 0, 0, None))
            converted, revenue, var = outcomes.get((cid, arm), (0, 0.0, 0.0))
            arms.append(ArmFigures(int(n), int(delivered), int(clicked), converted, revenue, int(micros) / 1e6, var))
        mine = by_campaign.get(cid, [])
        cost = sum(int(v[3]) for v in mine) / 1e6
        last = max((_utc(v[4]) for v in mine if v[4] is not None), default=None)
        up = uplift(arms[0].stats, arms[1].stats, confidence)
        n = arms[0].reached
        conv, rev = up.conversion, up.revenue_per_person
        incremental = Interval.of(rev.estimate, rev.low, rev.high, scale=n)
        out.append(CampaignMeasure(
            x.channel, arms[0], arms[1], cost, up, Interval.of(conv.estimate, conv.low, conv.high, scale=n),
            incremental, _roi(incremental, cost), cid, x.name, days, now,
            last is None or last + dt.timedelta(days=days) <= now,
        ))  # fmt: skip
    return out


def measure_campaign(
    state: StateStore, engine: Engine, derived: DerivedStore, campaign_id: int, now: dt.datetime | None = None,
    *, step: str = "1", confidence: float = 0.95,
) -> CampaignMeasure:  # fmt: skip
    """Measure one campaign's ``step`` at ``now`` (default: the current time): both arms' figures, the uplift of
    conversion and revenue per person with their intervals and verdicts, incremental conversions and revenue, ROI.

    Orders are the facts of ``engine`` joined to customers by the identity snapshot in force in ``derived``, as known
    at ``now``. A campaign not launched yet measures as empty arms ("not enough data")."""
    if isinstance(campaign_id, bool) or not isinstance(campaign_id, Integral) or campaign_id < 1:
        problem = Problem("not a campaign id", field="campaign_id")
        raise InputError(f"campaign id must be a positive integer, not {campaign_id!r}", [problem])
    found = _measure_all(state, engine, derived, campaigns.c.id == int(campaign_id), _now(now), step, confidence)
    if not found:
        raise NotFound(f"no campaign {campaign_id}", [Problem("unknown campaign", field="campaign_id")])
    return found[0]


def channel_report(
    state: StateStore, engine: Engine, derived: DerivedStore, now: dt.datetime | None = None,
    *, campaign_ids: Sequence[int] | None = None, step: str = "1", confidence: float = 0.95,
) -> list[ChannelMeasure]:  # fmt: skip
    """Per channel, over its launched campaigns (or only ``campaign_ids``): the figures of each arm summed over the
    campaigns, and the uplift pooled by campaign, never over the arms merged across campaigns (their holdout shares
    and audiences differ: merged arms would mix those differences into the effect).

    Pooled uplift = the campaigns' differences (treatment − holdout) averaged with weights = treatment sizes, so
    incremental conversions (revenue) = Σ over campaigns of difference × treatment size. Its interval is normal
    (Wald) with variance Σ w²·var, each campaign's variance being p(1−p)/n summed over its two arms for conversion
    and s²/n summed for revenue; a pooled channel holds thousands of people, where Wald is adequate. Campaigns
    without a holdout (or treatment) count in the sums but not in the uplift (``measured_campaigns``)."""
    c = campaigns.c
    where = c.launched_at.is_not(None) if campaign_ids is None else c.id.in_([int(i) for i in campaign_ids])
    measured = _measure_all(state, engine, derived, where, _now(now), step, confidence)
    if campaign_ids is not None and (missing := sorted(set(campaign_ids) - {m.campaign_id for m in measured})):
        raise NotFound(f"no campaign {', '.join(map(str, missing))}", [Problem("unknown campaign", "campaign_ids")])
    return [
        _pooled(ch, [m for m in measured if m.channel == ch], confidence)
        for ch in sorted({m.channel for m in measured})
    ]


def _pooled(channel: str, ms: list[CampaignMeasure], confidence: float) -> ChannelMeasure:
    """One channel's campaigns together (see ``channel_report``)."""
    t, h = (np.array([[a.reached, a.converted, a.revenue, a.revenue_var] for a in arms], np.float64).T
            for arms in ([m.treatment for m in ms], [m.holdout for m in ms]))  # fmt: skip
    both, two = (t[0] > 0) & (h[0] > 0), (t[0] >= 2) & (h[0] >= 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2, m1, m2 = t[1] / t[0], h[1] / h[0], t[2] / t[0], h[2] / h[0]
        conv = pooled_difference(np.where(both, p1 - p2, np.nan), p1 * (1 - p1) / t[0] + p2 * (1 - p2) / h[0], t[0],
                                 confidence)  # fmt: skip
        rev = pooled_difference(np.where(two, m1 - m2, np.nan), t[3] / t[0] + h[3] / h[0], t[0], confidence)
    cost = sum(m.cost for m in ms)
    incremental = Interval.of(*rev, scale=float(t[0][two].sum()))
    return ChannelMeasure(
        channel, _summed([m.treatment for m in ms]), _summed([m.holdout for m in ms]), cost, Uplift.of(conv, rev),
        Interval.of(*conv, scale=float(t[0][both].sum())), incremental, _roi(incremental, cost), len(ms),
        int(both.sum()),
    )  # fmt: skip
