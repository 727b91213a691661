"""The stored-value ledger's records and how they are read: entries, the buckets of top-ups, balances.

What the changes in ``stored_value`` share: the records they return (``Entry`` with its ``Draw`` rows, ``Balance``,
``Receipt``), who and where a request comes from (``Till``), the checks of their input, and the reads they make under
the member's lock: what is left in each bucket (``buckets``: paid money first, oldest top-up first, then bonus) and
what a spend still holds after its refunds (``still_taken``). A bucket's remaining money is its size less its draws;
a balance is the sum of the member's entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select

from omnicrm.errors import InputError, Problem
from omnicrm.loyalty.locks import chunks, utc
from omnicrm.store.schema import stored_value_draws, stored_value_entries
from omnicrm.store.state import StateStore

__all__ = [
    "KINDS",
    "MAX_FEN",
    "Balance",
    "Draw",
    "Entry",
    "Receipt",
    "Till",
    "balance",
    "buckets",
    "checked_fen",
    "checked_text",
    "checked_till",
    "draws_of",
    "entry_of",
    "history",
    "member_id",
    "refundable",
    "still_taken",
    "sums",
    "yuan",
]

E, D = stored_value_entries, stored_value_draws
KINDS = ("topup", "spend", "refund", "topup_refund", "reversal")
MAX_FEN = 10**11  # one request moves at most ¥1,000,000,000: anything more is a typing error


def yuan(fen: int) -> str:
    """Fen as people read money: ``¥1,234.50``, ``-¥0.05``."""
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


@dataclass(frozen=True)
class Draw:
    """Money an entry took from a top-up's bucket (+) or gave back to it (-)."""

    topup_id: int
    bucket: str  # paid or bonus
    amount_fen: int


@dataclass(frozen=True)
class Entry:
    """One entry of a member's stored-value ledger; ``amount_fen`` = ``paid_fen`` + ``bonus_fen``, signed."""

    id: int
    customer_id: int
    kind: str
    amount_fen: int
    paid_fen: int
    bonus_fen: int
    at: datetime
    store_code: str
    guide_id: str | None
    recorded_by: str
    idempotency_key: str
    target_id: int | None = None
    reference: str | None = None
    reason: str | None = None
    draws: tuple[Draw, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.__dict__.items() if k != "draws"}, "at": self.at.isoformat(),
                "draws": [d.__dict__ for d in self.draws]}  # fmt: skip


@dataclass(frozen=True)
class Balance:
    """A member's stored value, summed from the ledger in one statement."""

    customer_id: int
    balance_fen: int
    paid_fen: int  # the part that is money paid (what a top-up refund could hand back)
    bonus_fen: int
    entries: int = 0  # entries in the member's ledger

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Receipt:
    """What a change returns: its entry, the member's balance just after it (for a replay: now), and whether a
    retried request found the entry rather than wrote it."""

    entry: Entry
    balance: Balance
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"entry": self.entry.as_dict(), "balance": self.balance.as_dict(), "replayed": self.replayed}


@dataclass(frozen=True)
class Till:
    """Who makes a request and where: the store (or online shop), the store guide who served (none online), who
    records it (an API key or a console user), the request's idempotency key and an optional receipt reference."""

    store_code: str
    idempotency_key: str
    by: str
    guide_id: str | None = None
    reference: str | None = None


# --- checks ------------------------------------------------------------------------------------------------------


def member_id(customer_id: object) -> int:
    if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id <= 0:
        raise InputError("a stored-value request needs a member", [Problem(f"got {customer_id!r}", "customer_id")])
    return customer_id


def checked_fen(customer_id: int, value: object, name: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= MAX_FEN:
        raise InputError(
            f"customer {customer_id}: {name} must be a whole number of fen from {least} to {MAX_FEN}",
            [Problem(f"got {value!r}", name)],
        )
    return value


def checked_text(customer_id: int, value: str | None, name: str, limit: int, required: bool) -> str | None:
    text = (value or "").strip()
    if required and not text:
        raise InputError(f"customer {customer_id}: give the {name.replace('_', ' ')}", [Problem("missing", name)])
    if len(text) > limit:
        raise InputError(
            f"customer {customer_id}: the {name.replace('_', ' ')} is longer than {limit} characters",
            [Problem(f"{len(text)} characters", name)],
        )
    return text or None


def checked_till(customer_id: int, till: Till) -> Till:
    store = checked_text(customer_id, till.store_code, "store_code", 64, True)
    key = checked_text(customer_id, till.idempotency_key, "idempotency_key", 255, True)
    by = checked_text(customer_id, till.by, "by", 128, True)
    guide = checked_text(customer_id, till.guide_id, "guide_id", 64, False)
    reference = checked_text(customer_id, till.reference, "reference", 255, False)
    assert store is not None and key is not None and by is not None
    return Till(store, key, by, guide, reference)


# --- reading -----------------------------------------------------------------------------------------------------


def entry_of(r: Any, draws: Sequence[Draw] = ()) -> Entry:
    return Entry(
        int(r.id), int(r.customer_id), r.kind, int(r.amount_fen), int(r.paid_fen), int(r.bonus_fen), utc(r.at),
        r.store_code, r.guide_id, r.recorded_by, r.idempotency_key, r.target_id, r.reference, r.reason, tuple(draws),
    )  # fmt: skip


def draws_of(conn: Connection, entry_ids: Sequence[int]) -> dict[int, list[Draw]]:
    out: dict[int, list[Draw]] = {}
    for part in chunks(list(entry_ids)):
        for d in conn.execute(select(D).where(D.c.entry_id.in_(part)).order_by(D.c.id)).all():
            out.setdefault(int(d.entry_id), []).append(Draw(int(d.topup_id), d.bucket, int(d.amount_fen)))
    return out


def sums(conn: Connection, customer_id: int) -> Balance:
    total, paid, bonus, n = conn.execute(
        select(func.coalesce(func.sum(E.c.amount_fen), 0), func.coalesce(func.sum(E.c.paid_fen), 0),
               func.coalesce(func.sum(E.c.bonus_fen), 0), func.count()).where(E.c.customer_id == customer_id)
    ).one()  # fmt: skip
    return Balance(customer_id, int(total), int(paid), int(bonus), int(n))


def balance(state: StateStore, customer_id: int) -> Balance:
    """The member's balance (paid and bonus), summed from the ledger in one statement."""
    with state.connect() as conn:
        return sums(conn, member_id(customer_id))


def history(
    state: StateStore, customer_id: int, *, limit: int = 50, before: int | None = None, offset: int = 0
) -> list[Entry]:
    """The member's entries, newest first, each with its draws; page with ``before`` (an entry id) or ``offset``."""
    query = select(E).where(E.c.customer_id == member_id(customer_id))
    if before is not None:
        query = query.where(E.c.id < before)
    with state.connect() as conn:
        rows = conn.execute(query.order_by(E.c.id.desc()).limit(limit).offset(offset)).all()
        draws = draws_of(conn, [int(r.id) for r in rows])
    return [entry_of(r, draws.get(int(r.id), [])) for r in rows]


def still_taken(conn: Connection, spend_ids: Sequence[int]) -> dict[int, list[Draw]]:
    """Per spend, what it still holds of each bucket (taken less what refunds and reversals gave back), in the
    order the spend took them."""
    spend = func.coalesce(E.c.target_id, E.c.id)
    out: dict[int, list[Draw]] = {}
    for part in chunks(list(spend_ids)):
        rows = conn.execute(
            select(spend.label("spend"), D.c.topup_id, D.c.bucket, func.sum(D.c.amount_fen), func.min(D.c.id))
            .join(E, E.c.id == D.c.entry_id)
            .where(or_(E.c.id.in_(part), E.c.target_id.in_(part)), E.c.kind.in_(("spend", "refund", "reversal")))
            .group_by(spend, D.c.topup_id, D.c.bucket)
            .order_by(spend, func.min(D.c.id))
        ).all()
        for s, topup, bucket, held, _ in rows:
            if int(held) > 0:
                out.setdefault(int(s), []).append(Draw(int(topup), bucket, int(held)))
    return out


def refundable(state: StateStore, spend_ids: Sequence[int]) -> dict[int, int]:
    """Fen each spend still holds: what a refund (or a reversal) of it could give back."""
    with state.connect() as conn:
        held = still_taken(conn, spend_ids)
    return {int(s): sum(d.amount_fen for d in held.get(int(s), [])) for s in spend_ids}


def buckets(conn: Connection, customer_id: int, topup_id: int | None = None) -> list[Draw]:
    """What is left in the member's buckets (or one top-up's), in spending order: paid money of every top-up oldest
    first, then bonus money oldest first. Empty buckets are left out."""

    def drawn(bucket: str) -> Any:
        return (
            select(func.coalesce(func.sum(D.c.amount_fen), 0))
            .where(D.c.topup_id == E.c.id, D.c.bucket == bucket)
            .scalar_subquery()
        )

    query = select(E.c.id, E.c.paid_fen - drawn("paid"), E.c.bonus_fen - drawn("bonus")).where(
        E.c.customer_id == customer_id, E.c.kind == "topup"
    )
    if topup_id is not None:
        query = query.where(E.c.id == topup_id)
    rows = conn.execute(query.order_by(E.c.id)).all()
    paid = [Draw(int(i), "paid", int(p)) for i, p, _ in rows if int(p) > 0]
    return paid + [Draw(int(i), "bonus", int(b)) for i, _, b in rows if int(b) > 0]
