"""Giveaways (bonus release): lucky draws and red-packet drops with a total budget, per-person limits, odds and a
schedule; never over budget however many enter at once, and every draw auditable.

- A **lucky draw** has prizes, each with a weight (its odds), a money value counted against the budget (points at the
  giveaway's ``point_value``, a coupon at its face value, a physical gift at the value staff give it) and an optional
  stock, and the weight of drawing no prize. A **red-packet drop** splits its budget into N packets when it is created
  (拼手气, fixed by the seed); the k-th entry claims packet k, credited as points (1 fen must be a whole number of
  points at the point value).
- Each entry is one transaction that locks the giveaway's row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's
  ``BEGIN IMMEDIATE`` makes the writer alone, see ``locks``), takes the next entry number, checks the schedule,
  eligibility, the person's limits, the budget and the stock, records the entry and pays the prize in the same
  transaction: points as a lot of the ledger (``ledger.write_awards``), a coupon from its template (``coupons``). A
  refused entry changes nothing.
- The outcome of entry k is a pure function of (seed, giveaway id, k, customer id) (``giveaway_odds``); when the
  chosen prize's stock or the budget left cannot cover it, the entry gets no prize. Only sha256(seed) is shown until
  the giveaway closes, then the seed; ``giveaway_audit.verify`` recomputes every entry from it.
- Every entry request carries an idempotency key: a retried request returns the entry the first one made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, case, func, insert, select, update

from omnicrm.errors import Conflict, InputError, Problem
from omnicrm.loyalty.coupons import issue_within as issue_in  # issued inside the entry's transaction
from omnicrm.loyalty.coupons import template_of
from omnicrm.loyalty.giveaway_audit import Entry, Giveaway, Prize, entry_of, entry_query, load, points_per_fen
from omnicrm.loyalty.giveaway_odds import commitment, entry_draw, new_seed, pick, split_packets
from omnicrm.loyalty.ledger import Award, write_awards
from omnicrm.loyalty.locks import insert_or_nothing, transaction, when
from omnicrm.store.schema import (
    coupon_templates,
    giveaway_eligible,
    giveaway_entries,
    giveaway_packets,
    giveaway_prizes,
    giveaways,
)
from omnicrm.store.state import StateStore, utcnow

__all__ = ["KINDS", "PRIZE_KINDS", "GiveawaySpec", "PrizeSpec", "close", "create", "enter"]

G, P, K, EL, E = giveaways, giveaway_prizes, giveaway_packets, giveaway_eligible, giveaway_entries
KINDS = ("lucky_draw", "red_packet")
PRIZE_KINDS = ("points", "coupon", "gift")
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}")  # safe in URLs, and "giveaway:<id>" fits a coupon's campaign id
MAX_PRIZES, MAX_PACKETS = 50, 100_000


@dataclass(frozen=True)
class PrizeSpec:
    """A lucky-draw prize as staff define it. ``value_fen`` is worked out for points (at the point value) and for
    coupons with a face value; a gift needs it, and a stock."""

    kind: str
    name: str
    weight: int
    points: int | None = None
    coupon_template_id: str | None = None
    value_fen: int | None = None
    stock: int | None = None


@dataclass(frozen=True)
class GiveawaySpec:
    """A giveaway's terms; money in fen, ``point_value`` in yuan a point. ``eligible``: None lets everyone enter."""

    id: str
    name: str
    kind: str
    opens_at: datetime
    closes_at: datetime
    budget_fen: int
    prizes: tuple[PrizeSpec, ...] = ()
    miss_weight: int = 0
    packets: int | None = None
    point_value: Decimal = Decimal("0.01")
    points_valid_days: int | None = None
    per_person_daily: int | None = None
    per_person_total: int | None = None
    prizes_per_person: int | None = None
    eligible: tuple[int, ...] | None = None
    timezone: str = "Asia/Shanghai"


# --- terms -----------------------------------------------------------------------------------------------------


def _whole(value: object, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _prize(i: int, p: PrizeSpec, point_value: Decimal | None, problems: list[Problem]) -> PrizeSpec:
    """``p`` checked (problems added, naming ``prizes[i].<field>``), with the value of a points prize worked out."""
    at = f"prizes[{i}]."

    def bad(reason: str, name: str) -> None:
        problems.append(Problem(reason, at + name))

    if p.kind not in PRIZE_KINDS:
        bad(f"kind must be one of {', '.join(PRIZE_KINDS)}, not {p.kind!r}", "kind")
    name = (p.name or "").strip()
    if not name or len(name) > 255:
        bad("give the prize a name of 1-255 characters", "name")
    if not _whole(p.weight):
        bad(f"weight must be a whole number above zero, not {p.weight!r}", "weight")
    if p.stock is not None and not _whole(p.stock):
        bad(f"stock must be a whole number above zero (or left out), not {p.stock!r}", "stock")
    if p.value_fen is not None and not _whole(p.value_fen):
        bad(f"value_fen must be a whole number of fen above zero, not {p.value_fen!r}", "value_fen")
    if (p.points is not None) != (p.kind == "points"):
        bad("a points prize, and only a points prize, gives points", "points")
    template = (p.coupon_template_id or "").strip() or None
    if (template is not None) != (p.kind == "coupon"):
        bad("a coupon prize, and only a coupon prize, names a coupon template", "coupon_template_id")
    value = p.value_fen
    if p.kind == "points" and p.points is not None:
        if not _whole(p.points):
            bad(f"points must be a whole number above zero, not {p.points!r}", "points")
        elif p.value_fen is not None:
            bad("a points prize is valued at the point value: leave value_fen out", "value_fen")
        elif point_value is not None:
            value = int((Decimal(p.points) * point_value * 100).to_integral_value(rounding=ROUND_CEILING))
    if p.kind == "gift" and (p.value_fen is None or p.stock is None):
        bad("a gift needs its value in fen and its stock", "value_fen" if p.value_fen is None else "stock")
    return replace(p, name=name, value_fen=value, coupon_template_id=template)


def checked(spec: GiveawaySpec) -> GiveawaySpec:
    """``spec`` with times in UTC and values worked out, or an InputError listing every problem with its field."""
    problems: list[Problem] = []
    gid = spec.id if isinstance(spec.id, str) else ""
    if not ID.fullmatch(gid):
        problems.append(Problem("1-48 letters, digits, '-', '_' or '.', starting with a letter or digit", "id"))
    title = (spec.name or "").strip()
    if not title or len(title) > 255:
        problems.append(Problem("give the giveaway a name of 1-255 characters", "name"))
    if spec.kind not in KINDS:
        problems.append(Problem(f"kind must be one of {', '.join(KINDS)}, not {spec.kind!r}", "kind"))
    times = {}
    for name in ("opens_at", "closes_at"):
        value = getattr(spec, name)
        if not isinstance(value, datetime) or value.tzinfo is None:
            problems.append(Problem("give the time with its offset, e.g. 2026-11-11T00:00:00+08:00", name))
        else:
            times[name] = when(value, value, name)
    if len(times) == 2 and times["closes_at"] <= times["opens_at"]:
        problems.append(Problem("closes_at must be after opens_at", "closes_at"))
    try:
        ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        problems.append(Problem(f"unknown time zone {spec.timezone!r} (e.g. Asia/Shanghai)", "timezone"))
    if not _whole(spec.budget_fen):
        problems.append(Problem(f"budget_fen must be a whole number of fen above zero, not {spec.budget_fen!r}",
                                "budget_fen"))  # fmt: skip
    point_value: Decimal | None = None
    try:
        point_value = Decimal(spec.point_value)
        if not point_value.is_finite() or point_value <= 0 or len(format(point_value, "f")) > 16:
            raise InvalidOperation
    except (InvalidOperation, TypeError, ValueError):
        problems.append(Problem(f"point_value is yuan a point above zero, e.g. 0.01, not {spec.point_value!r}",
                                "point_value"))  # fmt: skip
        point_value = None
    for name in ("points_valid_days", "per_person_daily", "per_person_total", "prizes_per_person"):
        if getattr(spec, name) is not None and not _whole(getattr(spec, name)):
            problems.append(Problem(f"{name} must be a whole number above zero (or left out)", name))
    eligible = None
    if spec.eligible is not None:
        eligible = tuple(sorted(set(spec.eligible)))
        if not eligible or not all(_whole(c, 0) for c in eligible):
            problems.append(Problem("list customer ids (whole numbers), or leave eligible out for everyone",
                                    "eligible"))  # fmt: skip
    prizes = tuple(_prize(i, p, point_value, problems) for i, p in enumerate(spec.prizes))
    if spec.kind == "lucky_draw":
        if not 1 <= len(prizes) <= MAX_PRIZES:
            problems.append(Problem(f"a lucky draw has 1-{MAX_PRIZES} prizes", "prizes"))
        if not _whole(spec.miss_weight, 0):
            problems.append(Problem("miss_weight must be a whole number, at least 0", "miss_weight"))
        if spec.packets is not None:
            problems.append(Problem("only a red packet is split into packets", "packets"))
    if spec.kind == "red_packet":
        if prizes or spec.miss_weight:
            problems.append(Problem("a red packet has packets, not prizes or a miss weight", "prizes"))
        if not _whole(spec.packets) or (spec.packets or 0) > MAX_PACKETS:
            problems.append(Problem(f"packets must be a whole number from 1 to {MAX_PACKETS}", "packets"))
        elif _whole(spec.budget_fen) and spec.budget_fen < (spec.packets or 0):
            problems.append(Problem(f"{spec.packets} packets need at least {spec.packets} fen", "budget_fen"))
        if point_value is not None:
            try:
                points_per_fen(point_value)
            except ValueError as exc:
                problems.append(Problem(f"a red packet pays points: {exc}", "point_value"))
    if problems:
        raise InputError(f"giveaway {gid or spec.id!r} cannot be set up as given", problems)
    assert point_value is not None
    return replace(spec, id=gid, name=title, opens_at=times["opens_at"], closes_at=times["closes_at"],
                   point_value=point_value, eligible=eligible, prizes=prizes)  # fmt: skip


def _priced(conn: Connection, spec: GiveawaySpec) -> GiveawaySpec:
    """Coupon prizes valued at their template's face value unless given; no prize worth more than the budget."""
    problems: list[Problem] = []
    prizes = []
    for i, p in enumerate(spec.prizes):
        if p.kind == "coupon" and p.coupon_template_id is not None:
            row = conn.execute(select(coupon_templates).where(coupon_templates.c.id == p.coupon_template_id)).first()
            if row is None:
                problems.append(Problem(f"coupon template {p.coupon_template_id!r} does not exist",
                                        f"prizes[{i}].coupon_template_id"))  # fmt: skip
                continue
            t = template_of(row)
            face = t.amount_off_fen if t.kind != "percent_off" else t.max_off_fen
            p = replace(p, value_fen=p.value_fen or face)
            if p.value_fen is None:
                problems.append(Problem("a percent-off coupon without a cap needs value_fen", f"prizes[{i}].value_fen"))
        if p.value_fen is not None and p.value_fen > spec.budget_fen:
            problems.append(Problem(f"worth {p.value_fen} fen, more than the whole budget", f"prizes[{i}].value_fen"))
        prizes.append(p)
    if problems:
        raise InputError(f"giveaway {spec.id!r} cannot be set up as given", problems)
    return replace(spec, prizes=tuple(prizes))


def spec_of(g: Giveaway, eligible: list[int]) -> GiveawaySpec:
    """The terms a stored giveaway was created with (to tell a repeated create from a different one)."""
    prizes = tuple(PrizeSpec(p.kind, p.name, p.weight, p.points, p.coupon_template_id, p.value_fen, p.stock)
                   for p in g.prizes)  # fmt: skip
    return GiveawaySpec(
        g.id, g.name, g.kind, g.opens_at, g.closes_at, g.budget_fen, prizes, g.miss_weight, g.packets, g.point_value,
        g.points_valid_days, g.per_person_daily, g.per_person_total, g.prizes_per_person,
        tuple(sorted(eligible)) if g.restricted else None, g.timezone,
    )  # fmt: skip


# --- creating and closing --------------------------------------------------------------------------------------


def _rows(spec: GiveawaySpec, seed: str, by: str, now: datetime) -> dict[str, list[dict[str, Any]]]:
    giveaway = {
        "id": spec.id, "name": spec.name, "kind": spec.kind, "opens_at": spec.opens_at, "closes_at": spec.closes_at,
        "timezone": spec.timezone, "budget_fen": spec.budget_fen, "spent_fen": 0, "entry_count": 0,
        "miss_weight": spec.miss_weight, "packets": spec.packets, "point_value": format(spec.point_value, "f"),
        "points_valid_days": spec.points_valid_days, "per_person_daily": spec.per_person_daily,
        "per_person_total": spec.per_person_total, "prizes_per_person": spec.prizes_per_person,
        "restricted": spec.eligible is not None, "seed": seed, "seed_hash": commitment(seed), "closed_at": None,
        "closed_by": None, "created_by": by, "created_at": now,
    }  # fmt: skip
    prizes = [{"giveaway_id": spec.id, "position": i, "kind": p.kind, "name": p.name, "weight": p.weight,
               "points": p.points, "coupon_template_id": p.coupon_template_id, "value_fen": p.value_fen,
               "stock": p.stock, "awarded": 0} for i, p in enumerate(spec.prizes, start=1)]  # fmt: skip
    amounts = split_packets(seed, spec.id, spec.budget_fen, spec.packets or 0) if spec.kind == "red_packet" else []
    packets = [{"giveaway_id": spec.id, "number": n, "amount_fen": a} for n, a in enumerate(amounts, start=1)]
    eligible = [{"giveaway_id": spec.id, "customer_id": c} for c in spec.eligible or ()]
    return {"giveaway": [giveaway], "prizes": prizes, "packets": packets, "eligible": eligible}


def create(state: StateStore, spec: GiveawaySpec, *, by: str, now: datetime | None = None) -> Giveaway:
    """Create a giveaway with a fresh secret seed (only its sha256 is shown until it closes); a red packet's split is
    fixed here. The same terms again under the same id return the giveaway (idempotent); other terms under an
    existing id are refused. Every problem with the terms is reported at once, each naming its field."""
    now_ = when(now, utcnow(), "now")
    terms = checked(spec)

    def work(conn: Connection) -> Giveaway:
        full = _priced(conn, terms)
        rows = _rows(full, new_seed(), by, now_)
        if not insert_or_nothing(conn, G, rows["giveaway"], returning=("id",)):
            found = load(conn, full.id, now_)
            eligible = conn.execute(select(EL.c.customer_id).where(EL.c.giveaway_id == full.id)).scalars().all()
            if spec_of(found, [int(c) for c in eligible]) != full:
                raise Conflict(f"giveaway {full.id!r} already exists with other terms",
                               [Problem("use a new id for new terms", "id")])  # fmt: skip
            return found
        for table, key in ((P, "prizes"), (K, "packets"), (EL, "eligible")):
            if rows[key]:
                conn.execute(insert(table), rows[key])
        return load(conn, full.id, now_)

    return transaction(state, work)


def close(state: StateStore, giveaway_id: str, *, by: str, now: datetime | None = None) -> Giveaway:
    """Stop entries now and publish the seed. Closing a closed giveaway changes nothing."""
    now_ = when(now, utcnow(), "now")

    def work(conn: Connection) -> Giveaway:
        if load(conn, giveaway_id, now_, lock=True).status == "closed":
            return load(conn, giveaway_id, now_)
        conn.execute(update(G).where(G.c.id == giveaway_id).values(closed_at=now_, closed_by=by))
        return load(conn, giveaway_id, now_)

    return transaction(state, work)


# --- entering --------------------------------------------------------------------------------------------------


def _refuse(g: Giveaway, reason: str, field: str, fix: str) -> Conflict:
    return Conflict(f"giveaway {g.id!r}: {reason}", [Problem(fix, field)])


def _spent(g: Giveaway) -> Conflict:
    return Conflict(f"the budget of giveaway {g.id!r} is spent ({g.spent_fen} of {g.budget_fen} fen given)",
                    [Problem("nothing is left to give", "budget_fen")])  # fmt: skip


def _check_open(g: Giveaway, now: datetime) -> None:
    if g.closed_at is not None:
        raise _refuse(g, f"it was closed on {g.closed_at.isoformat()}", "closed_at", "entries are no longer taken")
    if now >= g.closes_at:
        raise _refuse(g, f"it closed on {g.closes_at.isoformat()}", "closes_at", "entries are no longer taken")
    if now < g.opens_at:
        raise _refuse(g, f"it opens on {g.opens_at.isoformat()}", "opens_at", "enter once it has opened")


def _check_person(conn: Connection, g: Giveaway, customer_id: int, day: date) -> None:
    """Eligibility and the person's limits: entries in all, entries today, prizes won."""
    if g.restricted:
        listed = select(EL.c.customer_id).where(EL.c.giveaway_id == g.id, EL.c.customer_id == customer_id)
        if conn.execute(listed).first() is None:
            raise _refuse(
                g, f"customer {customer_id} is not eligible", "customer_id", "only listed customers may enter"
            )
    counts = select(
        func.count(), func.coalesce(func.sum(case((E.c.day == day, 1), else_=0)), 0),
        func.coalesce(func.sum(case((E.c.outcome == "won", 1), else_=0)), 0),
    ).where(E.c.giveaway_id == g.id, E.c.customer_id == customer_id)  # fmt: skip
    total, today, won = (int(n) for n in conn.execute(counts).one())
    for limit, count, field, what in (
        (g.per_person_total, total, "per_person_total", "entries"),
        (g.per_person_daily, today, "per_person_daily", f"entries on {day.isoformat()}"),
        (g.prizes_per_person, won, "prizes_per_person", "prizes"),
    ):
        if limit is not None and count >= limit:
            raise _refuse(g, f"customer {customer_id} already has {count} {what}", field, f"the limit is {limit}")


def _draw(conn: Connection, g: Giveaway, seed: str, seq: int, customer_id: int) -> dict[str, Any]:
    """The outcome of entry ``seq``: the draw, the prize chosen, the prize (or packet) given and its value."""
    left = g.budget_fen - g.spent_fen
    if g.kind == "red_packet":
        if g.packets is None or seq > g.packets:
            raise _spent(g)
        packet = select(K.c.amount_fen).where(K.c.giveaway_id == g.id, K.c.number == seq)
        amount = int(conn.execute(packet).scalar_one())
        return {"draw": None, "chosen": None, "prize": None, "packet": seq, "outcome": "won", "value_fen": amount,
                "points": amount * points_per_fen(g.point_value)}  # fmt: skip
    givable = [p for p in g.prizes if p.in_stock]
    if not givable:
        raise _refuse(g, "every prize has been given", "stock", "nothing is left to give")
    if all(p.value_fen > left for p in givable):
        raise _spent(g)
    draw = entry_draw(seed, g.id, seq, customer_id)
    index = pick(draw, [p.weight for p in g.prizes], g.miss_weight)
    chosen = g.prizes[index] if index is not None else None
    outcome = (
        "miss" if chosen is None else "no_stock" if not chosen.in_stock
        else "no_budget" if chosen.value_fen > left else "won"
    )  # fmt: skip
    prize = chosen if outcome == "won" else None
    return {"draw": draw, "chosen": chosen, "prize": prize, "packet": None, "outcome": outcome,
            "value_fen": prize.value_fen if prize else 0, "points": prize.points if prize else None}  # fmt: skip


def _pay(conn: Connection, g: Giveaway, out: dict[str, Any], seq: int, customer_id: int, by: str,
         now: datetime) -> tuple[int | None, int | None]:  # fmt: skip
    """Pay the prize inside the entry's transaction: (points lot id, coupon id)."""
    prize: Prize | None = out["prize"]
    if out["points"]:
        expires = now + timedelta(days=g.points_valid_days) if g.points_valid_days else None
        what = prize.name if prize else f"packet {seq}"
        award = Award(customer_id, "giveaway", f"{g.id}:{seq}", out["points"], now, now, expires,
                      detail={"giveaway": g.id, "entry": seq, "prize": what})  # fmt: skip
        lots = write_awards(conn, awards=[award], by=by, now=now)
        if not lots:
            raise _refuse(g, f"entry {seq} was paid before", "seq", "the ledger already has its lot: audit it")
        return lots[0].id, None
    if prize is not None and prize.kind == "coupon":
        assert prize.coupon_template_id is not None
        result = issue_in(conn, prize.coupon_template_id, [(customer_id, f"giveaway:{g.id}:{seq}")],
                          campaign_id=f"giveaway:{g.id}", by=by, store_code=None, guide_id=None, now=now)  # fmt: skip
        if result.refused:
            raise _refuse(g, f"coupon template {prize.coupon_template_id!r} cannot issue the prize",
                          f"prizes[{prize.position - 1}].coupon_template_id",
                          f"its {result.refused[customer_id]} is reached: raise it")  # fmt: skip
        return None, (result.issued or result.repeated)[0].id
    return None, None


def _enter(conn: Connection, giveaway_id: str, customer_id: int, key: str, by: str, now: datetime) -> Entry:
    g = load(conn, giveaway_id, now, lock=True)
    mine = E.c.giveaway_id == giveaway_id
    found = conn.execute(entry_query().where(mine, E.c.idempotency_key == key)).first()
    if found is not None:
        if int(found.customer_id) != customer_id:
            raise Conflict(f"giveaway {giveaway_id!r}: the idempotency key {key!r} was used by another customer",
                           [Problem("use a new key for a new entry", "idempotency_key")])  # fmt: skip
        return entry_of(found, replayed=True)
    _check_open(g, now)
    day = now.astimezone(ZoneInfo(g.timezone)).date()
    _check_person(conn, g, customer_id, day)
    seq = g.entry_count + 1
    out = _draw(conn, g, conn.execute(select(G.c.seed).where(G.c.id == g.id)).scalar_one(), seq, customer_id)
    lot_id, coupon_id = _pay(conn, g, out, seq, customer_id, by, now)
    conn.execute(update(G).where(G.c.id == g.id).values(entry_count=seq, spent_fen=G.c.spent_fen + out["value_fen"]))
    if out["prize"] is not None:
        conn.execute(update(P).where(P.c.id == out["prize"].id).values(awarded=P.c.awarded + 1))
    conn.execute(insert(E).values(
        giveaway_id=g.id, seq=seq, customer_id=customer_id, idempotency_key=key, day=day, draw=out["draw"],
        chosen_prize_id=out["chosen"].id if out["chosen"] else None,
        prize_id=out["prize"].id if out["prize"] else None, packet=out["packet"], outcome=out["outcome"],
        value_fen=out["value_fen"], points=out["points"], lot_id=lot_id, coupon_id=coupon_id, entered_by=by,
        entered_at=now,
    ))  # fmt: skip
    return entry_of(conn.execute(entry_query().where(mine, E.c.seq == seq)).one())


def enter(
    state: StateStore, giveaway_id: str, customer_id: int, *, idempotency_key: str, by: str = "system",
    now: datetime | None = None,
) -> Entry:  # fmt: skip
    """Enter the customer in the giveaway: draw, record and pay in one transaction holding the giveaway's lock.

    Refused, with nothing written, before it opens or after it closes, for a customer who is not eligible or has
    reached a limit, when the budget is spent or every prize has been given (Conflict naming the field), and for an
    unknown giveaway (NotFound). A retried request (same idempotency key) returns the first one's entry.
    """
    now_ = when(now, utcnow(), "now")
    if not _whole(customer_id, 0):
        raise InputError(f"giveaway {giveaway_id!r}: the customer id must be a whole number",
                         [Problem(f"got {customer_id!r}", "customer_id")])  # fmt: skip
    key = (idempotency_key or "").strip()
    if not key or len(key) > 255:
        problem = Problem("a key unique to the request, the same when it is retried", "idempotency_key")
        raise InputError(f"giveaway {giveaway_id!r}: an entry needs an idempotency key of 1-255 characters", [problem])
    return transaction(state, lambda conn: _enter(conn, giveaway_id, customer_id, key, by, now_))
