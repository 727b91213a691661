"""Stored value on SQLite and PostgreSQL: top-ups with bonus, spends (paid money first, oldest first), refunds back
into the buckets they came from, refunds of top-ups (only what is unspent), reversals, retried requests, every kind
of bad input (a clear error naming the member and the field, nothing written), a thread storm against one balance,
and the report (liability paid vs bonus, money per store and China day)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from omnicrm.errors import Conflict, InputError, NotFound
from omnicrm.loyalty import stored_value as sv
from omnicrm.loyalty.stored_value_report import report
from omnicrm.store.state import StateStore
from tests.loyalty.checks import check_stored_value, run, stored_value_counts

M = 501  # the member most tests use


def till(key: str, store: str = "S01", guide: str | None = "g7") -> sv.Till:
    return sv.Till(store, key, "test", guide, f"receipt-{key}")


def draws(receipt: sv.Receipt) -> list[tuple[int, str, int]]:
    return [(d.topup_id, d.bucket, d.amount_fen) for d in receipt.entry.draws]


def test_spends_take_paid_money_first_oldest_first_then_bonus(state: StateStore) -> None:
    a = sv.top_up(state, M, 10_000, bonus_fen=1_000, till=till("a"))
    b = sv.top_up(state, M, 5_000, bonus_fen=500, till=till("b"))
    assert (a.balance.balance_fen, b.balance.balance_fen) == (11_000, 16_500)
    assert (b.balance.paid_fen, b.balance.bonus_fen, b.balance.entries) == (15_000, 1_500, 2)
    first = sv.spend(state, M, 12_000, till=till("s1"))
    assert draws(first) == [(a.entry.id, "paid", 10_000), (b.entry.id, "paid", 2_000)]
    assert (first.entry.amount_fen, first.entry.paid_fen, first.entry.bonus_fen) == (-12_000, -12_000, 0)
    second = sv.spend(state, M, 4_000, till=till("s2"))
    assert draws(second) == [(b.entry.id, "paid", 3_000), (a.entry.id, "bonus", 1_000)]
    assert (second.entry.paid_fen, second.entry.bonus_fen) == (-3_000, -1_000)
    assert second.balance == sv.Balance(M, 500, 0, 500, 4)
    assert (second.entry.store_code, second.entry.guide_id, second.entry.reference) == ("S01", "g7", "receipt-s2")
    assert [e.kind for e in sv.history(state, M)] == ["spend", "spend", "topup", "topup"]
    assert check_stored_value(state, M) == 500


def test_spending_more_than_the_balance_is_refused_and_changes_nothing(state: StateStore) -> None:
    sv.top_up(state, M, 3_000, bonus_fen=200, till=till("a"))
    before = stored_value_counts(state)
    with pytest.raises(InputError) as refused:
        sv.spend(state, M, 3_201, till=till("too-much"))
    assert refused.value.message == f"customer {M} has ¥32.00 of stored value, not enough to spend ¥32.01"
    assert [(p.field, p.reason) for p in refused.value.problems] == [
        ("amount_fen", "asked 3201 fen, the balance is 3200 fen")
    ]
    assert stored_value_counts(state) == before
    assert sv.balance(state, M).balance_fen == 3_200
    with pytest.raises(InputError, match=f"customer {M + 1} has ¥0.00 of stored value"):
        sv.spend(state, M + 1, 1, till=till("nothing"))
    assert sv.spend(state, M, 3_200, till=till("all")).balance.balance_fen == 0  # the refused key was not used up
    assert check_stored_value(state, M) == 0


@pytest.mark.parametrize(
    ("call", "field", "message"),
    [
        (lambda s: sv.top_up(s, M, 0, till=till("k")), "paid_fen", "paid_fen must be a whole number of fen"),
        (lambda s: sv.top_up(s, M, 100, bonus_fen=-1, till=till("k")), "bonus_fen", "bonus_fen must be a whole"),
        (lambda s: sv.top_up(s, M, 12.5, till=till("k")), "paid_fen", "paid_fen must be a whole number"),
        (lambda s: sv.top_up(s, M, True, till=till("k")), "paid_fen", "paid_fen must be a whole number"),
        (lambda s: sv.top_up(s, M, sv.MAX_FEN + 1, till=till("k")), "paid_fen", "from 1 to 100000000000"),
        (lambda s: sv.spend(s, M, -5, till=till("k")), "amount_fen", "amount_fen must be a whole number"),
        (lambda s: sv.spend(s, 0, 5, till=till("k")), "customer_id", "a stored-value request needs a member"),
        (lambda s: sv.spend(s, M, 5, till=till("k", store=" ")), "store_code", f"customer {M}: give the store code"),
        (lambda s: sv.spend(s, M, 5, till=till("")), "idempotency_key", "give the idempotency key"),
        (lambda s: sv.spend(s, M, 5, till=till("k", guide="g" * 65)), "guide_id", "longer than 64 characters"),
        (lambda s: sv.spend(s, M, 5, till=till("k"), at=datetime(2026, 3, 1)), "at", "the time has no time zone"),
        (lambda s: sv.refund(s, M, "7", till=till("k")), "spend_id", "spend_id must be an entry id"),
        (lambda s: sv.refund_topup(s, M, 1, reason=" ", till=till("k")), "reason", "needs a reason"),
        (lambda s: sv.reverse(s, M, 1, reason="", by="x", idempotency_key="k"), "reason", "a reversal needs a reason"),
    ],
)
def test_bad_input_is_refused_naming_the_field(state: StateStore, call: object, field: str, message: str) -> None:
    sv.top_up(state, M, 1_000, till=till("setup"))
    before = stored_value_counts(state)
    with pytest.raises(InputError) as refused:
        call(state)  # type: ignore[operator]
    assert message in refused.value.message
    assert refused.value.problems[0].field == field
    assert stored_value_counts(state) == before


def test_a_retried_request_returns_the_first_result(state: StateStore) -> None:
    first = sv.top_up(state, M, 2_000, bonus_fen=100, till=till("t"))
    again = sv.top_up(state, M, 2_000, bonus_fen=100, till=till("t"))
    assert again.replayed and not first.replayed and again.entry == first.entry
    spent = sv.spend(state, M, 700, till=till("s"))
    assert sv.spend(state, M, 700, till=till("s")).entry == spent.entry
    assert sv.balance(state, M).balance_fen == 1_400
    before = stored_value_counts(state)
    with pytest.raises(Conflict) as other:
        sv.spend(state, M, 701, till=till("s"))
    assert other.value.message == (
        f"customer {M}: the idempotency key 's' was used for another request (spend -¥7.00, entry {spent.entry.id})"
    )
    assert other.value.problems[0].field == "idempotency_key"
    with pytest.raises(Conflict):
        sv.spend(state, M + 1, 700, till=till("s"))  # the same key for another member
    with pytest.raises(Conflict):
        sv.top_up(state, M, 700, till=till("s"))  # the same key for another kind of request
    assert stored_value_counts(state) == before
    refunded = sv.refund(state, M, spent.entry.id, amount_fen=200, till=till("r"))
    assert sv.refund(state, M, spent.entry.id, amount_fen=200, till=till("r")).replayed
    assert sv.refund(state, M, spent.entry.id, till=till("r")).entry == refunded.entry  # "all" matches the first
    assert check_stored_value(state, M) == 1_600


def test_refunds_go_back_to_the_buckets_the_spend_came_from(state: StateStore) -> None:
    a = sv.top_up(state, M, 1_000, bonus_fen=300, till=till("a"))
    b = sv.top_up(state, M, 500, till=till("b"))
    spent = sv.spend(state, M, 1_700, till=till("s"))
    assert draws(spent) == [(a.entry.id, "paid", 1_000), (b.entry.id, "paid", 500), (a.entry.id, "bonus", 200)]
    part = sv.refund(state, M, spent.entry.id, amount_fen=600, reason="one item back", till=till("r1"))
    assert draws(part) == [(a.entry.id, "bonus", -200), (b.entry.id, "paid", -400)]  # the last taken comes back first
    assert (part.entry.paid_fen, part.entry.bonus_fen, part.entry.target_id) == (400, 200, spent.entry.id)
    assert sv.refundable(state, [spent.entry.id]) == {spent.entry.id: 1_100}
    before = stored_value_counts(state)
    with pytest.raises(InputError) as too_much:
        sv.refund(state, M, spent.entry.id, amount_fen=1_101, till=till("r2"))
    assert too_much.value.message == f"customer {M}: spend {spent.entry.id} can give back at most ¥11.00, not ¥11.01"
    assert too_much.value.problems[0].field == "amount_fen"
    rest = sv.refund(state, M, spent.entry.id, till=till("r3"))
    assert draws(rest) == [(b.entry.id, "paid", -100), (a.entry.id, "paid", -1_000)]
    with pytest.raises(Conflict, match="has been given back in full already"):
        sv.refund(state, M, spent.entry.id, till=till("r4"))
    with pytest.raises(InputError, match=f"entry {a.entry.id} is a topup, not a spend"):
        sv.refund(state, M, a.entry.id, till=till("r5"))
    with pytest.raises(NotFound, match=f"customer {M} has no stored-value entry 999999"):
        sv.refund(state, M, 999_999, till=till("r6"))
    with pytest.raises(NotFound) as not_theirs:
        sv.refund(state, M + 1, spent.entry.id, till=till("r7"))  # another member's spend
    assert not_theirs.value.problems[0].field == "spend_id"
    assert stored_value_counts(state)[0] == before[0] + 1
    assert sv.balance(state, M) == sv.Balance(M, 1_800, 1_500, 300, 5)
    assert check_stored_value(state, M) == 1_800


def test_a_top_up_refund_hands_back_only_what_is_unspent(state: StateStore) -> None:
    a = sv.top_up(state, M, 10_000, bonus_fen=1_000, till=till("a"))
    spent = sv.spend(state, M, 3_000, till=till("s"))
    back = sv.refund_topup(state, M, a.entry.id, reason="member asked", till=till("tr"))
    assert draws(back) == [(a.entry.id, "paid", 7_000), (a.entry.id, "bonus", 1_000)]
    assert (back.entry.amount_fen, back.entry.paid_fen, back.entry.bonus_fen) == (-8_000, -7_000, -1_000)
    assert back.balance.balance_fen == 0
    with pytest.raises(Conflict, match=f"nothing is left of top-up {a.entry.id}"):
        sv.refund_topup(state, M, a.entry.id, reason="again", till=till("tr2"))
    with pytest.raises(InputError, match=f"entry {spent.entry.id} is a spend, not a top-up"):
        sv.refund_topup(state, M, spent.entry.id, reason="x", till=till("tr3"))
    sv.refund(state, M, spent.entry.id, amount_fen=1_000, till=till("r"))  # refills the top-up's paid money
    again = sv.refund_topup(state, M, a.entry.id, reason="the returned item", till=till("tr4"))
    assert draws(again) == [(a.entry.id, "paid", 1_000)]
    assert check_stored_value(state, M) == 0


def test_reversals_undo_entries_made_in_error_once(state: StateStore) -> None:
    wrong = sv.top_up(state, M, 99_900, till=till("typo", store="S02", guide="g2"))
    kept = sv.top_up(state, M, 999, till=till("right"))
    undone = sv.reverse(state, M, wrong.entry.id, reason="typed 999.00 as 99,900", by="boss", idempotency_key="rv1")
    assert (undone.entry.amount_fen, undone.entry.store_code, undone.entry.guide_id) == (-99_900, "S02", "g2")
    assert sv.reverse(state, M, wrong.entry.id, reason="again", by="boss", idempotency_key="rv1").replayed
    with pytest.raises(Conflict, match=f"entry {wrong.entry.id} was reversed already, by entry {undone.entry.id}"):
        sv.reverse(state, M, wrong.entry.id, reason="again", by="boss", idempotency_key="rv2")
    spent = sv.spend(state, M, 400, till=till("s"))
    with pytest.raises(Conflict, match=f"some of top-up {kept.entry.id} has been spent or refunded"):
        sv.reverse(state, M, kept.entry.id, reason="x", by="boss", idempotency_key="rv3")
    sv.refund(state, M, spent.entry.id, amount_fen=100, till=till("r"))
    back = sv.reverse(state, M, spent.entry.id, reason="rung up twice", by="boss", idempotency_key="rv4")
    assert back.entry.amount_fen == 300 and back.balance.balance_fen == 999
    with pytest.raises(InputError, match="only top-ups and spends are reversed"):
        sv.reverse(state, M, back.entry.id, reason="x", by="boss", idempotency_key="rv5")
    with pytest.raises(Conflict, match="has been given back in full already"):
        sv.refund(state, M, spent.entry.id, till=till("r2"))
    assert check_stored_value(state, M) == 999


@pytest.mark.timeout(180)
def test_a_thread_storm_never_overdraws_one_balance(state: StateStore) -> None:
    sv.top_up(state, M, 3_000, bonus_fen=1_000, till=till("a"))
    sv.top_up(state, M, 1_000, till=till("b"))
    threads, keys = 120, 100  # threads beyond ``keys`` retry an earlier thread's request

    def work(i: int) -> sv.Receipt:
        k = i % keys
        return sv.spend(state, M, 40 + k % 30, till=till(f"storm-{k}"))

    results = run(threads, work)
    errors = [r for r in results if isinstance(r, Exception) and not isinstance(r, InputError)]
    assert errors == []
    receipts = [r for r in results if isinstance(r, sv.Receipt)]
    ids_by_key: dict[str, set[int]] = {}
    for r in receipts:
        ids_by_key.setdefault(r.entry.idempotency_key, set()).add(r.entry.id)
    assert all(len(ids) == 1 for ids in ids_by_key.values())
    spent = sum(-r.entry.amount_fen for r in {r.entry.id: r for r in receipts}.values())
    refused = [r for r in results if isinstance(r, InputError)]
    assert refused and spent <= 5_000  # 100 requests ask for 5,450 of 5,000
    assert check_stored_value(state, M) == 5_000 - spent
    assert 5_000 - spent < min(40 + (i % keys) % 30 for i, r in enumerate(results) if isinstance(r, InputError))


def test_report_liability_and_money_per_store_and_china_day(state: StateStore) -> None:
    late = datetime(2026, 3, 1, 17, 30, tzinfo=UTC)  # 01:30 on 2 March in China
    early = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)  # 23:00 on 1 March in China
    a = sv.top_up(state, M, 10_000, bonus_fen=2_000, till=till("a", store="S01"), at=early)
    sv.top_up(state, M + 1, 5_000, till=till("b", store="S02"), at=late)
    spent = sv.spend(state, M, 10_500, till=till("s", store="S02"), at=late)
    sv.refund(state, M, spent.entry.id, amount_fen=500, till=till("r", store="S02"), at=late + timedelta(days=1))
    whole = report(state)
    assert (whole.liability.paid_fen, whole.liability.bonus_fen, whole.liability.members) == (5_000, 2_000, 2)
    assert whole.liability.total_fen == check_stored_value(state, M) + check_stored_value(state, M + 1)
    rows = {(d.day, d.store_code): d for d in whole.days}
    assert list(rows) == [("2026-03-03", "S02"), ("2026-03-02", "S02"), ("2026-03-01", "S01")]
    s01 = rows[("2026-03-01", "S01")]
    assert (s01.topups, s01.topped_up_paid_fen, s01.topped_up_bonus_fen, s01.net_fen) == (1, 10_000, 2_000, 12_000)
    s02 = rows[("2026-03-02", "S02")]
    assert (s02.topups, s02.spends, s02.spent_paid_fen, s02.spent_bonus_fen, s02.net_fen) == (1, 1, 10_000, 500, -5_500)
    assert rows[("2026-03-03", "S02")].refunded_fen == 500
    assert sum(d.net_fen for d in whole.days) == whole.liability.total_fen
    only = report(state, since=date(2026, 3, 2), until=date(2026, 3, 2))
    assert [(d.day, d.store_code) for d in only.days] == [("2026-03-02", "S02")] and only.total_rows == 1
    page = report(state, limit=1, offset=1)
    assert [(d.day, d.store_code) for d in page.days] == [("2026-03-02", "S02")] and page.total_rows == 3
    back = sv.refund_topup(state, M, a.entry.id, reason="closing the card", till=till("tr", store="S01"), at=late)
    assert back.entry.paid_fen == 0 and back.entry.bonus_fen == -2_000  # the paid money was spent, the bonus is left
    row = {(d.day, d.store_code): d for d in report(state).days}[("2026-03-02", "S01")]
    assert (row.topups_refunded_fen, row.bonus_cancelled_fen, row.net_fen) == (0, 2_000, -2_000)
    assert report(state).liability.bonus_fen == 0
