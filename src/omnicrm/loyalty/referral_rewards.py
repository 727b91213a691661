"""Rewarding referrals once the referee's first paid order is past its return window; the referrals report.

``settle_referrals`` is set-based over a table of orders (``rules.ORDER_COLUMNS``, e.g. ``earning.order_facts``),
like ``earning.award_orders``: one Ibis expression finds, for every pending referral, the referee's paid orders from
before it and their first paid order since. Then each pending referral is

- void, with the reason and what shows it, when OneID now puts the referee and the referrer together (self), when
  an earlier referral has the same person under another identifier (already referred), when it closes a ring of
  referrals, when the referee had paid for an order before it (not new), or when the first order was wholly
  refunded (refunded);
- left pending while OneID does not know the referee yet, there is no paid order, or its return window is not over;
- rewarded otherwise, one level only: in one transaction that holds the referral's row and both members' locks, the
  points of each side become one lot in the ledger (``ledger.write_awards``, source ``referral`` and order id
  ``<id>:referrer`` or ``<id>:referee``: earned once, whatever runs) and the referral is marked rewarded. Coupons
  follow, each issued with the idempotency key ``referral:<id>:referrer|referee`` (``coupons.issue``); every run
  issues the ones still owed, so a coupon a crash left out comes with the next run, and never twice.

Running again, or twice at once, rewards nothing more: a referral changes only while it is still pending, under its
row's lock (``FOR UPDATE``; on SQLite the write transaction is alone).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import Connection, case, func, select, update

from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.identity.explain import CustomerIdentity, explain_customer
from omnicrm.loyalty.coupons import issue
from omnicrm.loyalty.ledger import Award, write_awards
from omnicrm.loyalty.locks import chunks, transaction, utc, when
from omnicrm.loyalty.referrals import (
    Referral,
    ReferralProgramme,
    ids_in_force,
    load_programme,
    referral_of,
    why_already,
    why_not_new,
    why_ring,
    why_self,
)
from omnicrm.loyalty.rules import ORDER_COLUMNS
from omnicrm.store.engine import duckdb_backend
from omnicrm.store.schema import referral_codes, referrals
from omnicrm.store.state import StateStore, utcnow

__all__ = ["STATUSES", "SettleResult", "first_orders", "referral_page", "referral_report", "settle_referrals"]

R = referrals
STATUSES = ("pending", "rewarded", "void", "refused")
SIDES = ("referrer", "referee")
_MONEY = "decimal(38, 2)"


@dataclass
class SettleResult:
    """What one run of ``settle_referrals`` did."""

    pending: int = 0  # pending referrals looked at
    waiting: int = 0  # still pending: referee unknown to OneID, no paid order, or inside the return window
    rewarded: int = 0  # rewarded by this run
    void: dict[str, int] = field(default_factory=dict)  # voided by this run, per reason
    points: int = 0  # points given by this run (both sides)
    coupons: int = 0  # coupons issued by this run
    coupon_problems: int = 0  # coupons owed that could not be issued (the reason is kept on the referral)
    already: int = 0  # settled meanwhile by another run


def first_orders(orders: ir.Table, wanted: ir.Table, now: datetime) -> ir.Table:
    """Per referral of ``wanted`` (referral_id, customer_id, recorded_at): the referee's paid orders before it
    (``prior``, the first of them) and their first paid order since (source, order_id, paid_at, paid, refunded).
    Orders paid after ``now`` are not seen yet."""
    missing = [c for c in ("customer_id", "source", "order_id", "paid_at", "paid") if c not in orders.columns]
    if missing:
        raise InputError(
            "the orders lack columns", [Problem(f"missing; expected {ORDER_COLUMNS[c]}", c) for c in missing]
        )
    t = orders.mutate(
        _paid=orders.paid.cast(_MONEY).fill_null(0),
        _refunded=orders.refunded.cast(_MONEY).fill_null(0) if "refunded" in orders.columns else ibis.literal(
            Decimal(0), _MONEY),
    )  # fmt: skip
    o = t.group_by(["customer_id", "source", "order_id"]).aggregate(
        paid_at=t.paid_at.min(), paid=t._paid.sum(), refunded=t._refunded.sum()
    )
    cutoff = ibis.timestamp(utc(now).replace(tzinfo=None).isoformat())
    o = o.filter((o.paid > 0) & (o.paid_at <= cutoff))
    j = wanted.inner_join(o, "customer_id")
    before = j.filter(j.paid_at < j.recorded_at)
    prior = before.group_by("referral_id").aggregate(
        prior=before.count(), prior_order=(before.source + " order " + before.order_id).argmin(before.paid_at),
        prior_at=before.paid_at.min(),
    )  # fmt: skip
    since = j.filter(j.paid_at >= j.recorded_at)
    since = since.mutate(n=ibis.row_number().over(group_by="referral_id",
                                                 order_by=[since.paid_at, since.source, since.order_id]))  # fmt: skip
    first = since.filter(since.n == 0).select("referral_id", "source", "order_id", "paid_at", "paid", "refunded")
    out = wanted.select("referral_id").left_join(prior, "referral_id").select(
        "referral_id", "prior", "prior_order", "prior_at")  # fmt: skip
    out = out.left_join(first, "referral_id")
    return out.select("referral_id", "prior", "prior_order", "prior_at", "source", "order_id", "paid_at", "paid",
                      "refunded")  # fmt: skip


def _resolved(snapshot: Path | None, rows: Sequence[Any]) -> dict[int, tuple[int, int | None]]:
    """Per referral: (referrer, referee) as OneID has them now; the referee by their key when one customer holds it,
    else as recorded; None when OneID does not know them."""
    keys: dict[str, int] = {}
    if snapshot is not None and rows:
        con = duckdb.connect()
        con.register("asked", pa.table({"key": sorted({r.referee_key for r in rows})}))
        keys = dict(con.execute(f"SELECT key, min(customer_id) FROM read_parquet('{snapshot / 'identifiers.parquet'}')"
                                " JOIN asked USING (key) GROUP BY key HAVING count(DISTINCT customer_id) = 1"
                                ).fetchall())  # fmt: skip
    ids = {int(r.referrer_id) for r in rows} | {int(r.referee_id) for r in rows if r.referee_id is not None}
    now_ids = ids_in_force(snapshot, sorted(ids))
    out = {}
    for r in rows:
        referee = keys.get(r.referee_key, now_ids.get(r.referee_id) if r.referee_id is not None else None)
        out[int(r.id)] = (now_ids[int(r.referrer_id)], None if referee is None else int(referee))
    return out


def _identity(snapshot: Path | None, customer_id: int) -> CustomerIdentity | None:
    return explain_customer(snapshot, customer_id) if snapshot is not None else None


def _oneid_reason(
    snapshot: Path | None, r: Any, people: dict[int, tuple[int, int | None]], first: dict[int, Any]
) -> dict[str, Any] | None:
    """Why OneID and the earlier referrals now void ``r`` (self, already referred, ring), or None. ``first`` is
    the earliest referral of each referee, by their customer id now."""
    rid, (referrer, referee) = int(r.id), people[int(r.id)]
    assert referee is not None
    if referee == referrer:
        return why_self(_identity(snapshot, referee), r.referee_key, r.referee_type, referee)
    same = first.get(referee)
    if same is not None and int(same.id) < rid:
        keys, by = [r.referee_key, same.referee_key], people[int(same.id)][0]
        return why_already(_identity(snapshot, referee), keys, f"customer {referee}", int(same.id), by)
    chain: list[dict[str, int]] = []
    seen, current = {referrer}, referrer
    while current in first and int(first[current].id) < rid:
        up = people[int(first[current].id)][0]
        chain.append({"referral_id": int(first[current].id), "referrer_id": up, "referee_id": current})
        if up == referee:
            return why_ring(chain, referee, referrer)
        if up in seen:
            break
        seen.add(up)
        current = up
    return None


def _decide(found: dict[str, Any], window: int, now: datetime) -> tuple[str, dict[str, Any]]:
    """('void', why) for orders that void the referral, ('wait', first order) or ('reward', first order)."""
    if found.get("prior"):
        orders = [{"order": found["prior_order"], "at": utc(found["prior_at"]).isoformat()}]
        return "void", why_not_new(orders, found["referee"])
    if found.get("order_id") is None:
        return "wait", {}
    paid_at = utc(found["paid_at"])
    order = {"order_source": found["source"], "order_id": found["order_id"], "order_paid_at": paid_at,
             "due_at": paid_at + timedelta(days=window)}  # fmt: skip
    if found["refunded"] >= found["paid"]:
        what = f"{found['source']} order {found['order_id']}"
        return "void", {"reason": "refunded", "summary": f"the referee's first paid order, {what}, was refunded",
                        "details": [f"paid {found['paid']}, refunded {found['refunded']}"], "order": order}  # fmt: skip
    return ("reward" if order["due_at"] <= now else "wait"), order


def _pending_rows(conn: Connection, ids: list[int]) -> list[int]:
    """Lock the referrals' rows (in id order) and return those still pending."""
    q = select(R.c.id, R.c.status).where(R.c.id.in_(ids)).order_by(R.c.id).with_for_update()
    return [int(i) for i, status in conn.execute(q).all() if status == "pending"]


def _write_voids(conn: Connection, *, voids: dict[int, dict[str, Any]], now: datetime) -> list[int]:
    """Void the referrals still pending, keeping why (and the first order, if that was it); the ones voided."""
    done = _pending_rows(conn, sorted(voids))
    for rid in done:
        why = {k: v for k, v in voids[rid].items() if k != "order"}
        conn.execute(update(R).where(R.c.id == rid).values(
            status="void", reason=why["reason"], explanation=json.dumps(why, ensure_ascii=False, default=str),
            settled_at=now, **voids[rid].get("order", {})))  # fmt: skip
    return done


def _write_waits(conn: Connection, *, waits: list[dict[str, Any]]) -> None:
    """What is known of referrals still waiting: who they are now, their first order and when it is due."""
    for w in waits:
        values = {k: v for k, v in w.items() if k != "rid"}
        conn.execute(update(R).where(R.c.id == w["rid"], R.c.status == "pending").values(**values))


def _write_rewards(
    conn: Connection, *, rewards: dict[int, dict[str, Any]], programmes: dict[int, ReferralProgramme], now: datetime,
    by: str,
) -> tuple[int, int]:  # fmt: skip
    """Reward the referrals still pending: their points as lots, their coupons owed; (referrals, points)."""
    done = _pending_rows(conn, sorted(rewards))
    awards = []
    for rid in done:
        r = rewards[rid]
        p = programmes[r["version"]]
        expires = now + timedelta(days=p.points_valid_days) if p.points_valid_days else None
        for side in SIDES:
            points = getattr(p, f"{side}_points")
            if points:
                awards.append(Award(r[side], "referral", f"{rid}:{side}", points, now, now, expires, p.version, 0,
                                    {"referral": rid, "side": side, "order": r["order_id"]}))  # fmt: skip
    written = write_awards(conn, awards=awards, by=by, now=now) if awards else []
    for rid in done:
        r, p = rewards[rid], programmes[rewards[rid]["version"]]
        conn.execute(update(R).where(R.c.id == rid).values(
            status="rewarded", settled_at=now, referrer_id=r["referrer"], referee_id=r["referee"],
            order_source=r["order_source"], order_id=r["order_id"], order_paid_at=r["order_paid_at"],
            due_at=r["due_at"], referrer_points=p.referrer_points, referee_points=p.referee_points,
            referrer_template=p.referrer_coupon, referee_template=p.referee_coupon))  # fmt: skip
    return len(done), sum(lot.points for lot in written)


def _issue_owed(state: StateStore, now: datetime, by: str, result: SettleResult) -> None:
    """Issue the coupons rewarded referrals still owe (idempotent by key), and note each code or why not."""
    owed = [(side, R.c[f"{side}_template"], R.c[f"{side}_coupon"], R.c[f"{side}_coupon_problem"]) for side in SIDES]
    with state.connect() as conn:
        rows = conn.execute(select(R).where(R.c.status == "rewarded", func.coalesce(*(
            case((t.is_not(None) & c.is_(None) & p.is_(None), 1)) for _, t, c, p in owed), 0) == 1
        ).order_by(R.c.id)).all()  # fmt: skip
    for row in rows:
        for side in SIDES:
            template = getattr(row, f"{side}_template")
            if template is None or getattr(row, f"{side}_coupon") or getattr(row, f"{side}_coupon_problem"):
                continue
            try:
                key = f"referral:{row.id}:{side}"
                coupon = issue(state, template, int(getattr(row, f"{side}_id")), idempotency_key=key, by=by,
                               campaign_id=f"referral:{row.id}", now=now)  # fmt: skip
                values, problem = {f"{side}_coupon": coupon.code}, False
            except (Conflict, InputError, NotFound) as exc:
                values, problem = {f"{side}_coupon_problem": exc.message}, True
            with state.begin() as conn:  # only the run that notes it counts it (the coupon is one, whoever issued)
                unnoted = (R.c[f"{side}_coupon"].is_(None), R.c[f"{side}_coupon_problem"].is_(None))
                noted = conn.execute(update(R).where(R.c.id == row.id, *unnoted).values(**values))
            if noted.rowcount:
                result.coupon_problems += problem
                result.coupons += not problem


def settle_referrals(
    state: StateStore, orders: pa.Table | ir.Table, now: datetime | None = None, *, snapshot: Path | None = None,
    by: str = "referrals",
) -> SettleResult:  # fmt: skip
    """Reward, void or leave pending every pending referral, given the orders (columns: ``rules.ORDER_COLUMNS``)
    and OneID (``snapshot``: the referees' identifiers resolved, merges followed); see the module docstring."""
    now_ = when(now, utcnow(), "now")
    result = SettleResult()
    with state.connect() as conn:
        pending = conn.execute(select(R).where(R.c.status == "pending").order_by(R.c.id)).all()
        edges = conn.execute(select(R.c.id, R.c.referrer_id, R.c.referee_id, R.c.referee_key)
                             .where(R.c.claim.is_not(None)).order_by(R.c.id)).all()  # fmt: skip
    result.pending = len(pending)
    people = _resolved(snapshot, edges)
    programmes = {v: load_programme(state, v) for v in sorted({int(r.programme_version) for r in pending})}
    known = [r for r in pending if people[int(r.id)][1] is not None]
    wanted = pa.table({
        "referral_id": pa.array([int(r.id) for r in known], pa.int64()),
        "customer_id": pa.array([people[int(r.id)][1] for r in known], pa.int64()),
        "recorded_at": pa.array([utc(r.recorded_at) for r in known], pa.timestamp("us", tz="UTC")),
    })  # fmt: skip
    found: dict[int, dict[str, Any]] = {}
    if known:  # (nothing pending: the orders are not read at all)
        expr = first_orders(ibis.memtable(orders) if isinstance(orders, pa.Table) else orders, ibis.memtable(wanted),
                            now_)  # fmt: skip
        table = duckdb_backend().to_pyarrow(expr) if isinstance(orders, pa.Table) else expr.to_pyarrow()
        found = {int(f["referral_id"]): f for f in table.to_pylist()}
    first: dict[int, Any] = {}
    for e in edges:  # in id order: each referee's earliest referral
        referee_now = people[int(e.id)][1]
        if referee_now is not None:
            first.setdefault(referee_now, e)
    voids: dict[int, dict[str, Any]] = {}
    rewards: dict[int, dict[str, Any]] = {}
    waits: list[dict[str, Any]] = []
    for r in pending:
        rid, (referrer, referee) = int(r.id), people[int(r.id)]
        if referee is None:
            continue
        why = _oneid_reason(snapshot, r, people, first)
        window = programmes[int(r.programme_version)].return_window_days
        verdict, detail = ("void", why) if why else _decide({**found[rid], "referee": referee}, window, now_)
        if verdict == "void":
            voids[rid] = detail
        elif verdict == "reward":
            rewards[rid] = {**detail, "referrer": referrer, "referee": referee, "version": int(r.programme_version)}
        else:
            waits.append({"rid": rid, "referrer_id": referrer, "referee_id": referee, **detail})
    result.waiting = len(pending) - len(voids) - len(rewards)
    for part in chunks(waits):
        transaction(state, partial(_write_waits, waits=list(part)))
    for ids in chunks(sorted(voids)):
        done = transaction(state, partial(_write_voids, voids={i: voids[i] for i in ids}, now=now_))
        result.already += len(ids) - len(done)
        for i in done:
            result.void[voids[i]["reason"]] = result.void.get(voids[i]["reason"], 0) + 1
    for ids in chunks(sorted(rewards)):
        work = partial(_write_rewards, rewards={i: rewards[i] for i in ids}, programmes=programmes, now=now_, by=by)
        n, points = transaction(state, work)
        result.rewarded += n
        result.points += points
        result.already += len(ids) - n
    _issue_owed(state, now_, by, result)
    return result


# --- listing and the report -------------------------------------------------------------------------------------


def referral_page(
    state: StateStore, *, status: str | None = None, referrer_id: int | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Referral], int]:
    """Referrals, newest first, a page at a time (of one status, one referrer)."""
    if status is not None and status not in STATUSES:
        raise InputError(f"unknown referral status {status!r}", [Problem(f"one of {', '.join(STATUSES)}", "status")])
    conds: list[Any] = [R.c.status == status] if status else []
    conds += [R.c.referrer_id == referrer_id] if referrer_id is not None else []
    with state.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(R).where(*conds)).scalar_one())
        rows = conn.execute(select(R).where(*conds).order_by(R.c.id.desc()).limit(limit).offset(offset)).all()
    return [referral_of(r) for r in rows], total


def _count(status: str) -> Any:
    return func.coalesce(func.sum(case((R.c.status == status, 1), else_=0)), 0)


def referral_report(state: StateStore, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """Referrals per referrer by status with the rewards given, the most rewarded referrers first; and totals."""
    given = [func.coalesce(func.sum(R.c[f"{side}_points"]), 0).label(f"{side}_points") for side in SIDES]
    coupons = func.count(R.c.referrer_coupon) + func.count(R.c.referee_coupon)
    per = (select(R.c.referrer_id, *(_count(s).label(s) for s in STATUSES), *given, coupons.label("coupons"))
           .group_by(R.c.referrer_id).subquery())  # fmt: skip
    codes = referral_codes
    with state.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(per)).scalar_one())
        rows = conn.execute(select(per, codes.c.code).select_from(per.outerjoin(
            codes, codes.c.customer_id == per.c.referrer_id)).order_by(per.c.rewarded.desc(), per.c.pending.desc(),
            per.c.referrer_id).limit(limit).offset(offset)).all()  # fmt: skip
        sums = conn.execute(select(*(_count(s).label(s) for s in STATUSES), *given, coupons.label("coupons"))).one()
    return {"total": total, "referrers": [dict(r._mapping) for r in rows], "totals": dict(sums._mapping)}
