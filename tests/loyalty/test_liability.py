"""The liability report against a count by hand: outstanding points by expiry month, money, breakage."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from omnicrm.loyalty.ledger import Award, adjust, earn, spend
from omnicrm.loyalty.liability import ExpiryMonth, liability_report
from omnicrm.loyalty.lifecycle import expire_due
from omnicrm.loyalty.refunds import refund_order
from omnicrm.store.state import StateStore

CHINA = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2027, 1, 5, 12, tzinfo=CHINA)


def day(y: int, m: int, d: int) -> dt.datetime:
    return dt.datetime(y, m, d, 12, tzinfo=CHINA)


def month_end(y: int, m: int) -> dt.datetime:
    """Midnight China time after the last day of month ``m``."""
    return dt.datetime(y + m // 12, m % 12 + 1, 1, tzinfo=CHINA)


def lot(state: StateStore, customer: int, order: str, points: int, paid: dt.datetime, expires: dt.datetime | None,
        window_days: int = 0) -> None:  # fmt: skip
    made = earn(state, Award(customer, "tmall", order, points, paid, paid + dt.timedelta(days=window_days), expires),
                now=paid)  # fmt: skip
    assert made is not None


def test_liability_by_hand(state: StateStore) -> None:
    lot(state, 81, "A", 1000, day(2026, 3, 10), month_end(2027, 3))
    lot(state, 81, "B", 500, day(2026, 6, 10), month_end(2027, 6))
    spend(state, 81, 300, by="t", at=day(2026, 7, 1))  # from A, which expires first
    lot(state, 81, "C", 200, day(2027, 1, 1), month_end(2027, 6), window_days=15)  # still pending
    lot(state, 82, "D", 400, day(2025, 11, 1), month_end(2026, 12))
    assert expire_due(state, NOW).points == 400
    adjust(state, 82, 50, reason="goodwill", by="alice", at=day(2027, 1, 2))  # never expires
    adjust(state, 82, -20, reason="typo", by="alice", at=day(2027, 1, 3))
    lot(state, 83, "E", 100, day(2026, 9, 1), month_end(2027, 3))
    lot(state, 83, "F", 60, day(2026, 9, 2), None)
    spend(state, 83, 100, by="t", at=day(2026, 9, 3))  # all of E
    refund_order(state, "tmall", "E", by="t", at=day(2026, 9, 4))  # takes F's 60, forgives 40
    lot(state, 84, "G", 50, day(2026, 9, 1), month_end(2027, 3))
    spend(state, 84, 50, by="t", at=day(2026, 9, 3))
    refund_order(state, "tmall", "G", by="t", at=day(2026, 9, 4), policy="negative")  # owes 50

    report = liability_report(state, Decimal("0.05"), NOW)
    assert report.months == [
        ExpiryMonth("2027-03", 700, 0, Decimal("35.00")),
        ExpiryMonth("2027-06", 500, 200, Decimal("35.00")),
        ExpiryMonth("never", 30, 0, Decimal("1.50")),
    ]
    assert (report.outstanding, report.pending, report.overdue, report.debt) == (1430, 200, 0, 50)
    assert report.outstanding_money == Decimal("71.50")
    assert report.issued == 1000 + 500 + 200 + 400 + 50 + 100 + 60 + 50
    assert (report.redeemed, report.expired, report.reversed, report.written_off) == (450, 400, 60 + 50, 40)
    assert report.adjusted_out == 20
    assert report.balance == 1430 - 50
    assert report.breakage_rate == Decimal("0.4706")  # 400 expired of 850 that ended
    assert report.expected_breakage == 672  # floor(1430 x 0.4706)
    assert report.expected_breakage_money == Decimal("33.60")
    assert report.net_liability_money == Decimal("37.90")


def test_an_empty_ledger_owes_nothing(state: StateStore) -> None:
    report = liability_report(state, Decimal("0.01"), NOW)
    assert (report.months, report.outstanding, report.breakage_rate) == ([], 0, Decimal("0.0000"))
