"""Property test of stored value: random sequences of top-ups, spends, refunds, top-up refunds and reversals.

A plain model of the buckets (paid and bonus per top-up, what each spend still holds) predicts every draw. After
every step: balance = Σ entries = what is left in the buckets, never negative; a spend succeeds exactly when the
balance covers it and draws paid money first, oldest top-up first, then bonus; refunds give back into the buckets the
spend took from, the last taken first, and never more than the spend took; a top-up refund takes exactly what is
left of the top-up. Refused requests change nothing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from omnicrm.errors import Conflict, InputError
from omnicrm.loyalty import stored_value as sv
from omnicrm.store.state import StateStore
from tests.loyalty.checks import check_stored_value, stored_value_counts

MEMBERS = itertools.count(7000)
top_ups = st.tuples(st.just("top up"), st.integers(1, 5_000), st.sampled_from([0, 0, 100, 999]))
step = st.one_of(
    top_ups,
    top_ups,
    st.tuples(st.just("spend"), st.sampled_from([10, 50, 90, 100, 130])),  # % of the balance
    st.tuples(st.just("spend"), st.sampled_from([10, 50, 90, 100, 130])),
    st.tuples(st.just("refund"), st.integers(0, 50), st.none() | st.integers(1, 3_000)),
    st.tuples(st.just("refund top-up"), st.integers(0, 50)),
    st.tuples(st.just("reverse"), st.integers(0, 50)),
)


@dataclass
class Model:
    """What the ledger should hold: buckets (top-up id → [paid left, bonus left]) and what spends still hold."""

    buckets: dict[int, list[int]] = field(default_factory=dict)
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)
    held: dict[int, list[list[Any]]] = field(default_factory=dict)  # spend id → [[top-up, bucket, fen], ...]
    reversed: set[int] = field(default_factory=set)

    @property
    def balance(self) -> int:
        return sum(p + b for p, b in self.buckets.values())

    def take(self, want: int) -> list[tuple[int, str, int]]:
        out = []
        for index, name in ((0, "paid"), (1, "bonus")):
            for topup, left in sorted(self.buckets.items()):
                n = min(left[index], want)
                if n > 0:
                    out.append((topup, name, n))
                    left[index] -= n
                    want -= n
        return out

    def give_back(self, spend_id: int, amount: int) -> list[tuple[int, str, int]]:
        out = []
        for part in reversed(self.held[spend_id]):
            n = min(part[2], amount)
            if n > 0:
                out.append((part[0], part[1], -n))
                part[2] -= n
                self.buckets[part[0]][0 if part[1] == "paid" else 1] += n
                amount -= n
        return out


def draws(receipt: sv.Receipt) -> list[tuple[int, str, int]]:
    return [(d.topup_id, d.bucket, d.amount_fen) for d in receipt.entry.draws]


def refused(state: StateStore, kind: type[Exception], call: Any, *args: Any, **kwargs: Any) -> None:
    """``call(state, *args, **kwargs)`` is refused with ``kind`` and writes nothing."""
    before = stored_value_counts(state)
    with pytest.raises(kind):
        call(state, *args, **kwargs)
    assert stored_value_counts(state) == before


@pytest.mark.timeout(300)
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=3, max_size=30))
def test_random_sequences_keep_stored_value_whole(state: StateStore, steps: list[tuple[Any, ...]]) -> None:
    member, model = next(MEMBERS), Model()
    keys = (f"{member}-{n}" for n in itertools.count())

    def till() -> sv.Till:
        return sv.Till("S01", next(keys), "prop", "g1")

    for op, *args in steps:
        if op == "top up":
            r = sv.top_up(state, member, args[0], bonus_fen=args[1], till=till())
            model.buckets[r.entry.id], model.sizes[r.entry.id] = [args[0], args[1]], (args[0], args[1])
        elif op == "spend":
            want = max(1, model.balance * args[0] // 100)
            if want > model.balance:
                refused(state, InputError, sv.spend, member, want, till=till())
                event("spend refused")
            else:
                r = sv.spend(state, member, want, till=till())
                assert draws(r) == model.take(want)
                model.held[r.entry.id] = [list(d) for d in draws(r)]
        elif op == "refund" and model.held:
            spend_id = sorted(model.held)[args[0] % len(model.held)]
            left = sum(part[2] for part in model.held[spend_id])
            amount = args[1]
            if left == 0 or (amount is not None and amount > left):
                kind = Conflict if left == 0 else InputError
                refused(state, kind, sv.refund, member, spend_id, amount_fen=amount, till=till())
                event("refund refused")
            else:
                r = sv.refund(state, member, spend_id, amount_fen=amount, till=till())
                assert draws(r) == model.give_back(spend_id, left if amount is None else amount)
                event("partial refund" if amount is not None and amount < left else "full refund")
        elif op == "refund top-up" and model.buckets:
            topup = sorted(model.buckets)[args[0] % len(model.buckets)]
            paid, bonus = model.buckets[topup]
            if paid + bonus == 0:
                refused(state, Conflict, sv.refund_topup, member, topup, reason="p", till=till())
            else:
                r = sv.refund_topup(state, member, topup, reason="p", till=till())
                assert draws(r) == [(topup, n, f) for n, f in (("paid", paid), ("bonus", bonus)) if f]
                model.buckets[topup] = [0, 0]
                event("top-up refunded")
        elif op == "reverse" and (model.buckets or model.held):
            target = sorted([*model.buckets, *model.held])[args[0] % (len(model.buckets) + len(model.held))]
            untouched = target in model.buckets and list(model.sizes[target]) == model.buckets[target]
            held = sum(part[2] for part in model.held.get(target, []))
            if target in model.reversed or not (untouched or held):
                refused(state, Conflict, sv.reverse, member, target, reason="p", by="p", idempotency_key=next(keys))
            else:
                r = sv.reverse(state, member, target, reason="p", by="p", idempotency_key=next(keys))
                if target in model.buckets:
                    expected = [
                        (target, n, f) for n, f in zip(("paid", "bonus"), model.buckets[target], strict=True) if f
                    ]
                    model.buckets[target] = [0, 0]
                else:
                    expected = model.give_back(target, held)
                assert draws(r) == expected
                model.reversed.add(target)
                event("reversed")
        b = sv.balance(state, member)
        assert b.balance_fen == model.balance >= 0
        assert (b.paid_fen, b.bonus_fen) == (sum(p for p, _ in model.buckets.values()),
                                             sum(x for _, x in model.buckets.values()))  # fmt: skip
        assert check_stored_value(state, member) == model.balance
