"""The ingest buffer: where an event becomes durable before it is acknowledged.

``accept`` writes a request's good messages and its quarantined ones in ONE state transaction; the
HTTP layer answers 200 only after it returns. The buffer row of a message outlives its payload (the
loader empties it) for the dedupe window, so its unique (source, message_id) key makes a re-sent
messageId a no-op. This is the hot path of ingest, so the insert is one multi-row statement sent
straight to the driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, DateTime, and_, delete, func, insert, select

from omnicrm.errors import Problem
from omnicrm.ingest.segment import Message
from omnicrm.store.schema import ingest_buffer, quarantine
from omnicrm.store.state import StateStore, utcnow

__all__ = ["AcceptResult", "Rejected", "accept", "buffered_count", "purge_loaded"]

_RAW_LIMIT = 64 * 1024
_ROWS_PER_STATEMENT = 500  # 5 parameters a row stays far below SQLite's 32,766 variables


@dataclass(frozen=True)
class Rejected:
    """A message that failed validation: its problems and the raw value kept in quarantine."""

    problems: list[Problem]
    raw: object


@dataclass
class AcceptResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Problem] = field(default_factory=list)


def _raw_text(raw: object) -> str:
    try:
        text = orjson.dumps(raw).decode()
    except TypeError:
        text = repr(raw)
    return text[:_RAW_LIMIT]


def _insert_new(conn: Connection, source: str, received_at: datetime, messages: Sequence[Message]) -> int:
    """Insert buffer rows, skipping (source, message_id) pairs already present; returns rows inserted."""
    dialect = conn.dialect
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    stamp: Any = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    when = stamp(received_at) if stamp else received_at
    inserted = 0
    for start in range(0, len(messages), _ROWS_PER_STATEMENT):
        chunk = messages[start : start + _ROWS_PER_STATEMENT]
        values = ",".join([f"({mark},{mark},{mark},{mark},{mark})"] * len(chunk))
        params: list[Any] = []
        for m in chunk:
            params += (source, m.message_id, m.type, when, m.json)
        sql = (
            "INSERT INTO ingest_buffer (source, message_id, type, received_at, payload) VALUES "
            f"{values} ON CONFLICT (source, message_id) DO NOTHING"
        )
        result = conn.exec_driver_sql(sql, tuple(params))
        inserted += max(result.rowcount, 0)
    return inserted


def accept(
    state: StateStore,
    *,
    source: str,
    messages: Sequence[Message],
    rejected: Sequence[Rejected] = (),
    received_at: datetime,
    ref: str,
) -> AcceptResult:
    """Buffer new messages and quarantine rejected ones, atomically; repeats of a messageId are no-ops."""
    unique = list({m.message_id: m for m in reversed(messages)}.values())[::-1]
    problems = [p for r in rejected for p in r.problems]

    def write(conn: Connection) -> int:
        accepted = _insert_new(conn, source, received_at, unique) if unique else 0
        if problems:
            conn.execute(
                insert(quarantine),
                [
                    {
                        "origin": "http",
                        "source": source,
                        "ref": ref,
                        "message_index": p.index,
                        "field": p.field,
                        "reason": p.reason,
                        "raw": _raw_text(r.raw),
                        "created_at": received_at,
                    }
                    for r in rejected
                    for p in r.problems
                ],
            )
        return accepted

    accepted = state.group_commit(write)
    return AcceptResult(accepted=accepted, duplicates=len(messages) - accepted, rejected=problems)


def buffered_count(state: StateStore) -> int:
    """Events waiting in the buffer for the loader."""
    with state.connect() as conn:
        query = select(func.count()).select_from(ingest_buffer).where(ingest_buffer.c.payload.is_not(None))
        return int(conn.execute(query).scalar_one())


def purge_loaded(state: StateStore, *, days: int) -> int:
    """Forget loaded messages older than ``days`` (so their messageIds may be reused after that)."""
    cutoff = utcnow() - timedelta(days=days)
    with state.begin() as conn:
        done = conn.execute(
            delete(ingest_buffer).where(and_(ingest_buffer.c.payload.is_(None), ingest_buffer.c.received_at < cutoff))
        )
        return int(done.rowcount or 0)
