"""The points liability: what the merchant owes in points, when it expires, what it is worth, and breakage.

Outstanding points are the remaining points of open lots (active and pending: a pending point is owed unless its
order is refunded), by the last month they can be used (China time; "never" for lots without expiry), valued at the
rules' ``point_value``. Breakage is the share of points that end unused: expired / (expired + redeemed) over the whole
ledger so far; applied to the outstanding points it estimates the part that will never be redeemed, so the net
liability is outstanding less that expected breakage (the usual IFRS 15 treatment of loyalty points).

Every figure is a sum over the ledger read in one snapshot, and they reconcile:
issued - redeemed - expired - reversed - adjusted_out = outstanding - debt = Σ entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import case, func, select

from omnicrm.loyalty.draws import OPEN, remaining
from omnicrm.loyalty.locks import utc, when
from omnicrm.portrait.columns import CHINA
from omnicrm.store.schema import point_entries, point_lots
from omnicrm.store.state import StateStore, utcnow

__all__ = ["ExpiryMonth", "Liability", "liability_report"]

L, E = point_lots, point_entries
CENT = Decimal("0.01")
_TICK = timedelta(microseconds=1)


def _money(points: int, value: Decimal) -> Decimal:
    return (Decimal(points) * value).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class ExpiryMonth:
    month: str  # YYYY-MM (China time) or "never"
    active: int
    pending: int
    money: Decimal

    @property
    def points(self) -> int:
        return self.active + self.pending


@dataclass(frozen=True)
class Liability:
    as_of: datetime
    point_value: Decimal
    months: list[ExpiryMonth] = field(default_factory=list)
    outstanding: int = 0  # remaining points of open lots
    outstanding_money: Decimal = Decimal("0.00")
    pending: int = 0  # of which inside the return window
    overdue: int = 0  # of which past their expiry, waiting for expire_due
    debt: int = 0  # points members owe from refunds (negative balances, policy negative)
    issued: int = 0  # earned and credited by adjustments
    redeemed: int = 0  # spent
    expired: int = 0
    reversed: int = 0  # taken back by refunds
    written_off: int = 0  # refunded points forgiven because they were already spent (policy forgive)
    adjusted_out: int = 0  # taken by manual adjustments
    breakage_rate: Decimal = Decimal("0.0000")  # expired / (expired + redeemed)
    expected_breakage: int = 0  # outstanding points expected never to be redeemed
    expected_breakage_money: Decimal = Decimal("0.00")
    net_liability_money: Decimal = Decimal("0.00")  # outstanding money less expected breakage

    @property
    def balance(self) -> int:
        """Σ entries over every member: outstanding - debt."""
        return self.issued - self.redeemed - self.expired - self.reversed - self.adjusted_out


def liability_report(state: StateStore, point_value: Decimal, now: datetime | None = None) -> Liability:
    """The liability now (``now`` only decides which open points count as overdue), valued at ``point_value``."""
    at = when(now, utcnow(), "now")
    lots = select(L.c.status, L.c.expires_at, remaining()).where(L.c.status.in_(OPEN)).subquery()
    by_expiry = select(lots.c.expires_at, lots.c.status, func.sum(lots.c.remaining)).group_by(
        lots.c.expires_at, lots.c.status
    )
    plus, minus = case((E.c.points > 0, E.c.points), else_=0), case((E.c.points < 0, -E.c.points), else_=0)
    by_kind = select(E.c.kind, func.sum(plus), func.sum(minus), func.sum(E.c.written_off)).group_by(E.c.kind)
    with state.connect() as conn:
        if conn.dialect.name == "postgresql":  # both statements read one snapshot (SQLite: the write lock)
            conn.execution_options(isolation_level="REPEATABLE READ")
        open_rows = conn.execute(by_expiry).all()
        kind_rows = conn.execute(by_kind).all()
    buckets: dict[str, list[int]] = {}
    overdue = 0
    for expires_at, status, left in open_rows:
        points = int(left or 0)
        # lots expire at a midnight: label them with the month of their last usable moment (the end of March)
        month = "never" if expires_at is None else (utc(expires_at) - _TICK).astimezone(CHINA).strftime("%Y-%m")
        if expires_at is not None and utc(expires_at) <= at and status == "active":
            overdue += points
        bucket = buckets.setdefault(month, [0, 0])
        bucket[0 if status == "active" else 1] += points
    months = [
        ExpiryMonth(m, a, p, _money(a + p, point_value))
        for m, (a, p) in sorted(buckets.items(), key=lambda kv: (kv[0] == "never", kv[0]))
    ]
    sums = {kind: (int(p or 0), int(m or 0), int(w or 0)) for kind, p, m, w in kind_rows}
    issued = sums.get("earn", (0, 0, 0))[0] + sums.get("adjust", (0, 0, 0))[0]
    redeemed = sums.get("spend", (0, 0, 0))[1]
    expired = sums.get("expire", (0, 0, 0))[1]
    reversed_, written_off = sums.get("reverse", (0, 0, 0))[1], sums.get("reverse", (0, 0, 0))[2]
    adjusted_out = sums.get("adjust", (0, 0, 0))[1]
    outstanding = sum(m.points for m in months)
    balance = issued - redeemed - expired - reversed_ - adjusted_out
    ended = expired + redeemed
    rate = (Decimal(expired) / Decimal(ended)).quantize(Decimal("0.0001")) if ended else Decimal("0.0000")
    expected = int(Decimal(outstanding) * rate)
    outstanding_money = _money(outstanding, point_value)
    expected_money = _money(expected, point_value)
    return Liability(
        as_of=at, point_value=point_value, months=months, outstanding=outstanding,
        outstanding_money=outstanding_money, pending=sum(m.pending for m in months), overdue=overdue,
        debt=outstanding - balance, issued=issued, redeemed=redeemed, expired=expired, reversed=reversed_,
        written_off=written_off, adjusted_out=adjusted_out, breakage_rate=rate, expected_breakage=expected,
        expected_breakage_money=expected_money, net_liability_money=outstanding_money - expected_money,
    )  # fmt: skip
