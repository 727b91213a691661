"""Stored value (储值): a member's prepaid money in fen, kept as a ledger with the guarantees of the points ledger.

- A top-up is an entry of +(paid + bonus) and holds two buckets: the money paid, and an optional bonus ("top up
  ¥1,000, get ¥100"). A spend takes paid money first, oldest top-up first, then bonus money, oldest first: the bonus
  goes last, so a top-up refund hands back as much real money as possible.
- Every other change is an entry linked (``stored_value_draws``) to the buckets it took from (+) or gave back to (-):
  a spend (-); a refund of a spend (+, back into the buckets the spend took from, the last taken first); a refund of
  a top-up (-, only what is left of it: its paid money is paid back, its bonus cancelled); a reversal of an entry made
  in error (a top-up of which nothing was spent, taken back whole; a spend, given back less what was refunded).
- A member's balance is the sum of their entries and is never stored; what is left in a bucket is its size less its
  draws. Every entry records the store, the store guide (导购) who served, who recorded it, and its idempotency key.
- Every change is one transaction holding the member's lock: their ``point_accounts`` row, the lock the points
  ledger takes too (``locks``), so one member's points and money change one request at a time and a request that
  touches both needs no second lock. A retried request (same idempotency key) returns the first result marked
  ``replayed``; the same key for a different request is refused.
- A refusal (more than the balance, more than is left to refund, an unknown entry ...) raises InputError, NotFound or
  Conflict naming the member, the entry and the field, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.loyalty.locks import bump, lock_members, transaction, when
from omnicrm.loyalty.stored_value_ledger import (
    KINDS,
    MAX_FEN,
    Balance,
    Draw,
    Entry,
    Receipt,
    Till,
    balance,
    buckets,
    checked_fen,
    checked_text,
    checked_till,
    draws_of,
    entry_of,
    history,
    member_id,
    refundable,
    still_taken,
    sums,
    yuan,
)
from omnicrm.store.schema import stored_value_draws, stored_value_entries
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "KINDS",
    "MAX_FEN",
    "Balance",
    "Draw",
    "Entry",
    "Receipt",
    "Till",
    "balance",
    "history",
    "refund",
    "refund_topup",
    "refundable",
    "reverse",
    "spend",
    "top_up",
    "yuan",
]

E, D = stored_value_entries, stored_value_draws


# --- writing -----------------------------------------------------------------------------------------------------


def _id(customer_id: int, entry_id: object, name: str) -> int:
    if isinstance(entry_id, bool) or not isinstance(entry_id, int) or entry_id <= 0:
        raise InputError(f"customer {customer_id}: {name} must be an entry id", [Problem(f"got {entry_id!r}", name)])
    return entry_id


def _target(conn: Connection, customer_id: int, entry_id: int, name: str) -> Any:
    """The member's entry ``entry_id`` (read under the member's lock), or NotFound naming ``name``."""
    row = conn.execute(select(E).where(E.c.id == entry_id, E.c.customer_id == customer_id)).first()
    if row is None:
        raise NotFound(
            f"customer {customer_id} has no stored-value entry {entry_id}", [Problem("no such entry of theirs", name)]
        )
    return row


def _write(
    conn: Connection, customer_id: int, kind: str, draws: Sequence[Draw], till: Till, *, at: datetime,
    now: datetime, paid: int = 0, bonus: int = 0, target_id: int | None = None, reason: str | None = None,
) -> Entry:  # fmt: skip
    """Append one entry and its draws. A top-up's amount is ``paid`` + ``bonus``; any other entry's is minus what
    its draws took, split by bucket."""
    if draws:
        paid = -sum(d.amount_fen for d in draws if d.bucket == "paid")
        bonus = -sum(d.amount_fen for d in draws if d.bucket == "bonus")
    values = {
        "customer_id": customer_id, "kind": kind, "amount_fen": paid + bonus, "paid_fen": paid, "bonus_fen": bonus,
        "target_id": target_id, "idempotency_key": till.idempotency_key, "store_code": till.store_code,
        "guide_id": till.guide_id, "reference": till.reference, "reason": reason, "recorded_by": till.by, "at": at,
        "recorded_at": now,
    }  # fmt: skip
    entry_id = int(conn.execute(insert(E).values(**values).returning(E.c.id)).scalar_one())
    if draws:
        conn.execute(insert(D), [{"entry_id": entry_id, **d.__dict__} for d in draws])
    return Entry(
        entry_id, customer_id, kind, paid + bonus, paid, bonus, at, till.store_code, till.guide_id, till.by,
        till.idempotency_key, target_id, till.reference, reason, tuple(draws),
    )  # fmt: skip


def _run(
    state: StateStore, customer_id: int, till: Till, kind: str, same: dict[str, Any],
    work: Callable[[Connection, datetime], Entry],
) -> Receipt:  # fmt: skip
    """One change: lock the member, replay a retried request, else ``work`` and count the change on the account.

    ``same`` are the columns a retry (same idempotency key) must match; None values are not compared. Two requests
    with one key for two members lock different rows: the loser's insert breaks the key's uniqueness, and its
    second attempt finds the winner's entry (a replay, or a Conflict for a different request)."""

    def tx(conn: Connection) -> Receipt:
        now = utcnow()
        lock_members(conn, [customer_id], now)
        row = conn.execute(select(E).where(E.c.idempotency_key == till.idempotency_key)).first()
        if row is not None:
            wanted = {"customer_id": customer_id, "kind": kind, **same}
            if any(v is not None and getattr(row, k) != v for k, v in wanted.items()):
                raise Conflict(
                    f"customer {customer_id}: the idempotency key {till.idempotency_key!r} was used for another "
                    f"request ({row.kind} {yuan(int(row.amount_fen))}, entry {row.id})",
                    [Problem("use a new key for a new request", "idempotency_key")],
                )
            entry = entry_of(row, draws_of(conn, [int(row.id)]).get(int(row.id), []))
            return Receipt(entry, sums(conn, customer_id), replayed=True)
        entry = work(conn, now)
        bump(conn, [customer_id], now)
        return Receipt(entry, sums(conn, customer_id))

    try:
        return transaction(state, tx)
    except IntegrityError:
        return transaction(state, tx)


def top_up(
    state: StateStore, customer_id: int, paid_fen: int, *, till: Till, bonus_fen: int = 0, at: datetime | None = None
) -> Receipt:
    """Add ``paid_fen`` of paid money and ``bonus_fen`` of bonus to the member's stored value."""
    cid = member_id(customer_id)
    paid, bonus = checked_fen(cid, paid_fen, "paid_fen"), checked_fen(cid, bonus_fen, "bonus_fen", least=0)
    t, at_ = checked_till(cid, till), when(at, utcnow())

    def work(conn: Connection, now: datetime) -> Entry:
        return _write(conn, cid, "topup", [], t, at=at_, now=now, paid=paid, bonus=bonus)

    return _run(state, cid, t, "topup", {"paid_fen": paid, "bonus_fen": bonus}, work)


def _take(pool: Sequence[Draw], want: int) -> list[Draw]:
    out = []
    for b in pool:
        if want <= 0:
            break
        n = min(b.amount_fen, want)
        out.append(Draw(b.topup_id, b.bucket, n))
        want -= n
    return out


def spend(state: StateStore, customer_id: int, amount_fen: int, *, till: Till, at: datetime | None = None) -> Receipt:
    """Pay ``amount_fen`` from the member's stored value: paid money first, oldest top-up first, then bonus.

    Refused, with nothing written, when the balance does not cover it."""
    cid = member_id(customer_id)
    want, t, at_ = checked_fen(cid, amount_fen, "amount_fen"), checked_till(cid, till), when(at, utcnow())

    def work(conn: Connection, now: datetime) -> Entry:
        pool = buckets(conn, cid)
        have = sum(b.amount_fen for b in pool)
        if want > have:
            raise InputError(
                f"customer {cid} has {yuan(have)} of stored value, not enough to spend {yuan(want)}",
                [Problem(f"asked {want} fen, the balance is {have} fen", "amount_fen")],
            )
        return _write(conn, cid, "spend", _take(pool, want), t, at=at_, now=now)

    return _run(state, cid, t, "spend", {"amount_fen": -want}, work)


def _give_back(held: Sequence[Draw], amount: int) -> list[Draw]:
    """Draws that return ``amount`` to the buckets in ``held``, the last taken first."""
    out = []
    for d in reversed(held):
        if amount <= 0:
            break
        n = min(d.amount_fen, amount)
        out.append(Draw(d.topup_id, d.bucket, -n))
        amount -= n
    return out


def refund(
    state: StateStore, customer_id: int, spend_id: int, *, till: Till, amount_fen: int | None = None,
    reason: str | None = None, at: datetime | None = None,
) -> Receipt:  # fmt: skip
    """Give back ``amount_fen`` (default: all it still holds) of the spend ``spend_id`` to the member's stored value,
    into the buckets the spend took it from, the last taken first. Several partial refunds may follow each other;
    together they never give back more than the spend took."""
    cid = member_id(customer_id)
    spend_id = _id(cid, spend_id, "spend_id")
    t, at_ = checked_till(cid, till), when(at, utcnow())
    amount = None if amount_fen is None else checked_fen(cid, amount_fen, "amount_fen")
    why = checked_text(cid, reason, "reason", 2000, False)

    def work(conn: Connection, now: datetime) -> Entry:
        row = _target(conn, cid, spend_id, "spend_id")
        if row.kind != "spend":
            raise InputError(
                f"customer {cid}: entry {spend_id} is a {row.kind}, not a spend",
                [Problem("refund a spend; a top-up is refunded with a top-up refund", "spend_id")],
            )
        held = still_taken(conn, [int(row.id)]).get(int(row.id), [])
        left = sum(d.amount_fen for d in held)
        if left == 0:
            raise Conflict(
                f"customer {cid}: spend {spend_id} ({yuan(-int(row.amount_fen))}) has been given back in full already",
                [Problem("nothing left to refund", "spend_id")],
            )
        give = left if amount is None else amount
        if give > left:
            raise InputError(
                f"customer {cid}: spend {spend_id} can give back at most {yuan(left)}, not {yuan(give)}",
                [Problem(f"asked {give} fen, {left} fen is left to refund", "amount_fen")],
            )
        return _write(conn, cid, "refund", _give_back(held, give), t, at=at_, now=now, target_id=int(row.id),
                      reason=why)  # fmt: skip

    return _run(state, cid, t, "refund", {"target_id": spend_id, "amount_fen": amount}, work)


def _reason(customer_id: int, reason: str | None, what: str) -> str:
    why = checked_text(customer_id, reason, "reason", 2000, False)
    if why is None:
        raise InputError(f"customer {customer_id}: {what} needs a reason", [Problem("e.g. the refund id", "reason")])
    return why


def refund_topup(
    state: StateStore, customer_id: int, topup_id: int, *, till: Till, reason: str, at: datetime | None = None
) -> Receipt:
    """Refund what is left of the top-up ``topup_id``: its unspent paid money is paid back to the member, its unspent
    bonus cancelled. What was spent stays spent; a refund of a spend later refills the top-up, which may then be
    refunded again."""
    cid = member_id(customer_id)
    topup_id = _id(cid, topup_id, "topup_id")
    t, at_, why = checked_till(cid, till), when(at, utcnow()), _reason(cid, reason, "a top-up refund")

    def work(conn: Connection, now: datetime) -> Entry:
        row = _target(conn, cid, topup_id, "topup_id")
        if row.kind != "topup":
            raise InputError(f"customer {cid}: entry {topup_id} is a {row.kind}, not a top-up",
                             [Problem("give a top-up's entry id", "topup_id")])  # fmt: skip
        left = buckets(conn, cid, int(row.id))
        if not left:
            raise Conflict(
                f"customer {cid}: nothing is left of top-up {topup_id} ({yuan(int(row.amount_fen))}) to refund",
                [Problem("all of it was spent or refunded", "topup_id")],
            )
        return _write(conn, cid, "topup_refund", left, t, at=at_, now=now, target_id=int(row.id), reason=why)

    return _run(state, cid, t, "topup_refund", {"target_id": topup_id}, work)


def reverse(
    state: StateStore, customer_id: int, entry_id: int, *, reason: str, by: str, idempotency_key: str,
    at: datetime | None = None,
) -> Receipt:  # fmt: skip
    """Undo an entry made in error, credited to the entry's store and guide: a top-up only while none of it has been
    spent (else refund what is left with ``refund_topup``), a spend by giving back all it still holds. An entry is
    reversed once; refunds and reversals are not reversed."""
    cid = member_id(customer_id)
    entry_id = _id(cid, entry_id, "entry_id")
    why, at_ = _reason(cid, reason, "a reversal"), when(at, utcnow())
    key = checked_text(cid, idempotency_key, "idempotency_key", 255, True) or ""
    who = checked_text(cid, by, "by", 128, True) or ""

    def work(conn: Connection, now: datetime) -> Entry:
        row = _target(conn, cid, entry_id, "entry_id")
        t = Till(row.store_code, key, who, row.guide_id, row.reference)
        done = conn.execute(select(E.c.id).where(E.c.target_id == row.id, E.c.kind == "reversal")).first()
        if done is not None:
            raise Conflict(f"customer {cid}: entry {entry_id} was reversed already, by entry {done.id}",
                           [Problem("reversed already", "entry_id")])  # fmt: skip
        if row.kind == "topup":
            left = buckets(conn, cid, int(row.id))
            if sum(d.amount_fen for d in left) != int(row.amount_fen):
                raise Conflict(
                    f"customer {cid}: some of top-up {entry_id} has been spent or refunded, so it cannot be reversed",
                    [Problem("refund what is left of it with a top-up refund", "entry_id")],
                )
            draws = left
        elif row.kind == "spend":
            held = still_taken(conn, [int(row.id)]).get(int(row.id), [])
            if not held:
                raise Conflict(f"customer {cid}: spend {entry_id} has been refunded in full already",
                               [Problem("nothing left to reverse", "entry_id")])  # fmt: skip
            draws = _give_back(held, sum(d.amount_fen for d in held))
        else:
            raise InputError(f"customer {cid}: entry {entry_id} is a {row.kind}; only top-ups and spends are reversed",
                             [Problem("give a top-up or a spend", "entry_id")])  # fmt: skip
        return _write(conn, cid, "reversal", draws, t, at=at_, now=now, target_id=int(row.id), reason=why)

    return _run(state, cid, Till("-", key, who), "reversal", {"target_id": entry_id}, work)
