"""Referrals on SQLite and PostgreSQL, over a small shop whose OneID is refreshed from facts: a self-referral under
two identifiers (a phone and a WeChat openid one person record joins) is refused with the OneID link; rings and a
second referrer are refused, also when the requests race; rewards come once the first paid order is past its
return window, one level only, once under replays and concurrent settle runs; a refunded first order voids; bad
codes and identifiers are refused by field and change nothing."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import func, select

from omnicrm.errors import Conflict, InputError, NotFound, OmnicrmError
from omnicrm.identity.explain import lookup
from omnicrm.identity.refresh import refresh_identity
from omnicrm.loyalty.coupons import Template, create_template, make_code
from omnicrm.loyalty.earning import order_facts
from omnicrm.loyalty.ledger import balance, lots
from omnicrm.loyalty.referral_rewards import SettleResult, referral_page, referral_report, settle_referrals
from omnicrm.loyalty.referrals import (
    Referral,
    ReferralRefused,
    load_programme,
    member_code,
    normalise_referral_code,
    qr_svg,
    record_referral,
    record_visit,
    referral_link,
    save_programme,
)
from omnicrm.portrait.inputs import PortraitInputs
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import coupons, point_lots, referral_codes, referral_programmes, referral_visits, referrals
from omnicrm.store.state import StateStore
from tests.loyalty.checks import check_ledger, counts, run
from tests.portrait.test_tags import INGESTED, line, write

UTC = dt.UTC
NOW = dt.datetime(2026, 5, 1, 2, 0, tzinfo=UTC)  # when the referrals are recorded
APP = "wxshop"
ALICE_OPENID = "oAliceOpenid000000001"
PEOPLE = {"alice": "13900000011", "bob": "13900000012", "carol": "13900000013", "dan": "13900000014",
          "erin": "13900000015", "frank": "13900000016"}  # fmt: skip
MEMBERS = [f"139000001{i:02d}" for i in range(20)]  # more members, for the races and the settle runs
PROGRAMME = {"referrer_points": 100, "referrer_coupon": "REF20", "referee_points": 50, "return_window_days": 7,
             "starts_at": "2026-01-01T00:00:00+08:00", "landing_url": "https://shop.example/welcome?from=crm"}  # fmt: skip


@dataclass
class Shop:
    state: StateStore
    root: Path
    ids: dict[tuple[Path, str], int] = field(default_factory=dict)

    @property
    def facts(self) -> FactsStore:
        return FactsStore(self.root / "facts")

    @property
    def derived(self) -> DerivedStore:
        return DerivedStore(self.root / "derived")

    @property
    def snapshot(self) -> Path:
        snap = self.derived.current("identity")
        assert snap is not None
        return snap

    def refresh(self) -> None:
        refresh_identity(self.state, Engine(self.facts), self.derived, probabilistic=False)

    def id(self, phone: str) -> int:
        """The customer holding the phone (of a name in PEOPLE) in the snapshot in force."""
        key = (self.snapshot, phone)
        if key not in self.ids:
            found = lookup(self.snapshot, "phone", PEOPLE.get(phone, phone))
            assert len(found) == 1, (phone, found)
            self.ids[key] = found[0]
        return self.ids[key]

    def code(self, who: str) -> str:
        return member_code(self.state, self.snapshot, self.id(who))[1]

    def refer(self, referrer: str, value: str, id_type: str = "phone", scope: str = "", **kw: Any) -> Referral:
        value = PEOPLE.get(value, value)
        return record_referral(self.state, referee_type=id_type, referee_value=value, referee_scope=scope,
                               code=self.code(referrer), snapshot=self.snapshot, by="shop", now=kw.pop("now", NOW),
                               **kw)  # fmt: skip

    def orders(self, as_of: dt.datetime) -> Any:
        """The order facts as the loyalty jobs read them (OneID customers, the latest version of each line)."""
        return order_facts(PortraitInputs.load(Engine(self.facts), self.derived, as_of=as_of))


@pytest.fixture
def shop(state: StateStore, tmp_path: Path) -> Shop:
    s = Shop(state, tmp_path)
    person = {"source": "crm", "observed_at": INGESTED}
    write(s.facts, "person", [
        person | {"source_key": "A", "phone": PEOPLE["alice"], "name": "林晓"},
        # Alice's WeChat: the mini-program's member record carries her phone and her openid
        person | {"source": "wechat-mp", "source_key": "wa", "phone": PEOPLE["alice"], "wechat_openid": ALICE_OPENID,
                  "wechat_appid": APP, "name": "林晓"},
        person | {"source_key": "B", "phone": PEOPLE["bob"], "name": "王强"},
        person | {"source_key": "D", "phone": PEOPLE["dan"]},
        person | {"source_key": "E", "phone": PEOPLE["erin"]},
        person | {"source_key": "F", "phone": PEOPLE["frank"], "email": "frank@mail.example.cn"},
        *(person | {"source_key": f"M{i}", "phone": p} for i, p in enumerate(MEMBERS)),
    ], "import-0000000001")  # fmt: skip
    # Carol bought before anyone referred her
    write(s.facts, "order_line", [line("C1", PEOPLE["carol"], "2026-01-10T03:00:00", 99.0)], "import-0000000002")
    s.refresh()
    create_template(state, Template("REF20", "推荐有礼 20 元券", "amount_off", total_quantity=1000, per_person_limit=50,
                                    amount_off_fen=2000, valid_days=30), by="ops", now=NOW)  # fmt: skip
    save_programme(state, PROGRAMME, by="ops")
    return s


def rows(state: StateStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the referral tables, to show that a refusal by input changed nothing."""
    with state.connect() as conn:
        return {t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns)).all()]
                for t in (referral_programmes, referral_codes, referral_visits, referrals)}  # fmt: skip


def orders(*lines: tuple[int, str, dt.datetime, str, str]) -> pa.Table:
    """Orders (customer, order id, paid at, paid, refunded) in the shape settle reads."""
    return pa.table({
        "customer_id": pa.array([c for c, *_ in lines], pa.int64()), "source": ["tmall"] * len(lines),
        "order_id": [o for _, o, *_ in lines],
        "paid_at": pa.array([at for _, _, at, *_ in lines], pa.timestamp("us", tz="UTC")),
        "paid": pa.array([Decimal(p) for *_, p, _ in lines], pa.decimal128(18, 2)),
        "refunded": pa.array([Decimal(r) for *_, r in lines], pa.decimal128(18, 2)),
    })  # fmt: skip


def points(state: StateStore, customer_id: int, at: dt.datetime = NOW + dt.timedelta(days=60)) -> int:
    return balance(state, customer_id, at).balance


def referral_coupons(state: StateStore) -> list[tuple[str, int]]:
    with state.connect() as conn:
        q = select(coupons.c.idempotency_key, coupons.c.customer_id).where(coupons.c.idempotency_key.like("referral:%"))
        return sorted((k, int(c)) for k, c in conn.execute(q).all())


def test_self_referral_under_two_identifiers_is_refused_with_the_oneid_link(shop: Shop) -> None:
    alice = shop.id("alice")
    before = counts(shop.state)
    with pytest.raises(ReferralRefused) as info:
        shop.refer("alice", ALICE_OPENID, "wechat_openid", APP)
    refused = info.value
    assert refused.message == (f"referral refused: customer {alice} cannot refer themselves: OneID joins the referee's "
                               f"wechat_openid to customer {alice}, the referrer")  # fmt: skip
    link = (f"wechat_openid {ALICE_OPENID} is joined to phone +86{PEOPLE['alice']} by wechat-mp person record wa "
            "(same record)")  # fmt: skip
    assert refused.problems[0].reason == link and refused.problems[0].field == "referee"
    body = refused.as_dict()
    assert body["code"] == "referral_refused" and body["reason"] == "self"
    assert body["explanation"]["links"][0] == {
        "id_type": "wechat_openid", "value": ALICE_OPENID, "how": "same record", "record": "wechat-mp person record wa",
        "via_type": "phone", "via_value": "+86" + PEOPLE["alice"]}  # fmt: skip
    # the attempt is kept for the console, nothing else: no claim, no points, no coupon
    kept, total = referral_page(shop.state, status="refused")
    assert total == 1 and kept[0].reason == "self" and kept[0].referee_id == alice == kept[0].referrer_id
    assert kept[0].explanation is not None and kept[0].explanation["details"][0] == link
    assert referral_page(shop.state, status="pending")[1] == 0 and counts(shop.state) == before
    # her phone, the identifier the code is known by, is refused the same way
    with pytest.raises(ReferralRefused, match="cannot refer themselves"):
        shop.refer("alice", "alice")


def test_oneid_joining_them_later_voids_a_pending_self_referral(shop: Shop) -> None:
    bob = shop.id("bob")
    second = "13700000001"  # unknown to OneID when Bob brings "a friend"
    pending = shop.refer("bob", second)
    assert pending.status == "pending" and pending.referee_id is None
    # later the shop's export shows both phones on one account, joined by one e-mail address
    write(shop.facts, "person", [
        {"source": "shop", "source_key": "x", "phone": PEOPLE["bob"], "email": "bob@mail.example.cn", "observed_at": INGESTED},
        {"source": "shop", "source_key": "y", "phone": second, "email": "bob@mail.example.cn", "observed_at": INGESTED},
    ], "import-0000000003")  # fmt: skip
    write(
        shop.facts, "order_line", [line("S1", second, "2026-05-02T03:00:00", 199.0, source="jd")], "import-0000000004"
    )
    shop.refresh()
    assert shop.id(second) == bob
    done = settle_referrals(shop.state, shop.orders(NOW + dt.timedelta(days=20)), NOW + dt.timedelta(days=20),
                            snapshot=shop.snapshot)  # fmt: skip
    assert (done.void, done.rewarded, done.points) == ({"self": 1}, 0, 0)
    (void,), _ = referral_page(shop.state, status="void")
    assert void.id == pending.id and void.reason == "self" and void.explanation is not None
    sentences = void.explanation["details"]
    assert (
        f"phone +86{PEOPLE['bob']} is joined to email bob@mail.example.cn by shop person record x (same email)"
        in sentences
    )
    assert points(shop.state, bob) == 0 and referral_coupons(shop.state) == []


def test_rings_are_refused_with_the_chain(shop: Shop) -> None:
    alice, dan, erin = shop.id("alice"), shop.id("dan"), shop.id("erin")
    first = shop.refer("alice", "dan")
    with pytest.raises(ReferralRefused) as back:
        shop.refer("dan", "alice")
    assert back.value.referral.reason == "ring"
    assert [p.reason for p in back.value.problems] == [
        f"customer {alice} referred customer {dan} (referral #{first.id})"
    ]
    second = shop.refer("dan", "erin")
    with pytest.raises(ReferralRefused) as around:
        shop.refer("erin", "alice")
    assert around.value.message == (f"referral refused: customer {alice} is up customer {erin}'s chain of referrers: "
                                    "the referral would close a ring")  # fmt: skip
    assert [p.reason for p in around.value.problems] == [
        f"customer {alice} referred customer {dan} (referral #{first.id})",
        f"customer {dan} referred customer {erin} (referral #{second.id})",
    ]
    assert referral_page(shop.state, status="pending")[1] == 2 and referral_page(shop.state, status="refused")[1] == 2


@pytest.mark.timeout(180)
def test_racing_referrals_never_close_a_ring(shop: Shop) -> None:
    """Pairs referring each other and a triangle, all at once: one side of each pair and two sides of the triangle
    are recorded, the rest refused as rings."""
    m = MEMBERS
    pairs = [(m[i], m[i + 1]) for i in range(0, 8, 2)]
    triangle = [(m[8], m[9]), (m[9], m[10]), (m[10], m[8])]
    work = [*pairs, *((b, a) for a, b in pairs), *triangle]
    for referrer, _ in work:
        shop.code(referrer)  # codes first: the race is about the referrals

    def attempt(i: int) -> Referral:
        referrer, referee = work[i]
        return shop.refer(referrer, referee)

    results = run(len(work), attempt)
    assert [r for r in results if not isinstance(r, Referral | ReferralRefused)] == []
    for a, b in pairs:
        both = [results[work.index((a, b))], results[work.index((b, a))]]
        assert sorted(type(r).__name__ for r in both) == ["Referral", "ReferralRefused"], both
        assert next(r for r in both if isinstance(r, ReferralRefused)).referral.reason == "ring"
    ends = [results[work.index(t)] for t in triangle]
    assert sum(isinstance(r, Referral) for r in ends) == 2
    assert [r.referral.reason for r in ends if isinstance(r, ReferralRefused)] == ["ring"]


def test_one_referrer_per_person_whatever_identifier_and_repeats_find_the_first(shop: Shop) -> None:
    frank = shop.id("frank")
    first = shop.refer("bob", "frank")
    assert shop.refer("bob", "frank").id == first.id  # the shop sending it again
    keyed = shop.refer("dan", "13700000009", idempotency_key="signup-9")
    assert shop.refer("dan", "13700000009", idempotency_key="signup-9").id == keyed.id
    with pytest.raises(Conflict) as reused:
        shop.refer("dan", "13700000008", idempotency_key="signup-9")
    assert reused.value.problems[0].field == "idempotency_key"
    with pytest.raises(ReferralRefused) as again:  # Frank's e-mail: the same person to OneID
        shop.refer("alice", "frank@mail.example.cn", "email")
    assert (
        again.value.referral.reason == "already_referred"
        and again.value.as_dict()["explanation"]["referral_id"] == first.id
    )
    assert again.value.message == (f"referral refused: customer {frank} was already referred by customer "
                                   f"{shop.id('bob')} (referral #{first.id}); a referee has one referrer")  # fmt: skip
    assert again.value.problems[0].reason == (f"email frank@mail.example.cn is joined to phone +86{PEOPLE['frank']} "
                                              "by crm person record F (same record)")  # fmt: skip
    with pytest.raises(ReferralRefused, match="is not new") as carol:
        shop.refer("alice", "carol")
    assert carol.value.problems[0].reason == "tmall order C1 (2026-01-10T03:00:00+00:00)"


@pytest.mark.timeout(180)
def test_racing_referrers_of_one_new_person_give_one_referral(shop: Shop) -> None:
    referrers = MEMBERS[:10]
    for r in referrers:
        shop.code(r)
    results = run(10, lambda i: shop.refer(referrers[i], "13700000077"))
    won = [r for r in results if isinstance(r, Referral)]
    lost = [r for r in results if isinstance(r, ReferralRefused)]
    assert len(won) == 1 and len(lost) == 9, results
    assert {r.referral.reason for r in lost} == {"already_referred"}
    assert referral_page(shop.state, status="pending")[1] == 1


def test_rewards_after_the_return_window_one_level_and_once(shop: Shop) -> None:
    bob = shop.id("bob")
    n1, n2 = "13700000021", "13700000022"
    to_n1 = shop.refer("bob", n1)  # two new people, unknown to OneID when they arrive
    write(shop.facts, "order_line", [line("N1-1", n1, "2026-05-03T04:00:00", 199.0)], "import-0000000005")
    shop.refresh()
    to_n2 = shop.refer(n1, n2)  # the new customer refers a friend in turn (with their own code)
    write(shop.facts, "order_line", [line("N2-1", n2, "2026-05-04T04:00:00", 88.0)], "import-0000000006")
    shop.refresh()
    c1, c2 = shop.id(n1), shop.id(n2)

    def settle(day: int) -> SettleResult:
        at = dt.datetime(2026, 5, day, 12, tzinfo=UTC)
        return settle_referrals(shop.state, shop.orders(at), at, snapshot=shop.snapshot)

    inside = settle(6)
    assert (inside.waiting, inside.rewarded, inside.points) == (2, 0, 0)
    (waiting,), _ = referral_page(shop.state, referrer_id=bob)
    assert waiting.order == "tmall:N1-1" and waiting.due_at == dt.datetime(2026, 5, 10, 4, tzinfo=UTC)
    assert points(shop.state, bob) == 0 and referral_coupons(shop.state) == []

    first = settle(10)  # N1's window is over; N2's ends on the 11th
    assert (first.rewarded, first.waiting, first.points, first.coupons) == (1, 1, 150, 1)
    assert (points(shop.state, bob), points(shop.state, c1)) == (100, 50)
    assert referral_coupons(shop.state) == [(f"referral:{to_n1.id}:referrer", bob)]

    second = settle(12)
    assert (second.rewarded, second.points, second.coupons) == (1, 150, 1)
    assert (points(shop.state, bob), points(shop.state, c1), points(shop.state, c2)) == (100, 150, 50), "one level"
    assert referral_coupons(shop.state) == sorted([(f"referral:{to_n1.id}:referrer", bob),
                                                   (f"referral:{to_n2.id}:referrer", c1)])  # fmt: skip
    for _ in range(2):  # replays give nothing more
        again = settle(20)
        assert (again.rewarded, again.points, again.coupons, again.void) == (0, 0, 0, {})
    assert (points(shop.state, bob), points(shop.state, c1), points(shop.state, c2)) == (100, 150, 50)
    assert len(referral_coupons(shop.state)) == 2
    earned = [lot for c in (bob, c1, c2) for lot in lots(shop.state, c)]
    assert sorted(lot.order_id or "" for lot in earned if lot.source == "referral") == sorted(
        [f"{to_n1.id}:referrer", f"{to_n1.id}:referee", f"{to_n2.id}:referrer", f"{to_n2.id}:referee"])  # fmt: skip
    for c in (bob, c1, c2):
        check_ledger(shop.state, c, NOW + dt.timedelta(days=30))
    report = referral_report(shop.state)
    top = report["referrers"][0]
    assert report["totals"]["rewarded"] == 2 and report["totals"]["referrer_points"] == 200
    assert {top["referrer_id"], report["referrers"][1]["referrer_id"]} == {bob, c1} and top["rewarded"] == 1
    assert top["coupons"] == 1 and top["referee_points"] == 50


@pytest.mark.timeout(180)
def test_concurrent_settle_runs_reward_each_referral_once(shop: Shop) -> None:
    referees = MEMBERS[10:16]  # known to OneID, never bought: new customers
    made = [shop.refer(MEMBERS[i], referee) for i, referee in enumerate(referees)]
    paid = dt.datetime(2026, 5, 2, tzinfo=UTC)
    table = orders(*((shop.id(r), f"R{i}", paid, "120.00", "0") for i, r in enumerate(referees)))
    at = paid + dt.timedelta(days=8)
    results = run(8, lambda _: settle_referrals(shop.state, table, at, snapshot=shop.snapshot))
    assert all(isinstance(r, SettleResult) for r in results), results
    assert sum(r.rewarded for r in results) == 6 and sum(r.points for r in results) == 6 * 150
    assert sum(r.coupons for r in results) == 6
    with shop.state.connect() as conn:
        lots_ = conn.execute(select(func.count()).select_from(point_lots).where(point_lots.c.source == "referral"))
        assert lots_.scalar_one() == 12
    assert referral_coupons(shop.state) == sorted((f"referral:{r.id}:referrer", r.referrer_id) for r in made)
    for i, referee in enumerate(referees):
        assert points(shop.state, shop.id(MEMBERS[i])) == 100 and points(shop.state, shop.id(referee)) == 50
        check_ledger(shop.state, shop.id(referee), at)
    assert referral_page(shop.state, status="rewarded")[1] == 6


def test_a_refunded_first_order_voids_and_an_earlier_order_means_not_new(shop: Shop) -> None:
    refunded, late = shop.refer("bob", "dan"), shop.refer("bob", "erin")
    dan, erin = shop.id("dan"), shop.id("erin")
    table = orders(
        (dan, "D1", dt.datetime(2026, 5, 2, tzinfo=UTC), "300.00", "300.00"),  # returned in full
        (dan, "D2", dt.datetime(2026, 5, 3, tzinfo=UTC), "50.00", "0"),  # a later order does not count
        (erin, "E0", dt.datetime(2026, 4, 20, tzinfo=UTC), "10.00", "0"),  # a late export: she had bought before
        (erin, "E1", dt.datetime(2026, 5, 2, tzinfo=UTC), "80.00", "0"),
    )
    done = settle_referrals(shop.state, table, dt.datetime(2026, 6, 1, tzinfo=UTC), snapshot=shop.snapshot)
    assert (done.void, done.rewarded, done.points) == ({"refunded": 1, "not_new": 1}, 0, 0)
    voided = {r.id: r for r in referral_page(shop.state, status="void")[0]}
    assert voided[refunded.id].reason == "refunded" and voided[refunded.id].order == "tmall:D1"
    assert voided[refunded.id].explanation == {
        "reason": "refunded", "summary": "the referee's first paid order, tmall order D1, was refunded",
        "details": ["paid 300.00, refunded 300.00"]}  # fmt: skip
    assert voided[late.id].reason == "not_new" and voided[late.id].explanation is not None
    assert voided[late.id].explanation["orders"] == [{"order": "tmall order E0", "at": "2026-04-20T00:00:00+00:00"}]
    assert points(shop.state, shop.id("bob")) == 0 and referral_coupons(shop.state) == []
    again = settle_referrals(shop.state, table, dt.datetime(2026, 6, 2, tzinfo=UTC), snapshot=shop.snapshot)
    assert (again.pending, again.void) == (0, {})
    with pytest.raises(ReferralRefused, match="already referred"):  # void, but still their one referral
        shop.refer("alice", "dan")


def test_bad_input_is_refused_by_field_and_changes_nothing(shop: Shop) -> None:
    code = shop.code("bob")
    shop.refer("bob", "13700000031", idempotency_key="k1")
    before, ledger = rows(shop.state), counts(shop.state)
    stranger = make_code()
    while stranger == code:
        stranger = make_code()
    mistyped = code[:-1] + ("2" if code[-1] != "2" else "3")

    def refer(**kw: Any) -> Any:
        base: dict[str, Any] = {"referee_type": "phone", "referee_value": "13700000032", "code": code,
                                "snapshot": shop.snapshot, "by": "shop", "now": NOW}  # fmt: skip
        return lambda: record_referral(shop.state, **{**base, **kw})

    cases: list[tuple[type[OmnicrmError], str, Any, str]] = [
        (NotFound, "code", refer(code=stranger), f"referral code {stranger} is unknown"),
        (NotFound, "code", refer(code=mistyped), "is unknown"),
        (InputError, "code", refer(code="hello"), "is not a referral code"),
        (InputError, "code", refer(code=None), "needs the referrer's code or the link visit"),
        (InputError, "code", refer(visit_id=1), "needs the referrer's code or the link visit"),
        (NotFound, "visit_token", refer(code=None, visit_id=999), "referral visit 999 is unknown"),
        (InputError, "referee.value", refer(referee_value="12345"), "not usable as an identifier"),
        (InputError, "referee.value", refer(referee_value="13800000000"), "placeholder phone"),
        (InputError, "referee.type", refer(referee_type="fax"), "unknown identifier type 'fax'"),
        (InputError, "referee.scope", refer(referee_type="wechat_openid", referee_value=ALICE_OPENID),
         "needs its scope"),
        (Conflict, "idempotency_key", refer(idempotency_key="k1"), "was used for another referral"),
        (Conflict, "code", refer(now=dt.datetime(2025, 12, 1, tzinfo=UTC)), "not active"),
        (InputError, "now", refer(now=dt.datetime(2026, 5, 1)), "no time zone"),
    ]  # fmt: skip
    for error, named, call, words in cases:
        with pytest.raises(error) as info:
            call()
        assert type(info.value) is error, (words, info.value)
        assert info.value.problems and info.value.problems[0].field == named, (words, info.value)
        assert words in str(info.value), (words, str(info.value))
    with pytest.raises(NotFound, match="unknown"):
        record_visit(shop.state, stranger, user_agent="x", now=NOW)
    assert rows(shop.state) == before and counts(shop.state) == ledger


def test_a_bad_programme_is_refused_by_field_and_versions_stay(shop: Shop) -> None:
    before = rows(shop.state)
    bad = {"referrer_points": -1, "referee_coupon": "NOPE", "starts_at": "2026-06-01T00:00:00",
           "landing_url": "ftp://shop.example"}  # fmt: skip
    with pytest.raises(InputError) as info:
        save_programme(shop.state, bad, by="ops")
    assert {p.field for p in info.value.problems} == {"referrer_points", "starts_at"}
    wrong = {**PROGRAMME, "referrer_points": 0, "referrer_coupon": None, "referee_coupon": "NOPE",
             "ends_at": "2025-01-01T00:00:00+08:00", "landing_url": "ftp://shop.example"}  # fmt: skip
    with pytest.raises(InputError) as info:
        save_programme(shop.state, wrong, by="ops")
    assert [p.field for p in info.value.problems] == ["ends_at", "referrer_points", "landing_url"]
    with pytest.raises(InputError) as info:
        save_programme(shop.state, {**PROGRAMME, "referee_coupon": "NOPE"}, by="ops")
    assert [(p.field, p.reason) for p in info.value.problems] == [
        ("referee_coupon", "no coupon template 'NOPE': create it first")
    ]
    assert rows(shop.state) == before
    second = save_programme(shop.state, {**PROGRAMME, "referrer_points": 200}, by="ops", note="double for 618")
    assert second.version == 2 and load_programme(shop.state).referrer_points == 200
    assert load_programme(shop.state, 1).referrer_points == 100


def test_codes_links_qr_codes_and_link_visits(shop: Shop) -> None:
    bob = shop.id("bob")
    owner, code = member_code(shop.state, shop.snapshot, bob)
    assert owner == bob and member_code(shop.state, shop.snapshot, bob) == (bob, code), "the code never changes"
    assert normalise_referral_code(f" {code[:5].lower()}-{code[5:]} ") == code and len(code) == 10
    assert referral_link("https://crm.shop.example/", code) == f"https://crm.shop.example/r/{code}"
    svg = qr_svg(referral_link("https://crm.shop.example", code))
    assert svg.startswith("<svg") and 'class="segno"' in svg and "<path" in svg
    with pytest.raises(NotFound):
        member_code(shop.state, shop.snapshot, 999_999)
    visit = record_visit(shop.state, code, user_agent="Mozilla/5.0 (iPhone)", now=NOW)
    via_link = record_referral(shop.state, referee_type="phone", referee_value="13700000041", visit_id=visit,
                               snapshot=shop.snapshot, by="shop", now=NOW)  # fmt: skip
    assert (via_link.visit_id, via_link.code, via_link.referrer_id) == (visit, code, bob)
    again = record_referral(shop.state, referee_type="phone", referee_value="13700000041", visit_id=visit,
                            snapshot=shop.snapshot, by="shop", now=NOW)  # fmt: skip
    assert again.id == via_link.id
    with pytest.raises(Conflict, match="already brought referral"):
        record_referral(shop.state, referee_type="phone", referee_value="13700000042", visit_id=visit,
                        snapshot=shop.snapshot, by="shop", now=NOW)  # fmt: skip
    with shop.state.connect() as conn:
        stored = conn.execute(select(referral_visits)).one()
    assert (stored.code, stored.user_agent) == (code, "Mozilla/5.0 (iPhone)")
    assert json.loads(json.dumps(via_link.as_dict()))["recorded_at"] == NOW.isoformat()
