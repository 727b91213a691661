"""Tiers: qualify on what was earned in a rolling window, upgrade at once, downgrade at period end with grace."""

from __future__ import annotations

import datetime as dt

from omnicrm.loyalty.ledger import spend
from omnicrm.loyalty.lifecycle import activate_due
from omnicrm.loyalty.refunds import refund_order
from omnicrm.loyalty.tiers import Tier, TierProgram, evaluate_tiers, member_tier, period_end
from omnicrm.store.state import StateStore
from tests.loyalty.checks import give

CHINA = dt.timezone(dt.timedelta(hours=8))
PROGRAM = TierProgram(
    window_days=365,
    period_months=12,
    grace_days=30,
    tiers=[
        Tier(name="member", threshold=0),
        Tier(name="silver", threshold=500, coupons=["silver-welcome"]),
        Tier(name="gold", threshold=2000, earn_multiplier="1.5", coupons=["gold-welcome"], free_shipping=True),  # type: ignore[arg-type]
    ],
)


def day(y: int, m: int, d: int) -> dt.datetime:
    return dt.datetime(y, m, d, 12, tzinfo=CHINA)


def review(state: StateStore, when: dt.datetime, program: TierProgram = PROGRAM) -> list[tuple[int, str, str]]:
    return [(c.customer_id, c.change, c.to_tier) for c in evaluate_tiers(state, program, when)]


def test_periods_are_calendar_aligned_in_china_time() -> None:
    assert period_end(day(2026, 5, 3), 12) == dt.datetime(2027, 1, 1, tzinfo=CHINA)
    assert period_end(day(2026, 5, 3), 3) == dt.datetime(2026, 7, 1, tzinfo=CHINA)
    assert period_end(dt.datetime(2026, 12, 31, 17, tzinfo=dt.UTC), 1) == dt.datetime(2027, 2, 1, tzinfo=CHINA)


def test_upgrade_at_once_downgrade_at_period_end_after_grace(state: StateStore) -> None:
    give(state, 71, 600, "A", at=day(2026, 2, 1), window_days=15, expires_in_days=None)
    assert review(state, day(2026, 2, 5)) == []  # pending points do not count
    assert member_tier(state, 71, PROGRAM, day(2026, 2, 5)).qualifying == 0

    activate_due(state, day(2026, 2, 17))
    (up,) = evaluate_tiers(state, PROGRAM, day(2026, 2, 17))
    assert (up.change, up.from_tier, up.to_tier, up.coupons) == ("upgrade", None, "silver", ("silver-welcome",))
    silver = member_tier(state, 71, PROGRAM, day(2026, 2, 17))
    assert (silver.tier.name, silver.qualifying, silver.to_next) == ("silver", 600, 1400)
    assert silver.review_at == dt.datetime(2027, 1, 1, tzinfo=CHINA)

    give(state, 71, 1500, "B", at=day(2026, 3, 1), expires_in_days=None)
    assert review(state, day(2026, 3, 1)) == [(71, "upgrade", "gold")]
    gold = member_tier(state, 71, PROGRAM, day(2026, 3, 1))
    assert gold.tier.free_shipping and gold.tier.earn_multiplier == 1.5 and gold.next_tier is None

    spend(state, 71, 2100, by="t", at=day(2026, 3, 2))  # the balance does not qualify: what was earned does
    assert review(state, day(2026, 12, 31)) == []
    assert review(state, day(2027, 1, 2)) == [(71, "renewed", "gold")]  # still 2100 in the last 365 days
    assert review(state, day(2027, 6, 1)) == []  # below every threshold now, but the period runs until 2028
    assert review(state, day(2028, 1, 2)) == [(71, "grace", "gold")]
    kept = member_tier(state, 71, PROGRAM, day(2028, 1, 2))
    assert kept.tier.name == "gold" and kept.grace_until == dt.datetime(2028, 1, 31, tzinfo=CHINA)
    assert review(state, day(2028, 1, 15)) == []
    assert review(state, day(2028, 2, 1)) == [(71, "downgrade", "member")]
    history = member_tier(state, 71, PROGRAM, day(2028, 2, 1)).history
    assert [(h["change"], h["to"]) for h in history] == [
        ("upgrade", "silver"), ("upgrade", "gold"), ("renewed", "gold"), ("grace", "gold"), ("downgrade", "member"),
    ]  # fmt: skip


def test_without_grace_a_refund_downgrades_at_the_period_end(state: StateStore) -> None:
    monthly = PROGRAM.model_copy(update={"period_months": 1, "grace_days": 0})
    give(state, 72, 600, "M1", at=day(2026, 1, 10), expires_in_days=None, spend_cents=60_000)
    assert review(state, day(2026, 1, 10), monthly) == [(72, "upgrade", "silver")]
    refund_order(state, "tmall", "M1", by="t", at=day(2026, 1, 20))
    assert member_tier(state, 72, monthly, day(2026, 1, 20)).qualifying == 0
    assert review(state, day(2026, 1, 25), monthly) == []
    assert review(state, day(2026, 2, 1), monthly) == [(72, "downgrade", "member")]


def test_requalifying_during_grace_keeps_the_tier(state: StateStore) -> None:
    monthly = PROGRAM.model_copy(update={"period_months": 1, "grace_days": 10})
    give(state, 73, 600, "G1", at=day(2026, 1, 10), expires_in_days=None)
    review(state, day(2026, 1, 10), monthly)
    refund_order(state, "tmall", "G1", by="t", at=day(2026, 1, 12))
    assert review(state, day(2026, 2, 1), monthly) == [(73, "grace", "silver")]
    give(state, 73, 700, "G2", at=day(2026, 2, 3), expires_in_days=None)
    assert review(state, day(2026, 2, 5), monthly) == [(73, "renewed", "silver")]
    after = member_tier(state, 73, monthly, day(2026, 2, 5))
    assert after.grace_until is None and after.review_at == dt.datetime(2026, 3, 1, tzinfo=CHINA)


def test_spend_basis_counts_money_not_points(state: StateStore) -> None:
    by_spend = TierProgram(
        basis="spend", tiers=[Tier(name="member", threshold=0), Tier(name="silver", threshold=100_000)]
    )
    give(state, 74, 5, "S1", at=day(2026, 4, 1), spend_cents=60_000)
    assert review(state, day(2026, 4, 1), by_spend) == []
    give(state, 74, 5, "S2", at=day(2026, 4, 2), spend_cents=50_000)
    assert review(state, day(2026, 4, 2), by_spend) == [(74, "upgrade", "silver")]
    assert member_tier(state, 74, by_spend, day(2026, 4, 2)).qualifying == 110_000
