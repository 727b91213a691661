"""Giveaways on SQLite and PostgreSQL: terms checked and committed to a secret seed, entries drawn from the seed and
paid at once (points in the ledger, coupons from their template), clear refusals that change nothing, a budget never
exceeded, red packets split by the seed, and the audit that recomputes everything from the published seed."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from omnicrm.errors import Conflict, InputError, NotFound, OmnicrmError
from omnicrm.loyalty import giveaway_audit as audit
from omnicrm.loyalty.coupons import Template, create_template, customer_coupons
from omnicrm.loyalty.giveaway_odds import commitment, entry_draw, new_seed, pick, split_packets
from omnicrm.loyalty.giveaways import GiveawaySpec, PrizeSpec, close, create, enter
from omnicrm.loyalty.ledger import balance, lots
from omnicrm.store.schema import (
    coupons,
    giveaway_eligible,
    giveaway_entries,
    giveaway_packets,
    giveaway_prizes,
    giveaways,
    point_entries,
    point_lots,
)
from omnicrm.store.state import StateStore

T0 = datetime(2026, 11, 10, 16, 0, tzinfo=UTC)  # 11-11 00:00 in China
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
TABLES = (giveaways, giveaway_prizes, giveaway_packets, giveaway_eligible, giveaway_entries, point_lots, point_entries,
          coupons)  # fmt: skip


def coupon_template(state: StateStore, id_: str = "D11-20", **kw: Any) -> Template:
    base: dict[str, Any] = {"name": "20 off", "kind": "amount_off", "amount_off_fen": 2000, "total_quantity": 1000,
                            "per_person_limit": 50, "valid_days": 30}  # fmt: skip
    base.update(kw)
    return create_template(state, Template(id_, **base), by="ops", now=T0 - DAY)


def draw_spec(id_: str = "d11", **kw: Any) -> GiveawaySpec:
    """A lucky draw open for a day from T0: 100 points (w 30), a 20-yuan coupon (w 10, stock 5), a mug (w 10, 30 yuan,
    stock 2) and no prize (w 50), 500 yuan of budget."""
    base: dict[str, Any] = {
        "name": "双11 抽奖", "kind": "lucky_draw", "opens_at": T0, "closes_at": T0 + DAY, "budget_fen": 50_000,
        "prizes": (PrizeSpec("points", "100 积分", 30, points=100),
                   PrizeSpec("coupon", "满减券", 10, coupon_template_id="D11-20", stock=5),
                   PrizeSpec("gift", "马克杯", 10, value_fen=3000, stock=2)),
        "miss_weight": 50,
    }  # fmt: skip
    base.update(kw)
    return GiveawaySpec(id_, **base)


def packet_spec(id_: str = "rp", **kw: Any) -> GiveawaySpec:
    base: dict[str, Any] = {"name": "拼手气红包", "kind": "red_packet", "opens_at": T0, "closes_at": T0 + DAY,
                            "budget_fen": 1000, "packets": 10, "prizes_per_person": 1}  # fmt: skip
    base.update(kw)
    return GiveawaySpec(id_, **base)


def snapshot(state: StateStore) -> list[list[tuple[Any, ...]]]:
    with state.connect() as conn:
        return [[tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns)).all()] for t in TABLES]


def refused(state: StateStore, error: type[OmnicrmError], field: str, call: Any, *words: str) -> OmnicrmError:
    """``call()`` raises ``error`` naming ``field`` and the ``words``, and leaves every table as it was."""
    before = snapshot(state)
    with pytest.raises(error) as info:
        call()
    assert info.value.problems and info.value.problems[0].field == field, info.value
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert snapshot(state) == before
    return info.value


def stored_seed(state: StateStore, giveaway_id: str) -> str:
    with state.connect() as conn:
        return str(conn.execute(select(giveaways.c.seed).where(giveaways.c.id == giveaway_id)).scalar_one())


def test_set_up_commits_to_a_secret_seed_and_is_idempotent(state: StateStore) -> None:
    coupon_template(state)
    g = create(state, draw_spec(point_value=Decimal("0.015")), by="ops", now=T0 - DAY)
    seed = stored_seed(state, "d11")
    assert g.seed is None and g.status == "scheduled" and g.revealed is False
    assert g.seed_hash == hashlib.sha256(bytes.fromhex(seed)).hexdigest() and len(seed) == 64
    assert [p.value_fen for p in g.prizes] == [150, 2000, 3000]  # 100 points at 1.5 fen; the coupon's face value
    assert [p.position for p in g.prizes] == [1, 2, 3] and g.budget_fen == 50_000 and g.spent_fen == 0
    again = create(state, draw_spec(point_value=Decimal("0.015")), by="someone else", now=T0)
    assert again.seed_hash == g.seed_hash and stored_seed(state, "d11") == seed  # a repeat draws no new seed
    refused(state, Conflict, "id", lambda: create(state, draw_spec(budget_fen=60_000), by="ops"), "'d11'")
    assert audit.get(state, "d11", at=T0 + HOUR).status == "open"
    assert audit.get(state, "d11", at=T0 + DAY).seed == seed  # published once it has closed


def test_bad_terms_are_reported_together_and_nothing_is_written(state: StateStore) -> None:
    coupon_template(state)
    bad = draw_spec(
        "no spaces!", name=" ", opens_at=datetime(2026, 11, 11), budget_fen=0, miss_weight=-1, per_person_daily=0,
        prizes=(PrizeSpec("points", "p", 0, points=100, value_fen=5), PrizeSpec("gift", "g", 1, value_fen=10),
                PrizeSpec("coupon", "c", 1, coupon_template_id="  "), PrizeSpec("car", "x", 1)),
        eligible=(), timezone="Mars/Base",
    )  # fmt: skip
    error = refused(state, InputError, "id", lambda: create(state, bad, by="ops"))
    fields = {p.field for p in error.problems}
    assert fields >= {"id", "name", "opens_at", "budget_fen", "miss_weight", "per_person_daily", "eligible",
                      "timezone", "prizes[0].weight", "prizes[0].value_fen", "prizes[1].stock",
                      "prizes[2].coupon_template_id", "prizes[3].kind"}, fields  # fmt: skip
    cases = [
        (draw_spec(closes_at=T0 - HOUR), "closes_at"),
        (draw_spec(prizes=()), "prizes"),
        (draw_spec(packets=3), "packets"),
        (draw_spec(prizes=(PrizeSpec("coupon", "c", 1, coupon_template_id="NOPE"),)), "prizes[0].coupon_template_id"),
        (draw_spec(prizes=(PrizeSpec("gift", "tv", 1, value_fen=60_000, stock=1),)), "prizes[0].value_fen"),
        (packet_spec(packets=0), "packets"),
        (packet_spec(packets=20, budget_fen=10), "budget_fen"),
        (packet_spec(point_value=Decimal("0.02")), "point_value"),  # 1 fen would be half a point
        (packet_spec(prizes=(PrizeSpec("points", "p", 1, points=1),)), "prizes"),
    ]
    for spec, field in cases:
        refused(state, InputError, field, lambda spec=spec: create(state, spec, by="ops"), repr(spec.id))


def test_entries_follow_the_seed_and_are_paid_at_once(state: StateStore) -> None:
    coupon_template(state)
    g = create(state, draw_spec(), by="ops", now=T0 - DAY)
    seed = stored_seed(state, "d11")
    made = [enter(state, "d11", 100 + i % 7, idempotency_key=f"req-{i}", by="app", now=T0 + i * HOUR / 20)
            for i in range(300)]  # fmt: skip
    assert [e.seq for e in made] == list(range(1, 301))
    awarded: Counter[int] = Counter()
    for e in made:  # each outcome is the seed's: HMAC → prize by odds, unless its stock is gone
        assert e.draw == entry_draw(seed, "d11", e.seq, e.customer_id)
        index = pick(e.draw, [30, 10, 10], 50)
        chosen = g.prizes[index] if index is not None else None
        assert e.chosen_prize_id == (chosen.id if chosen else None)
        if chosen is None:
            assert (e.outcome, e.value_fen, e.prize_id) == ("miss", 0, None)
        elif chosen.stock is not None and awarded[chosen.id] >= chosen.stock:
            assert (e.outcome, e.value_fen, e.prize_id) == ("no_stock", 0, None)
        else:
            awarded[chosen.id] += 1
            assert (e.outcome, e.prize_id, e.value_fen) == ("won", chosen.id, chosen.value_fen)
    assert awarded[g.prizes[1].id] == 5 and awarded[g.prizes[2].id] == 2, "300 entries use up both stocks"
    assert any(e.outcome == "no_stock" for e in made)
    # points are lots in the ledger, coupons are the customer's coupons, in the entry's own transaction
    for customer in range(100, 107):
        mine = [e for e in made if e.customer_id == customer]
        points = sum(e.points or 0 for e in mine)
        assert balance(state, customer, T0 + DAY).available == points
        assert sorted(lot.order_id or "" for lot in lots(state, customer)) == sorted(
            f"d11:{e.seq}" for e in mine if e.points)  # fmt: skip
        codes = {c.code for c in customer_coupons(state, customer)}
        assert codes == {e.coupon_code for e in mine if e.coupon_code}
        assert all(c.campaign_id == "giveaway:d11" for c in customer_coupons(state, customer))
    r = audit.report(state, "d11", at=T0 + 5 * HOUR)
    spent = sum(e.value_fen for e in made)
    assert (r.entries, r.entrants, r.spent_fen, r.giveaway.spent_fen) == (300, 7, spent, spent)
    assert r.winners == len({e.customer_id for e in made if e.won})
    assert sum(r.outcomes.values()) == 300 and r.outcomes["won"] == sum(e.won for e in made)
    assert [(x.given, x.given_fen) for x in r.prizes] == [
        (awarded[p.id], awarded[p.id] * p.value_fen) for p in g.prizes]  # fmt: skip
    assert [x.prize.awarded for x in r.prizes] == [awarded[p.id] for p in g.prizes]
    page, total = audit.entries(state, "d11", limit=5)
    assert total == 300 and [e.seq for e in page] == [300, 299, 298, 297, 296]


def test_a_retried_request_draws_once(state: StateStore) -> None:
    coupon_template(state)
    create(state, draw_spec(), by="ops", now=T0 - DAY)
    first = enter(state, "d11", 7, idempotency_key="till-42", now=T0)
    before = snapshot(state)
    again = enter(state, "d11", 7, idempotency_key="till-42", now=T0 + HOUR)
    assert again.replayed and not first.replayed
    assert (again.seq, again.outcome, again.value_fen, again.lot_id, again.coupon_id) == (
        first.seq, first.outcome, first.value_fen, first.lot_id, first.coupon_id)  # fmt: skip
    assert snapshot(state) == before
    refused(state, Conflict, "idempotency_key", lambda: enter(state, "d11", 8, idempotency_key="till-42", now=T0))
    close(state, "d11", by="ops", now=T0 + 2 * HOUR)
    assert enter(state, "d11", 7, idempotency_key="till-42", now=T0 + 3 * HOUR).seq == first.seq  # even once closed


def test_refusals_name_the_giveaway_and_field_and_change_nothing(state: StateStore) -> None:
    coupon_template(state)
    limited = draw_spec(per_person_daily=2, per_person_total=3, eligible=(1, 2, 3), closes_at=T0 + 2 * DAY)
    create(state, limited, by="ops", now=T0 - DAY)
    wins = draw_spec("wins", prizes=(PrizeSpec("points", "p", 1, points=10),), prizes_per_person=2, miss_weight=0)
    create(state, wins, by="ops", now=T0 - DAY)

    def go(gid: str, customer: int, at: datetime, key: str = "new") -> Any:
        return lambda: enter(state, gid, customer, idempotency_key=key, now=at)

    refused(state, Conflict, "opens_at", go("d11", 1, T0 - HOUR), "'d11'", "opens on")
    refused(state, Conflict, "closes_at", go("d11", 1, T0 + 2 * DAY), "'d11'", "closed on")
    refused(state, NotFound, "giveaway_id", go("nope", 1, T0), "'nope'")
    refused(state, Conflict, "customer_id", go("d11", 9, T0), "customer 9", "not eligible")
    refused(state, InputError, "customer_id", lambda: enter(state, "d11", -1, idempotency_key="k", now=T0))
    refused(state, InputError, "idempotency_key", lambda: enter(state, "d11", 1, idempotency_key=" ", now=T0))
    refused(state, InputError, "now", lambda: enter(state, "d11", 1, idempotency_key="k", now=datetime(2026, 11, 11)))
    enter(state, "d11", 1, idempotency_key="a", now=T0)
    enter(state, "d11", 1, idempotency_key="b", now=T0 + HOUR)
    refused(state, Conflict, "per_person_daily", go("d11", 1, T0 + 2 * HOUR), "customer 1", "2026-11-11")
    enter(state, "d11", 1, idempotency_key="c", now=T0 + DAY + HOUR)  # 11-12 in China: a new day
    refused(state, Conflict, "per_person_total", go("d11", 1, T0 + DAY + 2 * HOUR), "customer 1", "3 entries")
    enter(state, "wins", 5, idempotency_key="a", now=T0)
    enter(state, "wins", 5, idempotency_key="b", now=T0)
    refused(state, Conflict, "prizes_per_person", go("wins", 5, T0), "customer 5", "2 prizes")
    close(state, "d11", by="ops", now=T0 + DAY + 3 * HOUR)
    refused(state, Conflict, "closed_at", go("d11", 2, T0 + DAY + 4 * HOUR), "'d11'", "closed on")


def drawing(seed: str, giveaway_id: str, seq: int, weights: list[int], miss: int, want: int | None) -> int:
    """A customer whose entry number ``seq`` draws prize ``want`` (an index; None: no prize) with this seed."""
    return next(c for c in range(1, 10_000) if pick(entry_draw(seed, giveaway_id, seq, c), weights, miss) == want)


def test_the_budget_is_never_exceeded_and_a_spent_budget_refuses(state: StateStore) -> None:
    prizes = (PrizeSpec("gift", "lamp", 50, value_fen=200, stock=9), PrizeSpec("gift", "pen", 50, value_fen=100,
                                                                                 stock=9))  # fmt: skip
    create(state, draw_spec("tight", budget_fen=250, prizes=prizes, miss_weight=0), by="ops", now=T0 - DAY)
    seed = stored_seed(state, "tight")

    def entry(seq: int, want: int) -> Any:
        customer = drawing(seed, "tight", seq, [50, 50], 0, want)
        return enter(state, "tight", customer, idempotency_key=f"k{seq}", now=T0)

    first, second, third = entry(1, 1), entry(2, 0), entry(3, 1)  # a pen, a lamp, a pen
    assert (first.outcome, first.value_fen) == ("won", 100)
    lamp = audit.get(state, "tight").prizes[0]
    assert (second.outcome, second.chosen_prize_id, second.prize_id, second.value_fen) == (
        "no_budget",
        lamp.id,
        None,
        0,
    )
    assert (third.outcome, third.value_fen) == ("won", 100)  # 50 fen left: less than any prize
    error = refused(state, Conflict, "budget_fen", lambda: enter(state, "tight", 999, idempotency_key="z", now=T0))
    assert error.message == "the budget of giveaway 'tight' is spent (200 of 250 fen given)"
    assert audit.get(state, "tight").spent_fen == 200
    create(state, draw_spec("one", prizes=(PrizeSpec("gift", "tv", 1, value_fen=100, stock=1),), miss_weight=0), by="o")
    enter(state, "one", 1, idempotency_key="a", now=T0)
    refused(state, Conflict, "stock", lambda: enter(state, "one", 2, idempotency_key="b", now=T0), "every prize")


def test_red_packets_split_by_the_seed_and_claimed_in_turn(state: StateStore) -> None:
    create(state, packet_spec(point_value=Decimal("0.005")), by="ops", now=T0 - DAY)  # 1 fen = 2 points
    seed = stored_seed(state, "rp")
    with state.connect() as conn:
        stored = conn.execute(select(giveaway_packets.c.amount_fen).order_by(giveaway_packets.c.number)).scalars()
        amounts = [int(a) for a in stored]
    assert amounts == split_packets(seed, "rp", 1000, 10) and sum(amounts) == 1000 and min(amounts) >= 1
    made = [enter(state, "rp", c, idempotency_key=f"grab-{c}", now=T0 + c * HOUR / 100) for c in range(10)]
    assert [(e.packet, e.value_fen, e.points) for e in made] == [(n, a, 2 * a) for n, a in enumerate(amounts, 1)]
    assert all(balance(state, e.customer_id, T0 + DAY).available == e.points for e in made)
    refused(state, Conflict, "prizes_per_person", lambda: enter(state, "rp", 0, idempotency_key="x", now=T0), "1")
    error = refused(state, Conflict, "budget_fen", lambda: enter(state, "rp", 77, idempotency_key="y", now=T0))
    assert error.message == "the budget of giveaway 'rp' is spent (1000 of 1000 fen given)"
    assert audit.report(state, "rp").packets_claimed == 10
    assert audit.verify(state, "rp", at=T0 + DAY).ok


def test_verify_recomputes_every_entry_from_the_published_seed(state: StateStore) -> None:
    coupon_template(state)
    create(state, draw_spec(), by="ops", now=T0 - DAY)
    for i in range(30):
        enter(state, "d11", 1 + i % 4, idempotency_key=f"k{i}", now=T0 + i * timedelta(minutes=5))
    refused(state, Conflict, "seed", lambda: audit.verify(state, "d11", at=T0 + 3 * HOUR), "'d11'", "closes")
    g = close(state, "d11", by="ops", now=T0 + 3 * HOUR)
    assert g.seed is not None and commitment(g.seed) == g.seed_hash and g.closed_by == "ops"
    assert close(state, "d11", by="someone", now=T0 + 4 * HOUR).closed_at == g.closed_at  # closing twice: no change
    checked = audit.verify(state, "d11")
    assert checked.ok and checked.problems == () and checked.entries == 30 and checked.seed == g.seed
    # the same seed reproduces the same outcomes; another seed fails the commitment and the draws
    wrong = audit.verify(state, "d11", seed=new_seed())
    assert not wrong.ok and "not the commitment" in wrong.problems[0]
    assert any("entry 1 " in p for p in wrong.problems)
    assert not audit.verify(state, "d11", seed="nonsense").ok
    # a record changed after the fact is caught: the outcome, the budget counter, a payout without an entry
    with state.begin() as conn:
        miss = (
            conn.execute(select(giveaway_entries.c.seq).where(giveaway_entries.c.outcome == "miss")).scalars().first()
        )
        conn.execute(update(giveaway_entries).where(giveaway_entries.c.seq == miss).values(outcome="won"))
        conn.execute(update(giveaways).values(spent_fen=giveaways.c.spent_fen + 1))
    tampered = audit.verify(state, "d11")
    assert not tampered.ok
    assert any(p.startswith(f"entry {miss} ") for p in tampered.problems)
    assert any("fen spent" in p for p in tampered.problems)


def test_odds_and_split_are_pure_and_fair() -> None:
    rng = random.Random(7)
    seed = new_seed()
    assert entry_draw(seed, "g", 5, 9) == entry_draw(seed, "g", 5, 9) != entry_draw(seed, "g", 5, 10)
    counts: Counter[int | None] = Counter(pick(entry_draw(seed, "g", k, 1), [1, 3], 6) for k in range(20_000))
    assert abs(counts[0] / 20_000 - 0.1) < 0.01 and abs(counts[1] / 20_000 - 0.3) < 0.015
    assert abs(counts[None] / 20_000 - 0.6) < 0.015
    assert pick("0" * 64, [1], 0) == 0 and pick("f" * 64, [0, 1], 0) == 1
    for _ in range(200):
        s, count = new_seed(), rng.randint(1, 60)
        total = rng.randint(count, 5000)
        amounts = split_packets(s, "rp", total, count)
        assert len(amounts) == count and sum(amounts) == total and min(amounts) >= 1
        assert amounts == split_packets(s, "rp", total, count)
    with pytest.raises(ValueError):
        split_packets(seed, "rp", 3, 4)
    with pytest.raises(ValueError):
        commitment("abcd")
