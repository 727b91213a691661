"""Fact batches: the state-database record that makes every write of facts exactly-once.

A batch goes ``writing`` → ``committed``. Its files are staged while it is ``writing``; the commit is
one state transaction (together with whatever the writer must retire, such as buffered events); the
files are published after it. ``recover`` finishes or undoes whatever a crash interrupted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import fact_batches
from omnicrm.store.state import StateStore, utcnow

__all__ = ["Batch", "begin_batch", "commit_batch", "ingest_id_of", "recover_batches"]


def ingest_id_of(origin: str, batch_id: int) -> str:
    return f"{origin}-{batch_id:010d}"


@dataclass(frozen=True)
class Batch:
    id: int
    kind: str
    origin: str

    @property
    def ingest_id(self) -> str:
        return ingest_id_of(self.origin, self.id)


def begin_batch(conn: Connection, *, kind: str, origin: str) -> Batch:
    """Record a new batch as ``writing`` (in the caller's transaction)."""
    row = conn.execute(
        insert(fact_batches)
        .values(kind=kind, origin=origin, status="writing", rows=0, files="[]", created_at=utcnow())
        .returning(fact_batches.c.id)
    ).one()
    return Batch(id=int(row.id), kind=kind, origin=origin)


def commit_batch(conn: Connection, batch: Batch, *, files: list[str], rows: int) -> None:
    """Mark the batch committed with its staged files (in the caller's transaction)."""
    conn.execute(
        update(fact_batches)
        .where(fact_batches.c.id == batch.id)
        .values(status="committed", rows=rows, files=json.dumps(files), committed_at=utcnow())
    )


def recover_batches(
    state: StateStore,
    facts: FactsStore,
    *,
    origin: str,
    redo: Callable[[Batch], None] | None = None,
) -> int:
    """Publish committed batches whose files are still staged; undo or redo unfinished ones.

    ``redo`` rewrites an unfinished batch (the loader can, since its rows are still claimed in the
    buffer); without it the batch is abandoned and its staging removed. Returns batches touched.
    """
    touched = 0
    with state.connect() as conn:
        rows = conn.execute(
            select(fact_batches.c.id, fact_batches.c.kind, fact_batches.c.status).where(fact_batches.c.origin == origin)
        ).all()
    staged = set(facts.pending_publications())
    for row in rows:
        batch = Batch(id=int(row.id), kind=row.kind, origin=origin)
        if row.status == "committed" and batch.ingest_id in staged:
            facts.publish(batch.ingest_id)
            touched += 1
        elif row.status == "writing":
            facts.clear_staging(batch.ingest_id)
            facts.remove_published(batch.kind, batch.ingest_id)
            if redo is not None:
                redo(batch)
            else:
                with state.begin() as conn:
                    conn.execute(update(fact_batches).where(fact_batches.c.id == batch.id).values(status="abandoned"))
            touched += 1
    return touched
