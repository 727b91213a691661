"""The loyalty programme as every face uses it: the API, the console and the CLI show the same figures and make
changes the same way through these.

- Reading: the rules in force (saved, or the defaults before any are), a member's summary (balance, tier and the
  way to the next, coupons), members per tier and the latest tier changes.
- Changing: the points of one order under the saved rules (``earn_order``: an order earns once), a new tier
  programme saved with the rules (refused when the rules changed since ``base_version``), the coupons upgrades
  get, and the award of every order in the facts, in slices so that a long run can show its progress.

Every change goes through ``omnicrm.loyalty``: one transaction holding the member's lock, idempotent where a retry
could double it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, is_dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel
from sqlalchemy import func, select

from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.identity.explain import resolve_id
from omnicrm.loyalty.coupons import Coupon, customer_coupons, get_template, issue_many
from omnicrm.loyalty.earning import AwardResult, award_orders, order_facts
from omnicrm.loyalty.ledger import Balance, Lot, balance, lots
from omnicrm.loyalty.locks import utc, when
from omnicrm.loyalty.refunds import order_lot
from omnicrm.loyalty.rules import LoyaltyRules, load_rules, save_rules
from omnicrm.loyalty.tiers import MemberTier, TierChange, TierProgram, member_tier
from omnicrm.portrait.inputs import PortraitInputs
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.schema import member_tiers, point_accounts, tier_changes
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "AWARD_SLICE",
    "Member",
    "actor",
    "award_from_facts",
    "based_on",
    "current_rules",
    "earn_order",
    "issue_tier_coupons",
    "known_member",
    "member_json",
    "member_summary",
    "plain",
    "recent_tier_changes",
    "save_programme",
    "saved_rules",
    "templates_exist",
    "tier_counts",
    "tier_program",
]

AWARD_SLICE = 20_000  # orders per award_orders call, so a long award can show its progress


def plain(value: Any) -> Any:
    """``value`` ready for JSON: dataclasses and models as dicts, decimals as exact strings (never floats)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


def actor(who: str, store_code: str | None = None, guide_id: str | None = None) -> str:
    """Who made a change, as the ledger and the redemptions keep it: the key or user, and the till's store and
    guide when a till made it."""
    where = f" store:{store_code} guide:{guide_id}" if store_code else ""
    return (who + where)[:128]


def current_rules(state: StateStore) -> LoyaltyRules:
    """The saved rules in force, or the defaults (version 0) before any were saved."""
    try:
        return load_rules(state)
    except NotFound:
        return LoyaltyRules()


def saved_rules(state: StateStore) -> LoyaltyRules:
    """The saved rules in force; points are only computed under saved (numbered) rules."""
    try:
        return load_rules(state)
    except NotFound:
        raise NotFound(
            "no loyalty rules are saved yet, so no points can be computed",
            [Problem("save them with PUT /api/loyalty/rules or `omnicrm loyalty rules --set FILE`", "rules")],
        ) from None


def tier_program(rules: LoyaltyRules) -> TierProgram:
    if rules.tiers is None:
        raise NotFound(
            f"the loyalty rules (version {rules.version}) have no tier programme",
            [Problem("set one with PUT /api/loyalty/tiers or `omnicrm loyalty tiers --set FILE`", "tiers")],
        )
    return rules.tiers


def known_member(state: StateStore, identity: Path | None, customer_id: int) -> None:
    """Refuse a customer id OneID does not know (a typo would give points to nobody) or has merged into another;
    without an identity snapshot yet, or for a member the ledger already holds, the id is taken as it is."""
    if identity is None:
        return
    try:
        current = resolve_id(identity, customer_id)
    except NotFound:
        with state.connect() as conn:
            held = conn.execute(select(point_accounts.c.customer_id).where(point_accounts.c.customer_id == customer_id))
            if held.first() is None:
                raise NotFound(
                    f"customer {customer_id} is unknown",
                    [Problem("no customer has this id: look the member up by phone or member card", "customer_id")],
                ) from None
        return
    if current != customer_id:
        raise Conflict(
            f"customer {customer_id} was merged into customer {current}", [Problem(f"use {current}", "customer_id")]
        )


@dataclass(frozen=True)
class Member:
    """A member as the till, the console and the API show them: points, tier and coupons, read at ``at``."""

    customer_id: int
    balance: Balance
    tier: MemberTier | None
    coupons: list[Coupon]
    at: dt.datetime
    rules_version: int

    def coupon_status(self, c: Coupon) -> str:
        """issued, redeemed or expired (an unredeemed coupon past its date)."""
        return "expired" if c.expired(self.at) else c.status

    @property
    def usable_coupons(self) -> list[Coupon]:
        return [c for c in self.coupons if c.status == "issued" and c.starts_at <= self.at < c.expires_at]


def member_summary(state: StateStore, customer_id: int, rules: LoyaltyRules, now: dt.datetime | None = None) -> Member:
    at = when(now, utcnow(), "now")
    tier = member_tier(state, customer_id, rules.tiers, at) if rules.tiers is not None else None
    found = balance(state, customer_id, at)
    return Member(customer_id, found, tier, customer_coupons(state, customer_id), at, rules.version)


def member_json(m: Member) -> dict[str, Any]:
    b, t = m.balance, m.tier
    tier = None
    if t is not None:
        tier = {
            "name": t.tier.name, "qualifying": t.qualifying, "earn_multiplier": str(t.tier.earn_multiplier),
            "free_shipping": t.tier.free_shipping, "next": t.next_tier.name if t.next_tier else None,
            "to_next": t.to_next, "review_at": t.review_at, "grace_until": t.grace_until,
        }  # fmt: skip
    return {
        "customer_id": m.customer_id,
        "balance": {"available": b.available, "active": b.available + b.debt, "pending": b.pending,
                    "overdue": b.overdue, "debt": b.debt, "total": b.balance, "next_expiry": b.next_expiry},
        "tier": tier,
        "coupons": [{"code": c.code, "template_id": c.template_id, "status": m.coupon_status(c),
                     "starts_at": c.starts_at, "expires_at": c.expires_at, "redeemed_at": c.redeemed_at}
                    for c in m.coupons],
        "rules_version": m.rules_version,
        "at": m.at,
    }  # fmt: skip


def earn_order(
    state: StateStore, *, customer_id: int, source: str, order_id: str, paid: Decimal, by: str,
    paid_at: dt.datetime | None = None, channel: str | None = None, category: str | None = None,
) -> tuple[Lot | None, bool]:  # fmt: skip
    """The points of one order under the saved rules (with the member's tier multiplier), once: (its lot, whether
    this call wrote it). An order that already earned returns its lot; one that earns nothing returns None."""
    rules = saved_rules(state)
    now = utcnow()
    at = when(paid_at, now, "paid_at")
    if at > now:
        problem = Problem("give a time until now", "paid_at")
        raise InputError(f"order {source}:{order_id} is paid in the future", [problem])
    if paid <= 0 or paid != paid.quantize(Decimal("0.01")):
        raise InputError(f"order {source}:{order_id}: paid is money above zero, in yuan with at most 2 decimals",
                         [Problem(f"got {paid}", "paid")])  # fmt: skip
    found = _order_lot(state, source, order_id)
    wrote = False
    if found is None:
        one = pa.table({
            "customer_id": pa.array([customer_id], pa.int64()), "source": pa.array([source], pa.string()),
            "order_id": pa.array([order_id], pa.string()), "paid_at": pa.array([at], pa.timestamp("us", tz="UTC")),
            "paid": pa.array([paid], pa.decimal128(18, 2)), "channel": pa.array([channel or source], pa.string()),
            "category": pa.array([category], pa.string()),
        })  # fmt: skip
        wrote = award_orders(state, one, rules, now=now, by=by).awarded == 1
        found = _order_lot(state, source, order_id)
    if found is None:
        return None, False
    if found[0] != customer_id:
        raise Conflict(
            f"order {source}:{order_id} earned points for customer {found[0]}, not {customer_id}",
            [Problem("an order earns once, for its buyer", "order_id")],
        )
    lot = next(x for x in lots(state, customer_id) if x.id == found[1])
    return lot, wrote


def _order_lot(state: StateStore, source: str, order_id: str) -> tuple[int, int] | None:
    with state.connect() as conn:
        found = order_lot(conn, source, order_id)
    return None if found is None else (found.customer_id, found.lot_id)


def tier_counts(state: StateStore, program: TierProgram) -> list[tuple[str, int]]:
    """Members holding each tier (lowest first), then any tier the programme no longer has. Members who never had a
    tier reviewed hold the lowest tier without a row, so they are not counted."""
    with state.connect() as conn:
        held = {str(t): int(n) for t, n in conn.execute(
            select(member_tiers.c.tier, func.count()).group_by(member_tiers.c.tier)).all()}  # fmt: skip
    names = [t.name for t in program.tiers]
    return [(n, held.get(n, 0)) for n in names] + sorted((n, c) for n, c in held.items() if n not in names)


def recent_tier_changes(state: StateStore, *, limit: int, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Tier changes, newest first, a page at a time, and how many there are."""
    c = tier_changes
    with state.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(c)).scalar_one())
        rows = conn.execute(select(c).order_by(c.c.at.desc(), c.c.id.desc()).limit(limit).offset(offset)).all()
    return [{"customer_id": int(r.customer_id), "change": r.change, "from": r.from_tier, "to": r.to_tier,
             "qualifying": int(r.qualifying), "basis": r.basis, "at": utc(r.at)} for r in rows], total  # fmt: skip


def based_on(state: StateStore, base_version: int | None) -> LoyaltyRules:
    rules = current_rules(state)
    if base_version is not None and base_version != rules.version:
        raise Conflict(
            f"the loyalty rules are at version {rules.version}, not {base_version}: they were saved meanwhile",
            [Problem("reload them, make the change again and save", "base_version")],
        )
    return rules


def templates_exist(state: StateStore, programme: Any, where: str) -> None:
    """Refuse a tier programme (as sent) whose tiers give coupons of templates that do not exist; the shape of the
    rest is for ``save_rules`` to check."""
    tiers = programme.get("tiers") if isinstance(programme, dict) else None
    problems = []
    for i, tier in enumerate(tiers if isinstance(tiers, list) else []):
        names = tier.get("coupons") if isinstance(tier, dict) else None
        for j, template in enumerate(names if isinstance(names, list) else []):
            try:
                get_template(state, str(template))
            except NotFound:
                problems.append(Problem(f"no coupon template {template!r}", f"{where}tiers.{i}.coupons.{j}"))
    if problems:
        raise InputError("the tier programme names coupon templates that do not exist", problems)


def save_programme(
    state: StateStore, definition: dict[str, Any], *, by: str, base_version: int | None = None
) -> LoyaltyRules:
    """Save the rules in force with ``definition`` as their tier programme, as the next version."""
    rules = based_on(state, base_version)
    templates_exist(state, definition, "tiers.")
    return save_rules(state, {**rules.model_dump(mode="json"), "version": 0, "tiers": definition}, by=by,
                      note="tier programme changed")  # fmt: skip


def issue_tier_coupons(state: StateStore, changes: list[TierChange], *, by: str) -> dict[str, Any]:
    """Issue the coupons each upgrade's new tier gives (once per change: keyed by tier, template and moment)."""
    out: dict[str, Any] = {"issued": 0, "repeated": 0, "refused": 0, "problems": []}
    groups: dict[tuple[str, str, dt.datetime], list[int]] = {}
    for ch in changes:
        for template in ch.coupons:
            groups.setdefault((ch.to_tier, template, ch.at), []).append(ch.customer_id)
    for (tier, template, at), ids in sorted(groups.items()):
        try:
            result = issue_many(state, template, ids, key=f"tier:{tier}:{template}:{at:%Y%m%dT%H%M%S%f}", by=by)
        except (NotFound, InputError) as exc:
            out["refused"] += len(ids)
            out["problems"].append({"template_id": template, "message": exc.message})
            continue
        out["issued"] += len(result.issued)
        out["repeated"] += len(result.repeated)
        out["refused"] += len(result.refused)
    return out


def _orders_in(table: pa.Table) -> int:
    return table.group_by(["source", "order_id"]).aggregate([]).num_rows if table.num_rows else 0


def _order_slices(table: pa.Table, size: int) -> Iterator[pa.Table]:
    """``table`` in slices of about ``size`` orders, never splitting an order's rows."""
    n = table.num_rows
    if n == 0:
        return
    table = table.sort_by([("source", "ascending"), ("order_id", "ascending")]).combine_chunks()

    def changes(column: str) -> pa.Array:
        values = table[column].chunk(0)
        return pc.fill_null(pc.not_equal(values.slice(1), values.slice(0, n - 1)), True)

    new = pc.or_(changes("source"), changes("order_id")).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.concatenate([[True], new]))
    for i in range(0, len(starts), size):
        end = int(starts[i + size]) if i + size < len(starts) else n
        yield table.slice(int(starts[i]), end - int(starts[i]))


def award_from_facts(
    state: StateStore, engine: Engine, derived: DerivedStore, rules: LoyaltyRules, *, now: dt.datetime | None = None,
    by: str = "system", progress: Callable[[int, int], None] | None = None,
) -> AwardResult:  # fmt: skip
    """Award points for every order in the facts (OneID customers) under ``rules``; replays award nothing more and
    refunds that came in since reverse. ``progress(orders done, orders)`` is told after each slice."""
    at = when(now, utcnow(), "now")
    table = order_facts(PortraitInputs.load(engine, derived, at)).to_pyarrow()
    total = _orders_in(table)
    result = AwardResult()
    done = 0
    if progress is not None:
        progress(0, total)
    for part in _order_slices(table, AWARD_SLICE):
        result.add(award_orders(state, part, rules, now=at, by=by))
        done += _orders_in(part)
        if progress is not None:
            progress(done, total)
    return result
