"""Member tiers: qualify over a rolling window, upgrade at once, downgrade only at the end of a period.

What qualifies is what a member earned, never their balance: the points (or the money, ``basis="spend"``) of
orders paid inside the last ``window_days``, counting only lots that have activated (points still inside the
return window do not count) and net of refunds. Manual adjustments do not qualify.

``evaluate_tiers`` applies the rules to every member with earnings or a tier:

- qualifying for a higher tier: upgrade now, with a review at the end of the current period;
- qualifying for a lower tier: nothing until the review; at the review, with ``grace_days``, the member keeps the
  tier on grace until the grace ends, then moves down to the tier they qualify for (at once without grace);
- still qualifying at the review (or again during grace): renewed until the end of the next period.

Periods are calendar-aligned in China time (``period_months`` 12: reviews every 1 January). Each change is
recorded in ``tier_changes``; an upgrade names the coupons the new tier gives, for the coupon issuer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, bindparam, case, func, insert, select, update

from omnicrm.loyalty.locks import CHUNK, bump, chunks, lock_members, transaction, utc, when
from omnicrm.portrait.columns import CHINA
from omnicrm.store.schema import member_tiers, point_entries, point_lots, tier_changes
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "MemberTier",
    "Tier",
    "TierChange",
    "TierProgram",
    "evaluate_tiers",
    "member_tier",
    "period_end",
    "qualifying",
    "tier_multipliers",
]

L, E, T = point_lots, point_entries, member_tiers


def _rate(value: Decimal) -> Decimal:
    if value != value.quantize(Decimal("0.01")):
        raise ValueError("use at most two decimal places")
    return value


class Tier(BaseModel):
    """A tier and its benefits."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=32)
    threshold: int = Field(ge=0, description="points (or cents, basis spend) over the window to qualify")
    earn_multiplier: Annotated[Decimal, Field(ge=0, le=100), AfterValidator(_rate)] = Decimal(1)
    coupons: list[str] = Field(default_factory=list, description="coupon templates given on reaching the tier")
    free_shipping: bool = False


class TierProgram(BaseModel):
    """The tiers, lowest first (its threshold 0: everyone's tier), and how members qualify and keep them."""

    model_config = ConfigDict(extra="forbid")
    basis: Literal["points", "spend"] = "points"
    window_days: int = Field(default=365, ge=1, le=3660)
    period_months: Literal[1, 3, 6, 12] = 12
    grace_days: int = Field(default=0, ge=0, le=366)
    tiers: list[Tier] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> TierProgram:
        if self.tiers[0].threshold != 0:
            raise ValueError("the lowest tier needs threshold 0: it is every member's tier")
        if any(b.threshold <= a.threshold for a, b in zip(self.tiers, self.tiers[1:], strict=False)):
            raise ValueError("list the tiers lowest first, each with a higher threshold")
        if len({t.name for t in self.tiers}) != len(self.tiers):
            raise ValueError("tier names must differ")
        return self

    def index(self, name: str | None) -> int:
        names = [t.name for t in self.tiers]
        return names.index(name) if name in names else 0


@dataclass(frozen=True)
class TierChange:
    customer_id: int
    change: str  # upgrade, downgrade, grace or renewed
    from_tier: str | None
    to_tier: str
    qualifying: int
    at: dt.datetime
    coupons: tuple[str, ...] = ()  # to give, for an upgrade


@dataclass(frozen=True)
class MemberTier:
    customer_id: int
    tier: Tier
    qualifying: int
    next_tier: Tier | None
    to_next: int | None  # more points (or cents) needed for the next tier
    review_at: dt.datetime | None
    grace_until: dt.datetime | None
    history: list[dict[str, Any]] = field(default_factory=list)


def period_end(now: dt.datetime, months: int) -> dt.datetime:
    """The first calendar-aligned period boundary (midnight China time) after ``now``."""
    local = now.astimezone(CHINA)
    index = ((local.year * 12 + local.month - 1) // months + 1) * months
    return dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=CHINA).astimezone(dt.UTC)


def qualifying(conn: Connection, program: TierProgram, now: dt.datetime, customers: list[int]) -> dict[int, int]:
    """Each member's qualifying points (or cents) over the window ending ``now``, from activated lots only."""
    if program.basis == "points":
        value: Any = case((E.c.kind == "earn", E.c.points), else_=E.c.points - E.c.written_off)
    else:
        value = E.c.spend_cents
    start = now - dt.timedelta(days=program.window_days)
    rows = conn.execute(
        select(E.c.customer_id, func.sum(value))
        .select_from(E.join(L, L.c.id == E.c.lot_id))
        .where(
            E.c.customer_id.in_(customers),
            E.c.kind.in_(("earn", "reverse")),
            E.c.at <= now,
            L.c.activated_at.is_not(None),
            L.c.activated_at <= now,
            L.c.earned_at > start,
            L.c.earned_at <= now,
        )
        .group_by(E.c.customer_id)
    ).all()
    return {int(c): int(v or 0) for c, v in rows}


_NEVER = 2**62  # microseconds: far beyond any date, with room to add a grace period


def _micros(values: list[dt.datetime | None]) -> np.ndarray:
    never = _NEVER
    return np.array([never if v is None else int(utc(v).timestamp() * 1e6) for v in values], dtype=np.int64)


def _review(conn: Connection, *, members: list[int], program: TierProgram, now: dt.datetime,
            version: int | None) -> list[TierChange]:  # fmt: skip
    lock_members(conn, members, now)
    values = qualifying(conn, program, now, members)
    rows = {int(r.customer_id): r for r in conn.execute(select(T).where(T.c.customer_id.in_(members))).all()}
    ids = np.array(members, dtype=np.int64)
    value = np.array([values.get(c, 0) for c in members], dtype=np.int64)
    has = np.array([c in rows for c in members])
    cur = np.array([program.index(rows[c].tier) if c in rows else 0 for c in members])
    review = _micros([rows[c].review_at if c in rows else None for c in members])
    grace = _micros([rows[c].grace_until if c in rows else None for c in members])
    grace_set = grace != _NEVER
    thresholds = np.array([t.threshold for t in program.tiers], dtype=np.int64)
    q = np.maximum(np.searchsorted(thresholds, value, side="right") - 1, 0)
    t_now = int(now.timestamp() * 1e6)
    g = program.grace_days * 86_400_000_000
    over = has & (t_now >= review)
    up = q > cur
    renew = (q == cur) & over
    down = (q < cur) & over
    enter_grace = down & ~grace_set & (g > 0) & (t_now < review + g)
    downgrade = down & ~enter_grace & (~grace_set | (t_now >= grace))
    change = np.select([up, downgrade, enter_grace, renew], ["upgrade", "downgrade", "grace", "renewed"], "")
    new_tier = np.where(up | downgrade, q, cur)
    picked = np.flatnonzero(change != "")
    if picked.size == 0:
        return []
    nxt = period_end(now, program.period_months)
    out: list[TierChange] = []
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for i in picked.tolist():  # only the members whose tier changes
        c, kind = int(ids[i]), str(change[i])
        tier = program.tiers[int(new_tier[i])]
        old = rows.get(c)
        row = {
            "b_tier": tier.name, "b_since": now if kind in ("upgrade", "downgrade") else old.since,  # type: ignore[union-attr]
            "b_review": old.review_at if kind == "grace" else nxt,  # type: ignore[union-attr]
            "b_grace": (utc(old.review_at) + dt.timedelta(days=program.grace_days)) if kind == "grace" else None,  # type: ignore[union-attr]
            "b_version": version, "b_updated": now, "b_cid": c,
        }  # fmt: skip
        (updates if old is not None else inserts).append(row)
        coupons = tuple(tier.coupons) if kind == "upgrade" else ()
        out.append(TierChange(c, kind, old.tier if old else None, tier.name, int(value[i]), now, coupons))
    if inserts:
        conn.execute(insert(T), [{
            "customer_id": r["b_cid"], "tier": r["b_tier"], "since": r["b_since"], "review_at": r["b_review"],
            "grace_until": r["b_grace"], "rule_version": version, "updated_at": now,
        } for r in inserts])  # fmt: skip
    if updates:
        conn.execute(
            update(T).where(T.c.customer_id == bindparam("b_cid")).values(
                tier=bindparam("b_tier"), since=bindparam("b_since"), review_at=bindparam("b_review"),
                grace_until=bindparam("b_grace"), rule_version=bindparam("b_version"),
                updated_at=bindparam("b_updated"),
            ),
            updates,
        )  # fmt: skip
    conn.execute(insert(tier_changes), [{
        "customer_id": ch.customer_id, "change": ch.change, "from_tier": ch.from_tier, "to_tier": ch.to_tier,
        "qualifying": ch.qualifying, "basis": program.basis, "rule_version": version, "at": now,
    } for ch in out])  # fmt: skip
    bump(conn, [ch.customer_id for ch in out], now)
    return out


def evaluate_tiers(
    state: StateStore, program: TierProgram, now: dt.datetime | None = None, *, customers: list[int] | None = None,
    rule_version: int | None = None,
) -> list[TierChange]:  # fmt: skip
    """Review the tiers of ``customers`` (default: everyone who earned in the window or holds a tier) at ``now``.

    Run it after ``activate_due`` (daily, say): upgrades then follow activation at once. Each chunk of members is
    one transaction holding their locks, so a concurrent run or refund cannot interleave."""
    at = when(now, utcnow(), "now")
    if customers is None:
        start = at - dt.timedelta(days=program.window_days)
        with state.connect() as conn:
            earned = select(L.c.customer_id).where(L.c.activated_at.is_not(None), L.c.earned_at > start)
            held = select(T.c.customer_id)
            customers = sorted({int(c) for c in conn.execute(earned.union(held)).scalars()})
    out: list[TierChange] = []
    for part in chunks(sorted(set(customers)), CHUNK):
        work = partial(_review, members=list(part), program=program, now=at, version=rule_version)
        out += transaction(state, work)
    return out


def member_tier(
    state: StateStore, customer_id: int, program: TierProgram, now: dt.datetime | None = None
) -> MemberTier:
    """The member's tier and benefits, what they qualify with now, and how far the next tier is."""
    at = when(now, utcnow(), "now")
    with state.connect() as conn:
        value = qualifying(conn, program, at, [customer_id]).get(customer_id, 0)
        row = conn.execute(select(T).where(T.c.customer_id == customer_id)).first()
        changes = conn.execute(
            select(tier_changes).where(tier_changes.c.customer_id == customer_id).order_by(tier_changes.c.id)
        ).all()
    index = program.index(row.tier if row else None)
    nxt = program.tiers[index + 1] if index + 1 < len(program.tiers) else None
    return MemberTier(
        customer_id, program.tiers[index], value, nxt, max(nxt.threshold - value, 0) if nxt else None,
        utc(row.review_at) if row else None, utc(row.grace_until) if row and row.grace_until else None,
        [{"change": c.change, "from": c.from_tier, "to": c.to_tier, "at": utc(c.at)} for c in changes],
    )  # fmt: skip


def tier_multipliers(state: StateStore, program: TierProgram | None) -> pa.Table | None:
    """customer_id and tier_multiplier of every member whose tier earns other than 1x (for ``order_points``)."""
    if program is None:
        return None
    special = [t for t in program.tiers if t.earn_multiplier != 1]
    if not special:
        return None
    with state.connect() as conn:
        rows = conn.execute(select(T.c.customer_id, T.c.tier).where(T.c.tier.in_([t.name for t in special]))).all()
    ids = pa.array([int(r[0]) for r in rows], pa.int64())
    names = pa.array([r[1] for r in rows], pa.string())
    rates = pa.array([t.earn_multiplier for t in special], pa.decimal128(5, 2))
    at = pc.index_in(names, value_set=pa.array([t.name for t in special], pa.string()))
    return pa.table({"customer_id": ids, "tier_multiplier": rates.take(at)})
