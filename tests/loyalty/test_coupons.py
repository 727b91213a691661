"""Coupons on SQLite and PostgreSQL: templates, idempotent and limited issue (also to a whole list at once),
redemption online and at the till with the store and guide credited, clear refusals that change nothing, reversal
on refund, single use and a never-exceeded budget under hundreds of concurrent threads, and the report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from omnicrm.errors import Conflict, InputError, NotFound, OmnicrmError
from omnicrm.loyalty.coupon_redemptions import Redemption, discount, redeem, report, reverse
from omnicrm.loyalty.coupons import (
    ALPHABET,
    Coupon,
    Template,
    coupon,
    create_template,
    customer_coupons,
    issue,
    issue_many,
    make_code,
    normalise_code,
)
from omnicrm.store.schema import coupon_redemptions, coupon_templates, coupons
from omnicrm.store.state import StateStore
from tests.loyalty.checks import run

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def tmpl(id_: str, **kw: Any) -> Template:
    """A template: 10 yuan off, 30 days from issue, 100 coupons, one per person, online and in stores."""
    base: dict[str, Any] = {"name": id_, "kind": "amount_off", "amount_off_fen": 1000, "total_quantity": 100,
                            "valid_days": 30}  # fmt: skip
    base.update(kw)
    return Template(id_, **base)


def make(state: StateStore, id_: str, **kw: Any) -> Template:
    return create_template(state, tmpl(id_, **kw), by="ops", now=T0)


def snapshot(state: StateStore) -> list[list[tuple[Any, ...]]]:
    """Every row of the coupon tables, to show a refusal changed nothing."""
    with state.connect() as conn:
        return [[tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns)).all()]
                for t in (coupon_templates, coupons, coupon_redemptions)]  # fmt: skip


def refused(state: StateStore, error: type[OmnicrmError], field: str, call: Any, *words: str) -> OmnicrmError:
    """``call()`` raises ``error`` naming ``field`` and the ``words``, and leaves every coupon table as it was."""
    before = snapshot(state)
    with pytest.raises(error) as info:
        call()
    assert info.value.problems and info.value.problems[0].field == field, info.value
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert snapshot(state) == before
    return info.value


def test_templates_are_checked_and_created_once(state: StateStore) -> None:
    t = make(state, "T10")
    assert make(state, "T10") == t  # the same definition again: idempotent
    refused(state, Conflict, "id", lambda: make(state, "T10", amount_off_fen=2000), "T10")
    bad = [
        ({"kind": "gift"}, "kind"),
        ({"amount_off_fen": 0}, "amount_off_fen"),
        ({"kind": "percent_off", "amount_off_fen": None, "percent_off": 100}, "percent_off"),
        ({"kind": "threshold", "amount_off_fen": 5000, "min_spend_fen": 3000}, "min_spend_fen"),
        ({"total_quantity": 0}, "total_quantity"),
        ({"per_person_limit": -1}, "per_person_limit"),
        ({"channels": ("wechat",)}, "channels"),
        ({"valid_days": None}, "valid_until"),
        ({"valid_days": None, "valid_until": datetime(2026, 5, 1)}, "valid_until"),  # no time zone
        ({"valid_from": T0, "valid_until": T0 - DAY, "valid_days": None}, "valid_until"),
    ]
    for kw, field in bad:
        refused(state, InputError, field, lambda kw=kw: make(state, "BAD", **kw), "'BAD'")


def test_issue_is_idempotent_and_codes_are_short_and_checked(state: StateStore) -> None:
    make(state, "T10", per_person_limit=3)
    first = issue(state, "T10", 7, idempotency_key="camp-1:7", campaign_id="camp-1", now=T0)
    again = issue(state, "T10", 7, idempotency_key="camp-1:7", campaign_id="camp-1", now=T0 + DAY)
    assert again == first and len(customer_coupons(state, 7)) == 1
    assert len(first.code) == 10 and set(first.code) <= set(ALPHABET) and first.qr_payload == first.code
    assert first.expires_at == T0 + 30 * DAY and first.starts_at == T0
    # typed at the till in lower case with a hyphen, or scanned from the QR code: the same coupon
    assert coupon(state, f"{first.code[:5].lower()}-{first.code[5:]}") == first
    refused(state, Conflict, "idempotency_key", lambda: issue(state, "T10", 8, idempotency_key="camp-1:7", now=T0))
    wrong = first.code[:-1] + next(ch for ch in ALPHABET if ch != first.code[-1])
    refused(state, NotFound, "code", lambda: coupon(state, wrong), "mistyped")
    refused(state, InputError, "code", lambda: normalise_code("O0I1L"), "not a coupon code")
    refused(state, NotFound, "template_id", lambda: issue(state, "NOPE", 7, now=T0), "NOPE")


def test_quantity_and_per_person_limits(state: StateStore) -> None:
    make(state, "T3", total_quantity=3, per_person_limit=2)
    issue(state, "T3", 1, idempotency_key="a", now=T0)
    issue(state, "T3", 1, idempotency_key="b", now=T0)
    refused(state, Conflict, "per_person_limit", lambda: issue(state, "T3", 1, idempotency_key="c", now=T0), "2")
    issue(state, "T3", 2, idempotency_key="d", now=T0)
    refused(state, Conflict, "total_quantity", lambda: issue(state, "T3", 3, idempotency_key="e", now=T0), "T3")
    assert issue(state, "T3", 1, idempotency_key="a", now=T0).customer_id == 1  # a repeat still answers
    make(state, "OLD", valid_days=None, valid_until=T0 + DAY)
    refused(state, InputError, "valid_until", lambda: issue(state, "OLD", 1, now=T0 + 2 * DAY), "ended")


def test_issue_to_a_list_at_once(state: StateStore) -> None:
    make(state, "SEG", total_quantity=600, per_person_limit=1, valid_days=None, valid_until=T0 + 10 * DAY)
    issue(state, "SEG", 5, idempotency_key="manual-5", now=T0)  # already holds one
    ids = [*range(1, 1001), 3, 4]  # a snapshot's ids, two of them repeated
    result = issue_many(state, "SEG", ids, key="snap-42", campaign_id="c42", now=T0)
    assert len(result.issued) == 599 and not result.repeated
    assert result.refused[5] == "per_person_limit"
    assert sorted(c.customer_id for c in result.issued) == [c for c in range(1, 601) if c != 5]
    assert {c for c, why in result.refused.items() if why == "total_quantity"} == set(range(601, 1001))
    assert all(c.expires_at == T0 + 10 * DAY and c.campaign_id == "c42" for c in result.issued)
    assert len({c.code for c in result.issued}) == 599
    before = snapshot(state)
    again = issue_many(state, "SEG", ids, key="snap-42", now=T0 + DAY)  # a retried job issues nothing new
    assert not again.issued and sorted(c.id for c in again.repeated) == sorted(c.id for c in result.issued)
    assert snapshot(state) == before


def test_discounts_of_each_kind() -> None:
    pct = tmpl("P", kind="percent_off", amount_off_fen=None, percent_off=15, max_off_fen=2000)
    assert discount(pct, "X", 9999) == (9999, 1499)  # 15 % rounds down to the fen
    assert discount(pct, "X", 50000) == (50000, 2000)  # capped
    thr = tmpl("M", kind="threshold", amount_off_fen=3000, min_spend_fen=20000, category="shoes")
    assert discount(thr, "X", 50000, {"shoes": 20000, "socks": 30000}) == (20000, 3000)
    assert discount(tmpl("A", amount_off_fen=1000), "X", 600) == (600, 600)  # never more than the order


def test_redeem_online_and_at_the_till_credits_store_and_guide(state: StateStore) -> None:
    make(state, "OFF10", per_person_limit=5)
    make(state, "MJ", kind="threshold", amount_off_fen=3000, min_spend_fen=20000, channels=("store",))
    web = issue(state, "OFF10", 1, now=T0)
    online = redeem(state, web.code, channel="online", order_id="tm-1", amount_fen=8800, customer_id=1, at=T0 + DAY)
    assert (online.discount_fen, online.channel, online.store_code) == (1000, "online", None)
    assert coupon(state, web.code).status == "redeemed"
    assert redeem(state, web.code, channel="online", order_id="tm-1", amount_fen=8800, at=T0 + DAY).replayed
    till = issue(state, "MJ", 2, now=T0)
    red = redeem(state, till.code, channel="store", store_code="SH-01", guide_id="g-7", order_id="r-1",
                 amount_fen=25000, at=T0 + DAY)  # fmt: skip
    assert (red.discount_fen, red.eligible_fen, red.store_code, red.guide_id) == (3000, 25000, "SH-01", "g-7")
    again = redeem(state, till.code, channel="store", store_code="SH-01", guide_id="g-7", order_id="r-1",
                   amount_fen=25000, at=T0 + DAY)  # fmt: skip
    assert again.replayed and again.id == red.id


def test_refusals_name_the_code_and_field_and_change_nothing(state: StateStore) -> None:
    make(state, "OFF10", per_person_limit=9, channels=("online",))
    make(state, "MJ", kind="threshold", amount_off_fen=3000, min_spend_fen=20000, category="shoes")
    make(state, "LATER", valid_days=None, valid_from=T0 + 5 * DAY, valid_until=T0 + 9 * DAY)
    a, b = issue(state, "OFF10", 1, now=T0), issue(state, "OFF10", 1, now=T0)
    m = issue(state, "MJ", 1, now=T0)
    later = issue(state, "LATER", 1, now=T0)
    redeem(state, a.code, channel="online", order_id="tm-9", amount_fen=5000, at=T0 + DAY)

    def till(code: str, amount: int = 30000, **kw: Any) -> Redemption:
        kw.setdefault("at", T0 + 2 * DAY)
        return redeem(state, code, channel="store", store_code="SH-01", guide_id="g-7", amount_fen=amount, **kw)

    unknown = make_code()  # well-formed, with a right check character, but never issued
    refused(state, NotFound, "code", lambda: till(unknown), unknown, "unknown")
    used = refused(state, Conflict, "code",
                   lambda: redeem(state, a.code, channel="online", order_id="tm-10", amount_fen=5000, at=T0 + DAY),
                   a.code, "already used", "online on order tm-9", (T0 + DAY).isoformat())  # fmt: skip
    assert "2026-03-02" in used.message
    refused(state, InputError, "expires_at",
            lambda: redeem(state, b.code, channel="online", order_id="tm-11", amount_fen=5000, at=T0 + 31 * DAY),
            b.code, "expired")  # fmt: skip
    refused(state, InputError, "channel", lambda: till(b.code), b.code, "cannot be used in stores")
    refused(state, InputError, "amount_fen", lambda: till(m.code, 30000, category_amounts={"shoes": 19999}),
            m.code, "at least 20000 fen", "19999")  # fmt: skip
    refused(state, InputError, "category_amounts", lambda: till(m.code, 30000), m.code, "shoes")
    refused(state, InputError, "category_amounts", lambda: till(m.code, 30000, category_amounts={"bags": 30000}))
    refused(state, InputError, "customer_id", lambda: till(m.code, 30000, category_amounts={"shoes": 30000},
                                                          customer_id=2), m.code)  # fmt: skip
    refused(state, InputError, "starts_at", lambda: till(later.code), later.code, "not yet")
    refused(state, InputError, "guide_id", lambda: redeem(state, m.code, channel="store", store_code="SH-01",
                                                          amount_fen=30000, at=T0 + DAY))  # fmt: skip
    refused(state, InputError, "order_id", lambda: redeem(state, b.code, channel="online", amount_fen=1, at=T0))


def test_a_refund_reverses_the_redemption_but_an_expired_coupon_stays_spent(state: StateStore) -> None:
    make(state, "OFF10", per_person_limit=5, valid_days=10)
    c = issue(state, "OFF10", 1, now=T0)
    redeem(state, c.code, channel="online", order_id="tm-1", amount_fen=5000, at=T0 + DAY)
    back = reverse(state, c.code, order_id="tm-1", reason="refund rf-1", at=T0 + 2 * DAY)
    assert back.usable_again and not back.replayed and back.redemption.reversed_at == T0 + 2 * DAY
    assert reverse(state, c.code, order_id="tm-1", reason="refund rf-1", at=T0 + 3 * DAY).replayed
    assert coupon(state, c.code).status == "issued"
    red = redeem(state, c.code, channel="online", order_id="tm-2", amount_fen=5000, at=T0 + 3 * DAY)
    assert red.discount_fen == 1000
    late = reverse(state, c.code, order_id="tm-2", reason="refund rf-2", at=T0 + 12 * DAY)
    assert not late.usable_again
    refused(state, InputError, "expires_at",
            lambda: redeem(state, c.code, channel="online", order_id="tm-3", amount_fen=5000, at=T0 + 12 * DAY),
            "expired")  # fmt: skip
    refused(state, NotFound, "order_id", lambda: reverse(state, c.code, order_id="tm-9", reason="x"), "tm-9")


@pytest.mark.timeout(120)
def test_hundreds_of_threads_redeem_one_code_once(state: StateStore) -> None:
    make(state, "OFF10")
    c = issue(state, "OFF10", 1, now=T0)

    def work(i: int) -> Redemption:
        if i % 2:
            return redeem(state, c.code, channel="online", order_id=f"tm-{i}", amount_fen=5000, at=T0 + DAY)
        return redeem(state, c.code, channel="store", store_code=f"S{i % 5}", guide_id=f"g{i}", order_id=f"r-{i}",
                      amount_fen=5000, at=T0 + DAY)  # fmt: skip

    results = run(240, work)
    won = [r for r in results if isinstance(r, Redemption)]
    lost = [r for r in results if isinstance(r, Conflict)]
    assert len(won) == 1 and len(lost) == 239, [r for r in results if not isinstance(r, Redemption | Conflict)][:3]
    assert all(e.problems[0].field == "code" and "already used" in e.message for e in lost)
    with state.connect() as conn:
        assert len(conn.execute(select(coupon_redemptions)).all()) == 1


@pytest.mark.timeout(120)
def test_hundreds_of_threads_never_issue_over_the_quantity_or_the_per_person_limit(state: StateStore) -> None:
    make(state, "FEW", total_quantity=25, per_person_limit=2)

    def work(i: int) -> Coupon:
        return issue(state, "FEW", i % 20, idempotency_key=f"k-{i % 220}", now=T0)  # 20 threads repeat a key

    results = run(240, work)
    got = [r for r in results if isinstance(r, Coupon)]
    assert all(isinstance(r, Coupon | Conflict) for r in results), [r for r in results if not isinstance(r, Coupon)][:3]
    with state.connect() as conn:
        rows = conn.execute(select(coupons.c.customer_id, coupons.c.idempotency_key)).all()
    assert len(rows) == 25 == len({r.id for r in got})
    held = [c for c, _ in rows]
    assert max(held.count(c) for c in set(held)) <= 2
    fields = {e.problems[0].field for e in results if isinstance(e, Conflict)}
    assert fields <= {"total_quantity", "per_person_limit"} and "total_quantity" in fields


def test_report_matches_a_hand_count(state: StateStore) -> None:
    make(state, "A", per_person_limit=10, valid_days=10)
    make(state, "B", kind="percent_off", amount_off_fen=None, percent_off=20, per_person_limit=10, valid_days=5)
    a = [issue(state, "A", 1, store_code="S1", guide_id="g1", now=T0) for _ in range(4)]
    a += [issue(state, "A", 2, now=T0) for _ in range(2)]
    b = [issue(state, "B", 3, store_code="S2", guide_id="g2", now=T0) for _ in range(3)]

    def till(c: Coupon, store: str, guide: str, order: str, amount: int) -> None:
        redeem(state, c.code, channel="store", store_code=store, guide_id=guide, order_id=order, amount_fen=amount,
               at=T0 + DAY)  # fmt: skip

    till(a[0], "S1", "g1", "r1", 5000)  # 1000 off
    till(a[1], "S1", "g9", "r2", 5000)  # 1000 off, credited to g9
    till(a[4], "S2", "g2", "r3", 800)  # 800 off (no more than the order)
    redeem(state, a[5].code, channel="online", order_id="tm-1", amount_fen=5000, at=T0 + DAY)  # 1000 off, no store
    till(b[0], "S2", "g2", "r4", 10000)  # 2000 off
    till(b[1], "S1", "g1", "r5", 4000)  # 800 off, then refunded
    reverse(state, b[1].code, order_id="r5", reason="refund", at=T0 + 2 * DAY)
    r = report(state, at=T0 + 7 * DAY)  # B (5 days) has expired: b[1] and b[2] unused; A has not
    t = {row.key: row for row in r.templates}
    assert (t["A"].issued, t["A"].redeemed, t["A"].expired, t["A"].discount_fen) == (6, 4, 0, 3800)
    assert (t["B"].issued, t["B"].redeemed, t["B"].expired, t["B"].discount_fen) == (3, 1, 2, 2000)
    assert t["A"].redemption_rate == pytest.approx(4 / 6) and t["B"].redemption_rate == pytest.approx(1 / 3)
    s = {row.key: row for row in r.stores}
    # S1 handed out a[0..3] (2 redeemed); redemptions at S1: a[0], a[1] (b[1] reversed)
    assert (s["S1"].issued, s["S1"].redeemed, s["S1"].expired, s["S1"].redeemed_here, s["S1"].discount_fen) == (
        4, 2, 0, 2, 2000)  # fmt: skip
    assert (s["S2"].issued, s["S2"].redeemed, s["S2"].expired, s["S2"].redeemed_here, s["S2"].discount_fen) == (
        3, 1, 2, 2, 2800)  # fmt: skip
    g = {row.key: row for row in r.guides}
    assert (g["S1/g1"].issued, g["S1/g1"].redeemed_here, g["S1/g1"].discount_fen) == (4, 1, 1000)
    assert (g["S1/g9"].issued, g["S1/g9"].redeemed_here, g["S1/g9"].discount_fen) == (0, 1, 1000)
    assert g["S1/g9"].redemption_rate is None
    assert (g["S2/g2"].issued, g["S2/g2"].redeemed, g["S2/g2"].expired, g["S2/g2"].redeemed_here) == (3, 1, 2, 2)
    assert g["S2/g2"].discount_fen == 2800
