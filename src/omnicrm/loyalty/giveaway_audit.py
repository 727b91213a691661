"""Giveaways read back and checked: the records, the report (entries, winners, spent against budget, per prize) and
the audit that recomputes every entry from the published seed.

``audit`` is a pure function of the giveaway's terms, the seed, its entries in order and its packets: it confirms
that sha256(seed) is the commitment shown before the draw, that a red packet's split is the one the seed gives, that
every entry's draw, chosen prize, outcome, value and points are what the seed and the entries before it give, that
no limit was passed and that the budget was never exceeded at any step. ``verify`` runs it on the stored records and
also checks the payouts: exactly one points lot or coupon per paid entry, for the right customer and amount.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, distinct, func, select

from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.loyalty.giveaway_odds import commitment, entry_draw, pick, split_packets
from omnicrm.loyalty.locks import utc, when
from omnicrm.store.schema import coupons, giveaway_entries, giveaway_packets, giveaway_prizes, giveaways, point_lots
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "Entry",
    "Giveaway",
    "Prize",
    "PrizeLine",
    "Report",
    "Verification",
    "audit",
    "entries",
    "entry_of",
    "entry_query",
    "get",
    "list_giveaways",
    "load",
    "points_per_fen",
    "report",
    "verify",
]

G, P, K, E = giveaways, giveaway_prizes, giveaway_packets, giveaway_entries
PAGE = 2000  # entries read per statement by the audit


@dataclass(frozen=True)
class Prize:
    """A lucky-draw prize: its odds (weight), its value against the budget, its stock and how many were given."""

    id: int
    position: int
    kind: str
    name: str
    weight: int
    points: int | None
    coupon_template_id: str | None
    value_fen: int
    stock: int | None
    awarded: int

    @property
    def in_stock(self) -> bool:
        return self.stock is None or self.awarded < self.stock


@dataclass(frozen=True)
class Giveaway:
    """A giveaway as read at ``as_of``: its terms, running totals and commitment; ``seed`` only once closed."""

    id: str
    name: str
    kind: str
    opens_at: datetime
    closes_at: datetime
    timezone: str
    budget_fen: int
    spent_fen: int
    entry_count: int
    miss_weight: int
    packets: int | None
    point_value: Decimal
    points_valid_days: int | None
    per_person_daily: int | None
    per_person_total: int | None
    prizes_per_person: int | None
    restricted: bool
    seed_hash: str
    seed: str | None
    closed_at: datetime | None
    closed_by: str | None
    created_by: str
    created_at: datetime
    prizes: tuple[Prize, ...]
    as_of: datetime

    @property
    def status(self) -> str:
        """scheduled, open or closed, at ``as_of``."""
        if self.closed_at is not None or self.as_of >= self.closes_at:
            return "closed"
        return "scheduled" if self.as_of < self.opens_at else "open"

    @property
    def revealed(self) -> bool:
        """The seed is published once the giveaway has closed (at its time, or early by staff)."""
        return self.status == "closed"

    def as_dict(self) -> dict[str, Any]:
        body = {k: v for k, v in self.__dict__.items() if k not in ("prizes", "as_of")}
        body.update(point_value=str(self.point_value), status=self.status, left_fen=self.budget_fen - self.spent_fen,
                    prizes=[{**p.__dict__, "in_stock": p.in_stock} for p in self.prizes])  # fmt: skip
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in body.items()}


@dataclass(frozen=True)
class Entry:
    """One entry: its number, the draw, what the odds chose, what was given (``outcome``) and how it was paid."""

    giveaway_id: str
    seq: int
    customer_id: int
    idempotency_key: str
    day: date
    outcome: str  # won, miss (drew no prize), no_stock / no_budget (drew a prize that could not be given)
    draw: str | None
    chosen_prize_id: int | None
    prize_id: int | None
    packet: int | None
    value_fen: int
    points: int | None
    lot_id: int | None
    coupon_id: int | None
    coupon_code: str | None
    entered_by: str
    entered_at: datetime
    replayed: bool = False

    @property
    def won(self) -> bool:
        return self.outcome == "won"

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "day": self.day.isoformat(), "entered_at": self.entered_at.isoformat()}


def points_per_fen(point_value: Decimal) -> int:
    """Points worth 1 fen at ``point_value`` yuan a point; ValueError unless it is a whole number."""
    per = Decimal(1) / (point_value * 100)
    if per != per.to_integral_value() or per < 1:
        raise ValueError(f"1 fen is {per} points at {point_value} yuan a point, not a whole number")
    return int(per)


# --- reading ---------------------------------------------------------------------------------------------------


def _opt(value: Any) -> int | None:
    return int(value) if value is not None else None


def _prize_of(row: Any) -> Prize:
    return Prize(int(row.id), int(row.position), row.kind, row.name, int(row.weight), _opt(row.points),
                 row.coupon_template_id, int(row.value_fen), _opt(row.stock), int(row.awarded))  # fmt: skip


def _giveaway_of(row: Any, prizes: Sequence[Any], at: datetime) -> Giveaway:
    g = Giveaway(
        row.id, row.name, row.kind, utc(row.opens_at), utc(row.closes_at), row.timezone, int(row.budget_fen),
        int(row.spent_fen), int(row.entry_count), int(row.miss_weight), row.packets, Decimal(row.point_value),
        row.points_valid_days, row.per_person_daily, row.per_person_total, row.prizes_per_person, bool(row.restricted),
        row.seed_hash, None, utc(row.closed_at) if row.closed_at is not None else None, row.closed_by,
        row.created_by, utc(row.created_at), tuple(_prize_of(p) for p in prizes), at,
    )  # fmt: skip
    return replace(g, seed=row.seed) if g.revealed else g


def unknown(giveaway_id: str) -> NotFound:
    return NotFound(f"giveaway {giveaway_id!r} does not exist", [Problem("unknown giveaway", "giveaway_id")])


def load(conn: Connection, giveaway_id: str, at: datetime, *, lock: bool = False) -> Giveaway:
    """The giveaway as of ``at``; with ``lock``, its row is locked for the rest of the transaction."""
    query = select(G).where(G.c.id == giveaway_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise unknown(giveaway_id)
    prizes = conn.execute(select(P).where(P.c.giveaway_id == giveaway_id).order_by(P.c.position)).all()
    return _giveaway_of(row, prizes, at)


def get(state: StateStore, giveaway_id: str, at: datetime | None = None) -> Giveaway:
    """The giveaway as of now (or ``at``): the seed is there only once it has closed."""
    at_ = when(at, utcnow(), "at")
    with state.connect() as conn:
        return load(conn, giveaway_id, at_)


def list_giveaways(
    state: StateStore, *, limit: int = 50, offset: int = 0, at: datetime | None = None
) -> tuple[list[Giveaway], int]:
    """A page of giveaways, newest first, and how many there are."""
    at_ = when(at, utcnow(), "at")
    with state.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(G)).scalar_one())
        rows = conn.execute(select(G).order_by(G.c.created_at.desc(), G.c.id).limit(limit).offset(offset)).all()
        prizes: dict[str, list[Any]] = {}
        query = select(P).where(P.c.giveaway_id.in_([r.id for r in rows])).order_by(P.c.position)
        for p in conn.execute(query).all():
            prizes.setdefault(p.giveaway_id, []).append(p)
    return [_giveaway_of(r, prizes.get(r.id, []), at_) for r in rows], total


def entry_query() -> Any:
    """Entries with the code of the coupon that paid them, if any."""
    return select(E, coupons.c.code.label("coupon_code")).outerjoin(coupons, coupons.c.id == E.c.coupon_id)


def entry_of(row: Any, *, replayed: bool = False) -> Entry:
    return Entry(
        row.giveaway_id, int(row.seq), int(row.customer_id), row.idempotency_key, row.day, row.outcome, row.draw,
        _opt(row.chosen_prize_id), _opt(row.prize_id), _opt(row.packet), int(row.value_fen), _opt(row.points),
        _opt(row.lot_id), _opt(row.coupon_id), row.coupon_code, row.entered_by, utc(row.entered_at), replayed,
    )  # fmt: skip


def entries(
    state: StateStore, giveaway_id: str, *, limit: int = 50, offset: int = 0, newest_first: bool = True
) -> tuple[list[Entry], int]:
    """A page of the giveaway's entries (newest first, or in entry order) and how many there are."""
    with state.connect() as conn:
        if conn.execute(select(G.c.id).where(G.c.id == giveaway_id)).first() is None:
            raise unknown(giveaway_id)
        total = int(conn.execute(select(func.count()).where(E.c.giveaway_id == giveaway_id)).scalar_one())
        order = E.c.seq.desc() if newest_first else E.c.seq
        query = entry_query().where(E.c.giveaway_id == giveaway_id).order_by(order).limit(limit).offset(offset)
        return [entry_of(r) for r in conn.execute(query).all()], total


# --- the report ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrizeLine:
    """One prize in the report: how often the odds chose it and how many were given, for how much."""

    prize: Prize
    chosen: int
    given: int
    given_fen: int


@dataclass(frozen=True)
class Report:
    """Entries, entrants, winners, spent against budget, outcomes, and each prize (or the packets claimed)."""

    giveaway: Giveaway
    entries: int
    entrants: int
    winners: int
    spent_fen: int
    budget_fen: int
    outcomes: dict[str, int]
    prizes: tuple[PrizeLine, ...]
    packets_claimed: int

    def as_dict(self) -> dict[str, Any]:
        lines = [{"position": x.prize.position, "name": x.prize.name, "kind": x.prize.kind, "stock": x.prize.stock,
                  "value_fen": x.prize.value_fen, "chosen": x.chosen, "given": x.given, "given_fen": x.given_fen}
                 for x in self.prizes]  # fmt: skip
        return {"giveaway_id": self.giveaway.id, "entries": self.entries, "entrants": self.entrants,
                "winners": self.winners, "spent_fen": self.spent_fen, "budget_fen": self.budget_fen,
                "left_fen": self.budget_fen - self.spent_fen, "outcomes": self.outcomes, "prizes": lines,
                "packets": self.giveaway.packets, "packets_claimed": self.packets_claimed}  # fmt: skip


def report(state: StateStore, giveaway_id: str, at: datetime | None = None) -> Report:
    """The giveaway's figures, computed from its entries in one snapshot of reads."""
    at_ = when(at, utcnow(), "at")
    mine = E.c.giveaway_id == giveaway_id
    with state.connect() as conn:
        g = load(conn, giveaway_id, at_)
        outcomes = {o: int(n) for o, n in conn.execute(select(E.c.outcome, func.count()).where(mine)
                                                       .group_by(E.c.outcome)).all()}  # fmt: skip
        people = select(func.count(distinct(E.c.customer_id))).where(mine)
        entrants = int(conn.execute(people).scalar_one())
        winners = int(conn.execute(people.where(E.c.outcome == "won")).scalar_one())
        by_chosen = select(E.c.chosen_prize_id, func.count()).where(mine).group_by(E.c.chosen_prize_id)
        chosen: dict[Any, int] = {k: int(n) for k, n in conn.execute(by_chosen).all()}
        by_prize = select(E.c.prize_id, func.count(), func.sum(E.c.value_fen)).where(mine).group_by(E.c.prize_id)
        given = {r[0]: (int(r[1]), int(r[2])) for r in conn.execute(by_prize).all()}
        spent = int(conn.execute(select(func.coalesce(func.sum(E.c.value_fen), 0)).where(mine)).scalar_one())
    lines = tuple(PrizeLine(p, chosen.get(p.id, 0), *given.get(p.id, (0, 0))) for p in g.prizes)
    claimed = outcomes.get("won", 0) if g.kind == "red_packet" else 0
    return Report(g, sum(outcomes.values()), entrants, winners, spent, g.budget_fen, outcomes, lines, claimed)


# --- the audit -------------------------------------------------------------------------------------------------


def _expected(
    g: Giveaway, seed: str, e: Entry, split: Sequence[int], awarded: Counter[int], left: int
) -> tuple[Any, ...]:
    """What entry ``e`` should have recorded: (draw, chosen prize, prize, packet, outcome, value, points)."""
    if g.kind == "red_packet":
        if e.seq > len(split):
            return (None, None, None, None, "no packet left", 0, None)
        amount = split[e.seq - 1]
        return (None, None, None, e.seq, "won", amount, amount * points_per_fen(g.point_value))
    draw = entry_draw(seed, g.id, e.seq, e.customer_id)
    index = pick(draw, [p.weight for p in g.prizes], g.miss_weight)
    if index is None:
        return (draw, None, None, None, "miss", 0, None)
    p = g.prizes[index]
    if p.stock is not None and awarded[p.id] >= p.stock:
        return (draw, p.id, None, None, "no_stock", 0, None)
    if p.value_fen > left:
        return (draw, p.id, None, None, "no_budget", 0, None)
    return (draw, p.id, p.id, None, "won", p.value_fen, p.points)


def audit(g: Giveaway, seed: str, entries: Sequence[Entry], packets: Sequence[int]) -> list[str]:
    """Every way the records disagree with the seed, the terms or the budget (empty: all is as the seed says)."""
    try:
        committed = commitment(seed)
    except ValueError as exc:
        return [f"the seed is not a seed: {exc}"]
    problems = [] if committed == g.seed_hash else [f"sha256 of the seed is {committed}, not the commitment "
                                                     f"{g.seed_hash} published before the draw"]  # fmt: skip
    split: list[int] = []
    if g.kind == "red_packet" and g.packets:
        split = split_packets(seed, g.id, g.budget_fen, g.packets)
        if split != list(packets):
            problems.append("the stored packets are not the split the seed gives")
    awarded: Counter[int] = Counter()
    per_person: Counter[int] = Counter()
    per_day: Counter[tuple[int, date]] = Counter()
    won: Counter[int] = Counter()
    spent = 0
    for number, e in enumerate(entries, start=1):
        if e.seq != number:
            problems.append(f"entry {e.seq} is out of order: entry {number} was expected")
            break
        expected = _expected(g, seed, e, split, awarded, g.budget_fen - spent)
        recorded = (e.draw, e.chosen_prize_id, e.prize_id, e.packet, e.outcome, e.value_fen, e.points)
        if recorded != expected:
            problems.append(f"entry {number} (customer {e.customer_id}) recorded {recorded}, the seed gives {expected}")
        spent += e.value_fen  # the recorded effects carry on, so one wrong entry is reported once
        awarded.update([e.prize_id] if e.prize_id is not None else [])
        if spent > g.budget_fen:
            problems.append(f"after entry {number} the budget is exceeded: {spent} > {g.budget_fen} fen")
        per_person[e.customer_id] += 1
        per_day[e.customer_id, e.day] += 1
        won[e.customer_id] += e.won
        for limit, count, name in ((g.per_person_total, per_person[e.customer_id], "per_person_total"),
                                   (g.per_person_daily, per_day[e.customer_id, e.day], "per_person_daily"),
                                   (g.prizes_per_person, won[e.customer_id], "prizes_per_person")):  # fmt: skip
            if limit is not None and count > limit:
                problems.append(f"entry {number}: customer {e.customer_id} is over {name} ({count} > {limit})")
    if (spent, len(entries)) != (g.spent_fen, g.entry_count):
        problems.append(f"the giveaway counts {g.entry_count} entries and {g.spent_fen} fen spent; its entries add "
                        f"up to {len(entries)} and {spent} fen")  # fmt: skip
    for p in g.prizes:
        if awarded[p.id] != p.awarded or (p.stock is not None and p.awarded > p.stock):
            problems.append(f"prize {p.position} ({p.name}) counts {p.awarded} given of stock {p.stock}; its entries "
                            f"give {awarded[p.id]}")  # fmt: skip
    return problems


@dataclass(frozen=True)
class Verification:
    """The audit's verdict: ``ok`` when there are no problems."""

    giveaway_id: str
    seed: str
    seed_hash: str
    entries: int
    spent_fen: int
    budget_fen: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "problems": list(self.problems), "ok": self.ok}


def _payouts(conn: Connection, g: Giveaway, entries: Sequence[Entry]) -> list[str]:
    """Exactly one lot or coupon per paid entry, for its customer and amount, and none paid without an entry."""
    problems = []
    lots = {r.order_id: r for r in conn.execute(select(point_lots).where(
        point_lots.c.source == "giveaway", point_lots.c.order_id.startswith(f"{g.id}:", autoescape=True)))}  # fmt: skip
    issued = {r.idempotency_key: r for r in conn.execute(select(coupons).where(
        coupons.c.campaign_id == f"giveaway:{g.id}"))}  # fmt: skip
    templates = {p.id: p.coupon_template_id for p in g.prizes}
    for e in entries:
        lot = lots.pop(f"{g.id}:{e.seq}", None)
        if e.points and (lot is None or (int(lot.id), int(lot.customer_id), int(lot.points)) != (
                e.lot_id, e.customer_id, e.points)):  # fmt: skip
            problems.append(f"entry {e.seq}: no points lot of {e.points} points for customer {e.customer_id}")
        coupon = issued.pop(f"giveaway:{g.id}:{e.seq}", None)
        template = templates.get(e.prize_id) if e.prize_id is not None else None
        if template and (coupon is None or (int(coupon.id), int(coupon.customer_id), coupon.template_id) != (
                e.coupon_id, e.customer_id, template)):  # fmt: skip
            problems.append(f"entry {e.seq}: no coupon of template {template!r} for customer {e.customer_id}")
        if (lot is not None and not e.points) or (coupon is not None and not template):
            problems.append(f"entry {e.seq} gave nothing, yet a lot or coupon was paid for it")
    problems += [f"points lot {r.id} ({key}) was paid without an entry" for key, r in lots.items()]
    problems += [f"coupon {r.id} ({key}) was issued without an entry" for key, r in issued.items()]
    return problems


def verify(state: StateStore, giveaway_id: str, *, seed: str | None = None, at: datetime | None = None) -> Verification:
    """Audit the giveaway against ``seed`` (default: its published seed, once it has closed) and check its payouts."""
    at_ = when(at, utcnow(), "at")
    with state.connect() as conn:
        g = load(conn, giveaway_id, at_)
        if seed is None and g.seed is None:
            raise Conflict(f"giveaway {giveaway_id!r} has not closed: its seed is published when it closes",
                           [Problem("verify after it closes, or give the seed", "seed")])  # fmt: skip
        used = (seed if seed is not None else g.seed or "").strip().lower()
        if len(used) > 128:
            raise InputError(f"giveaway {giveaway_id!r}: that is not a seed", [Problem("64 hex characters", "seed")])
        rows: list[Entry] = []
        while True:
            query = entry_query().where(E.c.giveaway_id == giveaway_id, E.c.seq > (rows[-1].seq if rows else 0))
            page = [entry_of(r) for r in conn.execute(query.order_by(E.c.seq).limit(PAGE)).all()]
            rows += page
            if len(page) < PAGE:
                break
        packets = conn.execute(select(K.c.amount_fen).where(K.c.giveaway_id == giveaway_id).order_by(K.c.number))
        problems = audit(g, used, rows, [int(a) for a in packets.scalars()]) + _payouts(conn, g, rows)
    return Verification(g.id, used, g.seed_hash, len(rows), g.spent_fen, g.budget_fen, tuple(problems))
