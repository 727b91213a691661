"""How the loyalty code changes state safely: one transaction per change, the member's account row as its lock.

Every writer of a member's lots, entries or tier (earn, spend, refund, adjust, activation, expiry, tier review)
first locks that member's ``point_accounts`` row and bumps its version, inside the transaction that makes the
change. The row holds no balance, only that version.

- PostgreSQL (READ COMMITTED): ``SELECT … FOR UPDATE`` on the account rows, always in customer_id order so two
  batch jobs cannot deadlock; the statements that follow the lock see every change committed before it, so two
  spends can never both draw the same lot. A deadlock or serialization failure that slips through anyway (e.g.
  with another part of the product) rolls the whole transaction back, and ``transaction`` runs it again.
- SQLite: the state store opens every write transaction with ``BEGIN IMMEDIATE`` (one writer at a time), so the
  lock is implied; ``FOR UPDATE`` renders as nothing there.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, select, update
from sqlalchemy.exc import DBAPIError

from omnicrm.errors import InputError, Problem
from omnicrm.store.schema import point_accounts
from omnicrm.store.state import StateStore

__all__ = ["bump", "chunks", "insert_or_nothing", "lock_members", "transaction", "utc", "when"]

T = TypeVar("T")
CHUNK = 500  # rows per statement: far below SQLite's variable limit
_RETRYABLE = {"40001", "40P01"}  # serialization_failure, deadlock_detected
_ATTEMPTS = 5


def utc(value: datetime) -> datetime:
    """A time read back from the store as an aware UTC time (SQLite gives naive UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def when(value: datetime | None, default: datetime, field: str = "at") -> datetime:
    """``value`` (or ``default``) in UTC; a time without a zone is refused, naming ``field``."""
    if value is None:
        return default
    if value.tzinfo is None:
        raise InputError("the time has no time zone", [Problem("give it with an offset, e.g. +08:00", field)])
    return value.astimezone(UTC)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def transaction(state: StateStore, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one write transaction; on PostgreSQL retry it when the database aborted it for a deadlock
    or a serialization failure (nothing of the failed attempt was committed)."""
    for attempt in range(_ATTEMPTS):
        try:
            with state.begin() as conn:
                return work(conn)
        except DBAPIError as exc:
            code = getattr(exc.orig, "sqlstate", None)
            if code not in _RETRYABLE or attempt == _ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def insert_or_nothing(
    conn: Connection, table: Table, rows: list[dict[str, Any]], returning: Sequence[str] = ()
) -> list[Any]:
    """INSERT rows, skipping any that would break a unique key (ON CONFLICT DO NOTHING, both dialects); with
    ``returning``, the given columns of the rows actually inserted."""
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(table).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).on_conflict_do_nothing()
    if returning:
        stmt = stmt.returning(*(table.c[c] for c in returning))
        return list(conn.execute(stmt, rows).all())
    conn.execute(stmt, rows)
    return []


def lock_members(conn: Connection, customer_ids: Iterable[int], now: datetime) -> list[int]:
    """Create the members' account rows if missing and lock them (in id order); returns the sorted ids."""
    ids = sorted({int(c) for c in customer_ids})
    a = point_accounts
    for part in chunks(ids):
        new = [{"customer_id": c, "version": 0, "created_at": now, "updated_at": now} for c in part]
        insert_or_nothing(conn, a, new)
        conn.execute(
            select(a.c.customer_id).where(a.c.customer_id.in_(part)).order_by(a.c.customer_id).with_for_update()
        )
    return ids


def bump(conn: Connection, customer_ids: Iterable[int], now: datetime) -> None:
    """Count one more change on each member's account (the version an API can hand out as an ETag)."""
    a = point_accounts
    ids = sorted(set(customer_ids))
    for part in chunks(ids):
        conn.execute(update(a).where(a.c.customer_id.in_(part)).values(version=a.c.version + 1, updated_at=now))
