"""The loader: moves buffered events into Parquet event facts, exactly once.

One step claims a run of buffered rows for a new fact batch (a transaction), stages their Parquet
files, then in one transaction marks the batch committed and deletes the claimed rows, and finally
publishes the files. A crash anywhere is repaired by the next run: an uncommitted batch still owns
its rows in the buffer and is rewritten from them; a committed one only needs its files moved.
Only one loader runs at a time per data folder (a file lock).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa
from sqlalchemy import select, text, update

from omnicrm.store.batches import Batch, begin_batch, commit_batch, recover_batches
from omnicrm.store.facts import EVENT, FactsStore
from omnicrm.store.schema import ingest_buffer
from omnicrm.store.state import StateStore

__all__ = ["LoadResult", "load"]

ORIGIN = "load"

# Canonical payload keys (see ingest.segment) → event fact columns, extracted set-based in DuckDB.
_EXTRACT = """
SELECT
  json_extract_string(payload, '$.messageId')   AS message_id,
  json_extract_string(payload, '$.type')        AS type,
  json_extract_string(payload, '$.event')       AS event,
  json_extract_string(payload, '$.name')        AS name,
  json_extract_string(payload, '$.userId')      AS user_id,
  json_extract_string(payload, '$.anonymousId') AS anonymous_id,
  json_extract_string(payload, '$.previousId')  AS previous_id,
  json_extract_string(payload, '$.groupId')     AS group_id,
  nullif(json_extract(payload, '$.traits')::VARCHAR, 'null')     AS traits,
  nullif(json_extract(payload, '$.properties')::VARCHAR, 'null') AS properties,
  nullif(json_extract(payload, '$.context')::VARCHAR, 'null')    AS context,
  CAST(json_extract_string(payload, '$.timestamp') AS TIMESTAMPTZ) AS timestamp,
  CAST(json_extract_string(payload, '$.sentAt') AS TIMESTAMPTZ)    AS sent_at,
  CAST(json_extract_string(payload, '$.receivedAt') AS TIMESTAMPTZ) AS received_at,
  source,
  message_id AS source_key,
  $ingest_id AS ingest_id,
  now() AS ingested_at,
  CAST(NULL AS VARCHAR) AS source_file,
  CAST(NULL AS BIGINT) AS source_line
FROM rows
ORDER BY id
"""


@dataclass
class LoadResult:
    batches: int = 0
    events: int = 0
    recovered: int = 0


def _claim(state: StateStore, limit: int) -> Batch | None:
    with state.begin() as conn:
        first = conn.execute(
            select(ingest_buffer.c.id).where(ingest_buffer.c.batch_id.is_(None)).order_by(ingest_buffer.c.id).limit(1)
        ).first()
        if first is None:
            return None
        batch = begin_batch(conn, kind="event", origin=ORIGIN)
        conn.execute(
            text(
                "UPDATE ingest_buffer SET batch_id = :b WHERE id IN ("
                "SELECT id FROM ingest_buffer WHERE batch_id IS NULL ORDER BY id LIMIT :n)"
            ),
            {"b": batch.id, "n": limit},
        )
    return batch


def _write_and_commit(state: StateStore, facts: FactsStore, batch: Batch) -> int:
    """Stage the batch's claimed rows as Parquet, then commit the batch and retire the rows."""
    with state.connect() as conn:
        result = conn.execute(
            select(ingest_buffer.c.id, ingest_buffer.c.source, ingest_buffer.c.message_id, ingest_buffer.c.payload)
            .where(ingest_buffer.c.batch_id == batch.id)
            .order_by(ingest_buffer.c.id)
        )
        fetched = result.all()
    rows = pa.table(
        {
            "id": pa.array([r[0] for r in fetched], pa.int64()),
            "source": pa.array([r[1] for r in fetched], pa.string()),
            "message_id": pa.array([r[2] for r in fetched], pa.string()),
            "payload": pa.array([r[3] for r in fetched], pa.string()),
        }
    )
    facts.clear_staging(batch.ingest_id)
    files: list[str] = []
    if rows.num_rows:
        with duckdb.connect() as db:
            db.register("rows", rows)
            table = db.sql(_EXTRACT, params={"ingest_id": batch.ingest_id}).to_arrow_table()
        files = facts.stage_table("event", table.cast(EVENT), batch.ingest_id)
    with state.begin() as conn:
        commit_batch(conn, batch, files=files, rows=rows.num_rows)
        # The rows stay (without payload) so their messageIds keep deduplicating re-sends.
        conn.execute(update(ingest_buffer).where(ingest_buffer.c.batch_id == batch.id).values(payload=None))
    facts.publish(batch.ingest_id)
    return rows.num_rows


def load(
    state: StateStore, facts: FactsStore, *, batch_size: int = 200_000, max_batches: int | None = None
) -> LoadResult:
    """Move everything buffered now into facts; safe to run after any crash, and concurrently."""
    result = LoadResult()
    with facts.exclusive("loader"):

        def redo(batch: Batch) -> None:
            _write_and_commit(state, facts, batch)

        result.recovered = recover_batches(state, facts, origin=ORIGIN, redo=redo)
        while max_batches is None or result.batches < max_batches:
            batch = _claim(state, batch_size)
            if batch is None:
                break
            result.events += _write_and_commit(state, facts, batch)
            result.batches += 1
    return result
