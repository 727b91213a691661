"""Campaign measurement on a hand-counted merchant (real SQLite state store, Parquet facts written by the facts
store, an identity snapshot from ``refresh_identity``), the interval arithmetic against published and scipy values,
and the 95% intervals' coverage on simulated campaigns whose true effect is known."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from scipy import stats
from sqlalchemy import insert

from omnicrm.campaigns.measure import CampaignMeasure, channel_report, measure_campaign
from omnicrm.campaigns.uplift import (
    NO_EFFECT,
    NOT_ENOUGH,
    ArmStats,
    newcombe_difference,
    uplift,
    verdicts,
    welch_difference,
)
from omnicrm.errors import InputError, NotFound
from omnicrm.identity.explain import lookup, normalise_many, resolve_id
from omnicrm.identity.refresh import refresh_identity
from omnicrm.simulate.campaign_response import CHANNEL_EFFECTS, simulate_campaign
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import campaign_recipients, campaigns, link_clicks, segments
from omnicrm.store.state import StateStore
from tests.portrait.test_tags import INGESTED, line, ts, write

LAUNCH = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)  # 7-day window: [11-01, 11-08)
NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)


def phone(k: int) -> str:
    return f"139000000{k:02d}"


class Merchant:
    """Eleven customers (phones 13900000001 …), orders around a campaign launched on 2026-11-01."""

    def __init__(self, root: Path, state: StateStore) -> None:
        self.state = state
        self.facts = FactsStore(root / "facts")
        self.derived = DerivedStore(root / "derived")
        self.engine = Engine(self.facts)

    @functools.cached_property
    def ids(self) -> dict[int, int]:
        """Customer id by customer number, from the identity snapshot in force."""
        snapshot = self.derived.current("identity")
        assert snapshot is not None
        sql = f"SELECT value, customer_id FROM '{snapshot / 'identifiers.parquet'}' WHERE id_type = 'phone'"
        by_phone = dict(duckdb.connect().execute(sql).fetchall())
        normalised = normalise_many([("phone", phone(k)) for k in range(1, 12)])
        return {k: by_phone[v] for k, (v, _) in enumerate(normalised, start=1)}

    def customer(self, k: int) -> int:
        return self.ids[k]

    def campaign(self, name: str, channel: str, launched: bool = True) -> int:
        now = LAUNCH - dt.timedelta(days=1)
        with self.state.begin() as conn:
            audience = insert(segments).values(name=name, rule="{}", created_by="test", created_at=now, updated_at=now)
            segment = conn.execute(audience.returning(segments.c.id)).scalar_one()
            made = insert(campaigns).values(
                name=name, status="done" if launched else "draft", channel=channel, consent_channel=channel,
                segment_id=segment, content="{}", conversion_days=7, seed="1", created_by="test", created_at=now,
                updated_at=now, launched_at=LAUNCH if launched else None,
            )  # fmt: skip
            return int(conn.execute(made.returning(campaigns.c.id)).scalar_one())

    def recipients(self, campaign_id: int, rows: list[tuple[int, str, str]]) -> None:
        """(customer number, arm, status) rows; a sent message costs 0.05."""
        with self.state.begin() as conn:
            conn.execute(
                insert(campaign_recipients),
                [
                    {
                        "campaign_id": campaign_id, "step": "1", "customer_id": self.customer(k), "arm": arm,
                        "status": status, "idempotency_key": f"{campaign_id}:{k}", "assigned_at": LAUNCH,
                        "sent_at": LAUNCH if status == "sent" else None, "cost_micros": 50_000 if status == "sent" else 0,
                    }
                    for k, arm, status in rows
                ],
            )  # fmt: skip

    def click(self, campaign_id: int, k: int) -> None:
        at = LAUNCH + dt.timedelta(hours=1)
        with self.state.begin() as conn:
            conn.execute(
                insert(link_clicks).values(
                    campaign_id=campaign_id, step="1", customer_id=self.customer(k), link_no=1, at=at
                )
            )


@pytest.fixture
def shop(tmp_path: Path, sqlite_state: StateStore) -> Merchant:
    m = Merchant(tmp_path, sqlite_state)
    people = [
        {"source": "crm", "source_key": f"m{k}", "phone": phone(k), "observed_at": INGESTED} for k in range(1, 12)
    ]
    people[3]["member_card"] = "M004"  # customer 4 also shops in the store with a member card
    write(m.facts, "person", people, "import-0000000001")
    write(m.facts, "order_line", [
        line("T1", phone(1), "2026-11-02T03:00:00", 100.0, refunded=30.0, refunded_at=ts("2026-12-01T00:00:00")),
        line("T2", phone(2), "2026-11-03T03:00:00", 200.0, source="jd", refunded=50.0,
             refunded_at=ts("2026-11-10T00:00:00")),
        line("T2b", phone(2), "2026-11-06T03:00:00", 40.0),
        line("T3", phone(3), "2026-10-30T03:00:00", 80.0),  # before the launch
        line("P4", None, "2026-11-07T23:59:59", 60.0, source="pos", card="M004", store_code="S001"),
        line("T4", phone(4), "2026-11-08T00:00:00", 500.0),  # the window's end is not in it
        line("T6", phone(6), "2026-11-05T03:00:00", 300.0, refunded=300.0, refunded_at=ts("2026-11-09T00:00:00")),
        line("T7", phone(7), "2026-11-04T03:00:00", 100.0),
        line("T8", phone(8), "2026-11-20T03:00:00", 90.0),  # after the window
        line("T9", phone(9), "2026-11-30T03:00:00", 70.0),  # after now
        line("T11", phone(11), "2026-11-02T03:00:00", 999.0),  # an excluded customer's
    ], "import-0000000002")  # fmt: skip
    refresh_identity(m.state, m.engine, m.derived, probabilistic=False)
    assert lookup(m.derived.current("identity"), "member_card", "M004") == [m.customer(4)]  # one customer
    return m


def _launch_wechat(m: Merchant) -> int:
    cid = m.campaign("双11 预热", "wechat")
    m.recipients(cid, [
        (1, "treatment", "sent"), (2, "treatment", "sent"), (3, "treatment", "sent"), (4, "treatment", "sent"),
        (5, "treatment", "failed"), (6, "treatment", "sent"),
        (7, "holdout", "none"), (8, "holdout", "none"), (9, "holdout", "none"), (10, "holdout", "none"),
        (11, "excluded", "none"),
    ])  # fmt: skip
    for k in (1, 1, 2):
        m.click(cid, k)
    return cid


def test_hand_counted_campaign(shop: Merchant) -> None:
    cid = _launch_wechat(shop)
    got: CampaignMeasure = measure_campaign(shop.state, shop.engine, shop.derived, cid, NOW)
    t, h = got.treatment, got.holdout
    # treatment: 1 (100; its refund comes after now), 2 (200 − 50 + 40), 4 (in the store, 60; the order at the
    # window's end does not count), 6 (paid then refunded: converted, revenue 0); 3 bought before; 5's send failed
    assert (t.reached, t.delivered, t.clicked, t.converted, t.revenue) == (6, 5, 2, 4, 350.0)
    assert (h.reached, h.delivered, h.clicked, h.converted, h.revenue) == (4, 0, 0, 1, 100.0)
    assert got.cost == pytest.approx(0.25) and got.window_complete and got.channel == "wechat"
    conv = got.uplift.conversion
    assert conv.estimate == pytest.approx(4 / 6 - 1 / 4)
    assert (conv.low, conv.high) == pytest.approx(tuple(float(v) for v in newcombe_difference(4, 6, 1, 4)[1:]))
    assert got.uplift.verdict == NO_EFFECT  # six against four people: the interval covers zero
    welch = stats.ttest_ind([100, 190, 0, 60, 0, 0], [100, 0, 0, 0], equal_var=False).confidence_interval()
    rev = got.uplift.revenue_per_person
    assert (rev.estimate, rev.low, rev.high) == pytest.approx((350 / 6 - 25, welch.low, welch.high))
    assert got.incremental_conversions.estimate == pytest.approx(2.5)
    assert got.incremental_revenue.estimate == pytest.approx(200.0)
    assert got.roi is not None and got.roi.estimate == pytest.approx((200 - 0.25) / 0.25)
    assert got.as_dict()["treatment"]["converted"] == 4

    # not yet over: the orders known at 11-04 only, and the window still open
    early = measure_campaign(shop.state, shop.engine, shop.derived, cid, LAUNCH + dt.timedelta(days=3))
    assert (early.treatment.converted, early.holdout.converted, early.window_complete) == (2, 0, False)


def test_channel_report_and_campaigns_without_a_holdout(shop: Merchant) -> None:
    wechat = _launch_wechat(shop)
    sms = shop.campaign("短信召回", "sms")
    shop.recipients(sms, [(1, "treatment", "sent"), (3, "treatment", "sent")])
    shop.campaign("草稿", "email", launched=False)
    alone = measure_campaign(shop.state, shop.engine, shop.derived, sms, NOW)
    assert (alone.treatment.reached, alone.treatment.converted, alone.holdout.reached) == (2, 1, 0)
    assert alone.uplift.verdict == alone.uplift.revenue_verdict == NOT_ENOUGH
    assert alone.uplift.conversion.estimate is None and alone.incremental_revenue.estimate is None

    report = {c.channel: c for c in channel_report(shop.state, shop.engine, shop.derived, NOW)}
    assert sorted(report) == ["sms", "wechat"]  # the draft was never launched
    one = measure_campaign(shop.state, shop.engine, shop.derived, wechat, NOW)
    w = report["wechat"]
    assert (w.campaigns, w.measured_campaigns, w.treatment.converted, w.holdout.revenue) == (1, 1, 4, 100.0)
    assert w.uplift.conversion.estimate == pytest.approx(one.uplift.conversion.estimate)
    assert w.incremental_revenue.estimate == pytest.approx(200.0)
    assert (report["sms"].measured_campaigns, report["sms"].uplift.verdict) == (0, NOT_ENOUGH)
    assert report["sms"].cost == pytest.approx(0.1) and report["sms"].roi is not None


def test_unknown_campaign_and_bad_input(shop: Merchant) -> None:
    with pytest.raises(NotFound, match="no campaign 999"):
        measure_campaign(shop.state, shop.engine, shop.derived, 999, NOW)
    with pytest.raises(InputError, match="campaign id") as bad:
        measure_campaign(shop.state, shop.engine, shop.derived, 0, NOW)
    assert bad.value.problems[0].field == "campaign_id"
    cid = shop.campaign("x", "email")
    with pytest.raises(InputError, match="time zone"):
        measure_campaign(shop.state, shop.engine, shop.derived, cid, dt.datetime(2026, 11, 25))
    with pytest.raises(NotFound, match="no campaign 998"):
        channel_report(shop.state, shop.engine, shop.derived, NOW, campaign_ids=[cid, 998])
    # launched but not sent to anyone yet: measured as empty arms, not an error
    assert measure_campaign(shop.state, shop.engine, shop.derived, cid, NOW).uplift.verdict == NOT_ENOUGH


def test_intervals_against_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, table II, method 10
    published = {(56, 70, 48, 80): (0.0524, 0.3339), (9, 10, 3, 10): (0.1705, 0.8090), (5, 56, 0, 29): (-0.0381, 0.1926),
                 (0, 10, 0, 20): (-0.1611, 0.2775), (10, 10, 0, 20): (0.6791, 1.0)}  # fmt: skip
    cases = np.array(list(published), np.float64).T
    _, low, high = newcombe_difference(*cases)
    assert np.round(np.c_[low, high], 4).tolist() == [list(v) for v in published.values()]
    assert verdicts(low, high).tolist() == [
        "positive effect",
        "positive effect",
        NO_EFFECT,
        NO_EFFECT,
        "positive effect",
    ]
    assert verdicts([-0.3], [-0.1]).tolist() == ["negative effect"]
    rng = np.random.default_rng(3)
    a, b = rng.exponential(3.0, 40), rng.exponential(2.0, 25)
    _, lo, hi = welch_difference(a.mean(), a.var(ddof=1), a.size, b.mean(), b.var(ddof=1), b.size)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval()
    assert (float(lo), float(hi)) == pytest.approx((ci.low, ci.high))


def test_an_interval_covering_zero_says_no_measurable_effect() -> None:
    got = uplift(ArmStats.of([1, 0, 0, 0, 0], [50, 0, 0, 0, 0]), ArmStats.of([0, 1, 0, 0], [0, 40, 0, 0]))
    assert got.conversion.covers(0.0) and got.verdict == NO_EFFECT
    assert got.revenue_per_person.covers(0.0) and got.revenue_verdict == NO_EFFECT
    nobody = uplift(ArmStats.of([0] * 30, [0.0] * 30), ArmStats.of([0] * 10, [0.0] * 10))
    assert nobody.verdict == nobody.revenue_verdict == NO_EFFECT
    empty: Any = uplift(ArmStats.of([], []), ArmStats.of([1, 0], [9.0, 0.0]))
    assert empty.verdict == empty.revenue_verdict == NOT_ENOUGH and empty.conversion.low is None
    assert uplift(ArmStats.of([1], [5.0]), ArmStats.of([0], [0.0])).revenue_verdict == NOT_ENOUGH


def test_coverage_on_simulated_campaigns() -> None:
    rng = np.random.default_rng(20261125)
    channels = list(CHANNEL_EFFECTS)
    covered = revenue_covered = 0
    runs = 200
    for i in range(runs):
        sim = simulate_campaign(rng, people=8_000, channel=channels[i % len(channels)])
        t, h = sim.treated, ~sim.treated
        got = uplift(ArmStats.of(sim.converted[t], sim.revenue[t]), ArmStats.of(sim.converted[h], sim.revenue[h]))
        covered += got.conversion.covers(sim.true_effect)
        revenue_covered += got.revenue_per_person.covers(sim.true_revenue_effect)
    assert 0.9 <= covered / runs <= 0.99
    assert 0.9 <= revenue_covered / runs <= 0.99


def test_a_recipient_merged_since_the_launch_keeps_their_orders(shop: Merchant) -> None:
    cid = _launch_wechat(shop)
    five, one = shop.customer(5), shop.customer(1)
    # customer 5 (no orders) turns out to be customer 1 (an order in the window): OneID merges them after the launch
    write(shop.facts, "person", [
        {"source": "crm", "source_key": "m5b", "phone": phone(5), "member_card": "M005", "observed_at": INGESTED},
        {"source": "crm", "source_key": "m1b", "phone": phone(1), "member_card": "M005", "observed_at": INGESTED},
    ], "import-0000000003")  # fmt: skip
    refresh_identity(shop.state, shop.engine, shop.derived, probabilistic=False)
    assert resolve_id(shop.derived.current("identity"), five) == one != five  # the send log still says ``five``
    got = measure_campaign(shop.state, shop.engine, shop.derived, cid, NOW)
    assert (got.treatment.reached, got.treatment.converted, got.treatment.revenue) == (6, 5, 450.0)
