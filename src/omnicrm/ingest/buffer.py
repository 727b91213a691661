"""The ingest buffer: where an event becomes durable before it is acknowledged.

``accept`` writes a batch's good messages (new messageIds only) and its quarantined ones in ONE
state transaction; the HTTP layer answers 200 only after it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from sqlalchemy import delete, func, insert, select

from omnicrm.errors import Problem
from omnicrm.ingest.segment import Message
from omnicrm.store.schema import ingest_buffer, ingest_dedupe, quarantine
from omnicrm.store.state import StateStore, insert_ignoring_conflicts, utcnow

__all__ = ["AcceptResult", "Rejected", "accept", "buffered_count", "purge_dedupe"]

_RAW_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Rejected:
    """A message that failed validation: its problems and the raw text kept in quarantine."""

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
    result = AcceptResult()
    unique: dict[str, Message] = {}
    for msg in messages:
        unique.setdefault(msg.message_id, msg)
    result.duplicates = len(messages) - len(unique)
    with state.begin() as conn:
        fresh: set[str] = set()
        if unique:
            stmt = insert_ignoring_conflicts(conn, ingest_dedupe, ["source", "message_id"]).returning(
                ingest_dedupe.c.message_id
            )
            rows = [{"source": source, "message_id": mid, "received_at": received_at} for mid in unique]
            fresh = set(conn.execute(stmt, rows).scalars())
        result.duplicates += len(unique) - len(fresh)
        if fresh:
            conn.execute(
                insert(ingest_buffer),
                [
                    {
                        "source": source,
                        "message_id": m.message_id,
                        "type": m.type,
                        "received_at": received_at,
                        "payload": m.to_json(),
                    }
                    for mid, m in unique.items()
                    if mid in fresh
                ],
            )
        result.accepted = len(fresh)
        quarantined = [
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
        ]
        if quarantined:
            conn.execute(insert(quarantine), quarantined)
        result.rejected = [p for r in rejected for p in r.problems]
    return result


def buffered_count(state: StateStore) -> int:
    """Events waiting in the buffer for the loader."""
    with state.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ingest_buffer)).scalar_one())


def purge_dedupe(state: StateStore, *, days: int) -> int:
    """Forget messageIds older than ``days`` (kept at least 7 days by settings)."""
    cutoff = utcnow() - timedelta(days=days)
    with state.begin() as conn:
        return int(conn.execute(delete(ingest_dedupe).where(ingest_dedupe.c.received_at < cutoff)).rowcount or 0)
