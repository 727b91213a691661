"""The stored-value report: what the merchant owes in stored value (paid vs bonus), and the money per store and day.

The liability is the sum of every member's balance, split into paid money (a debt: refundable cash taken in advance)
and bonus (a promise the merchant gave away, never paid back in cash). Day rows group the entries by calendar day
in China time and by store: top-ups (paid and bonus), spends (paid and bonus taken), refunds of spends, refunds of
top-ups (paid money handed back, bonus cancelled), reversals, and the net change. Every figure is grouped SQL over the
ledger, read in one snapshot, and they reconcile: the net of every row ever = the liability.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, case, func, select

from omnicrm.loyalty.locks import when
from omnicrm.portrait.columns import CHINA
from omnicrm.store.schema import stored_value_entries
from omnicrm.store.state import StateStore, utcnow

__all__ = ["DayRow", "Liability", "Report", "report"]

E = stored_value_entries


@dataclass(frozen=True)
class Liability:
    """Outstanding stored value over every member, in fen."""

    as_of: datetime
    paid_fen: int = 0
    bonus_fen: int = 0
    members: int = 0  # members holding any

    @property
    def total_fen(self) -> int:
        return self.paid_fen + self.bonus_fen


@dataclass(frozen=True)
class DayRow:
    """One store's stored-value money on one day (China time), in fen; taken and given back amounts are positive."""

    day: str  # YYYY-MM-DD
    store_code: str
    topups: int
    topped_up_paid_fen: int
    topped_up_bonus_fen: int
    spends: int
    spent_paid_fen: int
    spent_bonus_fen: int
    refunded_fen: int  # refunds of spends, back into stored value
    topups_refunded_fen: int  # paid money handed back by refunds of top-ups
    bonus_cancelled_fen: int  # bonus cancelled by refunds of top-ups
    reversed_fen: int  # the net of reversals (signed)
    net_fen: int  # the change of the balances

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Report:
    liability: Liability
    days: list[DayRow] = field(default_factory=list)
    total_rows: int = 0  # day rows in the period (``days`` is one page of them)


def _day(conn: Connection) -> Any:
    """An entry's calendar day in China time, as YYYY-MM-DD text (SQLite keeps times as naive UTC text)."""
    if conn.dialect.name == "postgresql":
        return func.to_char(func.timezone("Asia/Shanghai", E.c.at), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", E.c.at, "+8 hours")


def _sum(kind: str, value: Any) -> Any:
    return func.coalesce(func.sum(case((E.c.kind == kind, value), else_=0)), 0)


def _count(kind: str) -> Any:
    return func.coalesce(func.sum(case((E.c.kind == kind, 1), else_=0)), 0)


def report(
    state: StateStore, *, since: date | None = None, until: date | None = None, limit: int = 100, offset: int = 0,
    now: datetime | None = None,
) -> Report:  # fmt: skip
    """The liability now, and one page of day rows (newest day first, then by store) from ``since`` to ``until``
    (inclusive calendar days in China time; open-ended when None)."""
    as_of = when(now, utcnow(), "now")
    per_member = select(E.c.customer_id, func.sum(E.c.amount_fen).label("left")).group_by(E.c.customer_id).subquery()
    conds = []  # bounds in UTC: SQLite compares times as naive UTC text
    if since is not None:
        conds.append(E.c.at >= datetime.combine(since, time(), CHINA).astimezone(UTC))
    if until is not None:
        conds.append(E.c.at < datetime.combine(until + timedelta(days=1), time(), CHINA).astimezone(UTC))
    with state.connect() as conn:
        if conn.dialect.name == "postgresql":  # every statement reads one snapshot (SQLite: one transaction)
            conn.execution_options(isolation_level="REPEATABLE READ")
        paid, bonus = conn.execute(
            select(func.coalesce(func.sum(E.c.paid_fen), 0), func.coalesce(func.sum(E.c.bonus_fen), 0))
        ).one()
        members = conn.execute(select(func.count()).select_from(per_member).where(per_member.c.left != 0)).scalar_one()
        day = _day(conn).label("day")
        grouped = (
            select(
                day, E.c.store_code, _count("topup"), _sum("topup", E.c.paid_fen), _sum("topup", E.c.bonus_fen),
                _count("spend"), _sum("spend", -E.c.paid_fen), _sum("spend", -E.c.bonus_fen),
                _sum("refund", E.c.amount_fen), _sum("topup_refund", -E.c.paid_fen),
                _sum("topup_refund", -E.c.bonus_fen), _sum("reversal", E.c.amount_fen), func.sum(E.c.amount_fen),
            )
            .where(*conds)
            .group_by(day, E.c.store_code)
        )  # fmt: skip
        total = conn.execute(select(func.count()).select_from(grouped.subquery())).scalar_one()
        rows = conn.execute(grouped.order_by(day.desc(), E.c.store_code).limit(limit).offset(offset)).all()
    liability = Liability(as_of, int(paid), int(bonus), int(members))
    days = [DayRow(str(r[0]), r[1], *(int(v) for v in r[2:])) for r in rows]
    return Report(liability, days, int(total))
