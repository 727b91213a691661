"""The analytics the console's dashboard shows, each one set-based query over the portrait and the facts.

- repeat-purchase rate, overall and by first-purchase channel;
- retention of promotion cohorts: Double 11 and Double 12 first-time buyers against organic ones, by
  channel — the share who bought again within 30/90/180/365 days of their first purchase;
- the RFM grid (R score × F score: customers and spend), the distribution of predicted 1-year value,
  the channel mix and cross-channel share, and OneID's merge statistics.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import ibis
import ibis.expr.types as ir

from omnicrm.errors import NotFound
from omnicrm.portrait.bases import days_since
from omnicrm.portrait.inputs import PortraitInputs, local_date
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine

__all__ = ["HORIZONS", "Analytics"]

HORIZONS = (30, 90, 180, 365)


def _rows(table: Any) -> list[dict[str, Any]]:
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in table.to_pylist()]


class Analytics:
    """Reports over the portrait snapshot in force, on the given engine."""

    def __init__(self, engine: Engine, derived: DerivedStore, now: dt.datetime | None = None) -> None:
        portrait, identity = derived.current("portrait"), derived.current("identity")
        if portrait is None or identity is None:
            raise NotFound("there is no portrait yet; run `omnicrm refresh` first")
        self.engine = engine
        self.identity = identity
        self.tags = engine.parquet([portrait / "tags.parquet"], "analytics_tags")
        stats = json.loads((portrait / "stats.json").read_text(encoding="utf-8"))
        self.now = now or dt.datetime.fromisoformat(stats["as_of"])
        self.inputs = PortraitInputs.from_snapshot(engine, identity, self.now)

    def _run(self, expr: ir.Table) -> list[dict[str, Any]]:
        return _rows(self.engine.to_arrow(expr))

    def repeat_rate(self) -> dict[str, Any]:
        """Share of buyers with purchases on two or more days, overall and by first-purchase channel."""
        t = self.tags.filter(self.tags.frequency > 0)
        by = t.group_by(channel=t.first_channel).aggregate(buyers=t.count(), repeat=t.repeat_buyer.sum())
        rows = self._run(by.order_by("channel"))
        for r in rows:
            r["rate"] = r["repeat"] / r["buyers"] if r["buyers"] else None
        buyers = sum(r["buyers"] for r in rows)
        repeat = sum(r["repeat"] for r in rows)
        return {
            "buyers": buyers,
            "repeat_buyers": repeat,
            "rate": repeat / buyers if buyers else None,
            "by_channel": rows,
        }

    def cohort_retention(self, horizons: tuple[int, ...] = HORIZONS) -> list[dict[str, Any]]:
        """Per (cohort, first channel): buyers, and the share who bought again within each horizon.

        A cohort is the year and kind of the first purchase: Double 11, Double 12 or organic (not in a
        promotion). A horizon counts only for customers whose first purchase is at least that many days old.
        """
        o = self.inputs.orders()
        bought = o.filter(o.net > 0)
        days = bought.select(
            "customer_id", "channel", "promotion_kind", "created_at", day=local_date(bought.created_at)
        )
        ranked = days.mutate(rank=ibis.row_number().over(group_by=days.customer_id, order_by=[days.created_at]))
        first = ranked.filter(ranked["rank"] == 0).select(
            "customer_id", first_day=ranked.day, channel=ranked.channel, age=days_since(self.now, ranked.created_at),
            cohort=ibis.cases(
                (ranked.promotion_kind == "double11", "double11"), (ranked.promotion_kind == "double12", "double12"),
                (ranked.promotion_kind.isnull(), "organic"), else_="other_promotion",
            ) + "_" + ranked.day.year().cast("string"),
        )  # fmt: skip
        later = days.join(first, "customer_id").filter(lambda t: t.day > t.first_day)
        gap = later.group_by("customer_id").aggregate(
            next_gap=(later.day.epoch_seconds().min() - later.first_day.epoch_seconds().min()) / 86400
        )
        joined = first.left_join(gap, "customer_id").drop("customer_id_right")
        aggs: dict[str, Any] = {"buyers": joined.count()}
        for h in horizons:
            eligible = joined.age >= h
            aggs[f"eligible_{h}d"] = joined.count(where=eligible)
            aggs[f"returned_{h}d"] = joined.count(where=eligible & (joined.next_gap <= h))
        rows = self._run(joined.group_by(["cohort", "channel"]).aggregate(**aggs).order_by(["cohort", "channel"]))
        for r in rows:
            for h in horizons:
                n = r[f"eligible_{h}d"]
                r[f"retention_{h}d"] = r[f"returned_{h}d"] / n if n else None
        return rows

    def rfm_grid(self) -> list[dict[str, Any]]:
        t = self.tags.filter(self.tags.frequency > 0)
        grid = t.group_by(["r_score", "f_score"]).aggregate(customers=t.count(), spend=t.monetary.sum())
        return self._run(grid.order_by(["r_score", "f_score"]))

    def clv_distribution(self, bins: int = 10) -> dict[str, Any]:
        """Buyers in equal-width bins of predicted 1-year value, up to its 99th percentile (the rest in the last)."""
        t = self.tags.filter(self.tags.clv_365d.notnull() & (self.tags.frequency > 0))
        top = self._run(t.aggregate(p99=t.clv_365d.quantile(0.99), n=t.count()))[0]
        if not top["n"]:
            return {"bins": [], "customers": 0}
        width = max(float(top["p99"]) / bins, 1e-9)
        b = t.mutate(bin=ibis.least((t.clv_365d / width).floor().cast("int64"), bins - 1))
        rows = self._run(b.group_by("bin").aggregate(customers=b.count(), value=b.clv_365d.sum()).order_by("bin"))
        for r in rows:
            r["from"], r["to"] = r["bin"] * width, (r["bin"] + 1) * width if r["bin"] < bins - 1 else None
        return {"bins": rows, "customers": int(top["n"]), "width": width}

    def channel_mix(self) -> dict[str, Any]:
        t = self.tags.filter(self.tags.frequency > 0)
        mix = t.group_by(channels=t.channels_used.join("+")).aggregate(customers=t.count(), spend=t.monetary.sum())
        rows = self._run(mix.order_by(ibis.desc("customers")))
        total = sum(r["customers"] for r in rows)
        cross = sum(r["customers"] for r in rows if "+" in r["channels"])
        return {"combinations": rows, "buyers": total, "cross_channel_share": cross / total if total else None}

    def oneid(self) -> dict[str, Any]:
        stats = json.loads((self.identity / "stats.json").read_text(encoding="utf-8"))
        records = self.engine.parquet([self.identity / "records.parquet"], "analytics_records")
        sizes = records.group_by("customer_id").aggregate(records=records.count())
        dist = sizes.group_by(records=ibis.least(sizes.records, 10)).aggregate(customers=sizes.count())
        return {**stats, "records_per_customer": self._run(dist.order_by("records"))}
