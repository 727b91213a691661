"""The points ledger on SQLite and PostgreSQL: lots, spends in expiry order, refunds, adjustments, clear errors."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from omnicrm.errors import Conflict, InputError, NotFound
from omnicrm.loyalty.ledger import Award, adjust, balance, earn, history, lots, spend
from omnicrm.loyalty.lifecycle import activate_due, expire_due
from omnicrm.loyalty.refunds import refund_order
from omnicrm.store.state import StateStore
from tests.loyalty.checks import T0, check_ledger, counts, give


def days(n: float) -> datetime:
    return T0 + timedelta(days=n)


def test_pending_points_activate_and_spends_take_the_soonest_expiring_first(state: StateStore) -> None:
    a = give(state, 7, 100, "A", expires_in_days=300)
    b = give(state, 7, 50, "B", expires_in_days=100)
    c = give(state, 7, 70, "C", expires_in_days=None)
    d = give(state, 7, 40, "D", window_days=15)
    assert [lot.status for lot in (a, b, c, d)] == ["active", "active", "active", "pending"]
    now = balance(state, 7, days(1))
    assert (now.balance, now.available, now.pending, now.next_expiry) == (260, 220, 40, b.expires_at)

    entry = spend(state, 7, 120, by="till-3", at=days(1), reference="receipt-9")
    assert entry.points == -120 and entry.draws == ((b.id, 50), (a.id, 70))
    with pytest.raises(InputError) as refused:
        spend(state, 7, 101, by="till-3", at=days(1))
    assert "customer 7" in refused.value.message
    assert {p.field for p in refused.value.problems} == {"points"}
    assert "40 points are pending" in str(refused.value) and "only 100 are available" in str(refused.value)

    assert activate_due(state, days(16)).lots == 1
    assert balance(state, 7, days(16)).available == 140
    assert spend(state, 7, 140, by="till-3", at=days(16)).draws == ((a.id, 30), (d.id, 40), (c.id, 70))
    assert [lot.remaining for lot in lots(state, 7)] == [0, 0, 0, 0]
    check_ledger(state, 7, days(16))


def test_equal_expiry_takes_the_oldest_first(state: StateStore) -> None:
    ends, later = days(30), T0 + timedelta(hours=5)
    newer = earn(state, Award(8, "tmall", "new", 10, later, later, ends), now=later)
    older = earn(state, Award(8, "tmall", "old", 10, T0, T0, ends), now=later)
    assert newer is not None and older is not None
    assert spend(state, 8, 15, by="t", at=days(1)).draws == ((older.id, 10), (newer.id, 5))


def test_pending_and_expired_points_cannot_be_spent(state: StateStore) -> None:
    give(state, 11, 80, "P", window_days=15)
    before = counts(state)
    with pytest.raises(InputError) as refused:
        spend(state, 11, 10, by="t", at=days(3))
    assert "80 points are pending" in str(refused.value) and "cannot be spent until they activate" in str(refused.value)
    assert counts(state) == before

    give(state, 12, 60, "E", expires_in_days=10)
    with pytest.raises(InputError) as late:  # past its date, before expire_due ran
        spend(state, 12, 10, by="t", at=days(11))
    assert "60 points have expired" in str(late.value)
    assert balance(state, 12, days(11)).overdue == 60
    moved = expire_due(state, days(11))
    assert (moved.lots, moved.points) == (1, 60)
    assert expire_due(state, days(11)).lots == 0  # idempotent
    assert balance(state, 12, days(11)).balance == 0
    assert [e.kind for e in history(state, 12)] == ["expire", "earn"]
    check_ledger(state, 12, days(11))


def test_expiry_takes_only_what_is_left(state: StateStore) -> None:
    lot = give(state, 13, 100, "A", expires_in_days=20)
    spend(state, 13, 30, by="t", at=days(1))
    assert expire_due(state, days(25)).points == 70
    (expired,) = [e for e in history(state, 13) if e.kind == "expire"]
    assert expired.draws == ((lot.id, 70),) and expired.points == -70
    assert lots(state, 13)[0].status == "expired"
    check_ledger(state, 13, days(25))


def test_bad_input_names_the_member_and_the_field_and_changes_nothing(state: StateStore) -> None:
    give(state, 21, 50, "A")
    before = counts(state)
    for bad in (0, -5, True):
        with pytest.raises(InputError) as e:
            spend(state, 21, bad, by="t")  # type: ignore[arg-type]
        assert "customer 21" in e.value.message and e.value.problems[0].field == "points"
    with pytest.raises(InputError) as no_reason:
        adjust(state, 21, 10, reason="  ", by="alice")
    assert "customer 21" in no_reason.value.message and no_reason.value.problems[0].field == "reason"
    with pytest.raises(InputError) as naive:
        spend(state, 21, 5, by="t", at=datetime(2026, 3, 2))
    assert naive.value.problems[0].field == "at"
    with pytest.raises(InputError) as too_much:
        adjust(state, 21, -60, reason="fix", by="alice", at=days(1))
    assert too_much.value.problems[0].field == "points"
    assert counts(state) == before


def test_a_retried_spend_with_the_same_key_spends_once(state: StateStore) -> None:
    give(state, 22, 50, "A")
    first = spend(state, 22, 20, by="api", at=days(1), idempotency_key="req-1")
    again = spend(state, 22, 20, by="api", at=days(1), idempotency_key="req-1")
    assert again.id == first.id and again.draws == first.draws
    assert balance(state, 22, days(1)).balance == 30
    with pytest.raises(Conflict) as e:
        spend(state, 22, 25, by="api", at=days(1), idempotency_key="req-1")
    assert e.value.problems[0].field == "idempotency_key"


def test_adjustments_need_a_reason_and_are_kept_with_who_and_why(state: StateStore) -> None:
    credit = adjust(state, 31, 40, reason="compensation for a late parcel", by="alice", at=days(1))
    assert credit.kind == "adjust" and credit.points == 40 and credit.recorded_by == "alice"
    debit = adjust(state, 31, -15, reason="double credit", by="bob", at=days(2))
    assert debit.draws == ((credit.lot_id, 15),)
    shown = history(state, 31)
    assert [(e.kind, e.points, e.recorded_by, e.reason) for e in shown] == [
        ("adjust", -15, "bob", "double credit"),
        ("adjust", 40, "alice", "compensation for a late parcel"),
    ]
    assert history(state, 31, before=shown[0].id, limit=1) == shown[1:]
    assert balance(state, 31, days(2)).available == 25
    negative = adjust(state, 31, -35, reason="fraud", by="bob", at=days(3), allow_negative=True)
    assert negative.draws == ((credit.lot_id, 25),)
    b = balance(state, 31, days(3))
    assert (b.balance, b.available, b.debt) == (-10, -10, 10)
    check_ledger(state, 31, days(3))


def test_a_refund_after_a_partial_spend_forgives_what_is_gone(state: StateStore) -> None:
    soon = give(state, 41, 30, "Y", expires_in_days=100)
    order = give(state, 41, 100, "R1", expires_in_days=200, spend_cents=25_000)
    spare = give(state, 41, 50, "Z", expires_in_days=None)
    assert spend(state, 41, 110, by="t", at=days(1)).draws == ((soon.id, 30), (order.id, 80))

    back = refund_order(state, "tmall", "R1", by="service", reason="returned", at=days(2))
    assert back is not None
    assert back.draws == ((order.id, 20), (spare.id, 50))
    assert (back.points, back.written_off) == (-70, 30)  # 80 were spent: 50 taken from Z, 30 forgiven
    assert {lot.id: lot.status for lot in lots(state, 41)}[order.id] == "reversed"
    assert balance(state, 41, days(2)).balance == 0
    assert refund_order(state, "tmall", "R1", by="service", at=days(3)) is None  # told twice: nothing more
    check_ledger(state, 41, days(3))


def test_a_refund_can_take_the_balance_negative_by_policy_and_later_points_repay_it(state: StateStore) -> None:
    order = give(state, 42, 100, "R2")
    spend(state, 42, 100, by="t", at=days(1))
    back = refund_order(state, "tmall", "R2", by="service", at=days(2), policy="negative")
    assert back is not None and (back.points, back.written_off, back.draws) == (-100, 0, ())
    b = balance(state, 42, days(2))
    assert (b.balance, b.available, b.debt) == (-100, -100, 100)
    with pytest.raises(InputError) as e:
        spend(state, 42, 1, by="t", at=days(2))
    assert "100 points are owed from a refund" in str(e.value)

    later = give(state, 42, 130, "R3", at=days(3), window_days=15)
    assert balance(state, 42, days(4)).available == -100  # pending points do not repay yet
    activate_due(state, days(20))
    b = balance(state, 42, days(20))
    assert (b.balance, b.available, b.debt) == (30, 30, 0)
    assert {lot.id: lot.remaining for lot in lots(state, 42)} == {order.id: 0, later.id: 30}
    check_ledger(state, 42, days(20))


def test_partial_refunds_reverse_in_proportion_once(state: StateStore) -> None:
    give(state, 43, 100, "R4", spend_cents=10_000)
    quarter = refund_order(state, "tmall", "R4", refunded_cents=2_500, by="t", at=days(1))
    assert quarter is not None and quarter.points == -25
    rest = refund_order(state, "tmall", "R4", by="t", at=days(2))
    assert rest is not None and rest.points == -75
    assert refund_order(state, "tmall", "R4", by="t", at=days(3)) is None
    assert lots(state, 43)[0].status == "reversed"
    with pytest.raises(NotFound):
        refund_order(state, "tmall", "nope", by="t")
    with pytest.raises(InputError) as e:
        refund_order(state, "tmall", "R4", refunded_cents=0, by="t")
    assert e.value.problems[0].field == "refunded_cents"


def test_a_refund_inside_the_return_window_takes_the_pending_lot(state: StateStore) -> None:
    lot = give(state, 44, 100, "R5", window_days=15)
    back = refund_order(state, "tmall", "R5", by="t", at=days(3))
    assert back is not None and back.draws == ((lot.id, 100),) and back.written_off == 0
    assert activate_due(state, days(20)).lots == 0
    assert lots(state, 44)[0].status == "reversed"
    assert balance(state, 44, days(20)).balance == 0
    check_ledger(state, 44, days(20))
