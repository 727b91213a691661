"""The facts store: staging, publishing and recovery of Parquet batches."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pytest

from omnicrm.store.batches import begin_batch, commit_batch, recover_batches
from omnicrm.store.facts import EVENT, FactsStore
from omnicrm.store.state import StateStore


def _events(n: int, day: int = 11) -> pa.Table:
    now = datetime(2026, 11, day, 12, tzinfo=UTC)
    cols = {f.name: pa.nulls(n, f.type) for f in EVENT}
    cols.update(
        message_id=pa.array([f"m{i}" for i in range(n)]),
        type=pa.array(["track"] * n),
        timestamp=pa.array([now] * n, EVENT.field("timestamp").type),
        received_at=pa.array([now] * n, EVENT.field("received_at").type),
        source=pa.array(["web"] * n),
        ingest_id=pa.array(["x"] * n),
        ingested_at=pa.array([now] * n, EVENT.field("ingested_at").type),
    )
    return pa.table(cols, schema=EVENT)


def _count(facts: FactsStore) -> int:
    if not facts.files("event"):
        return 0
    return int(duckdb.sql(f"SELECT count(*) FROM read_parquet('{facts.glob('event')}')").fetchall()[0][0])


def test_staged_files_are_invisible_until_published(facts: FactsStore) -> None:
    staged = facts.stage_table("event", _events(3), "load-1")
    assert staged == ["event/date=2026-11-11/load-1-0.parquet"]
    assert _count(facts) == 0
    assert facts.publish("load-1") == staged
    assert _count(facts) == 3
    assert facts.publish("load-1") == []  # idempotent


def test_partitions_by_day_of_the_fact_time(facts: FactsStore) -> None:
    table = pa.concat_tables([_events(2, day=11), _events(1, day=12)])
    assert facts.stage_table("event", table, "b") == [
        "event/date=2026-11-11/b-0.parquet",
        "event/date=2026-11-12/b-0.parquet",
    ]


def test_stage_refuses_rows_that_break_the_schema(facts: FactsStore) -> None:
    bad = _events(1).set_column(0, "message_id", pa.nulls(1, pa.string()))
    with pytest.raises(ValueError, match="non-nullable"):
        facts.stage_table("event", bad, "b")


def test_recovery_publishes_committed_and_abandons_unfinished(sqlite_state: StateStore, facts: FactsStore) -> None:
    with sqlite_state.begin() as conn:
        done = begin_batch(conn, kind="event", origin="import")
        unfinished = begin_batch(conn, kind="event", origin="import")
    files = facts.stage_table("event", _events(2), done.ingest_id)
    facts.stage_table("event", _events(5), unfinished.ingest_id)
    with sqlite_state.begin() as conn:
        commit_batch(conn, done, files=files, rows=2)
    # crash here: neither batch published
    assert recover_batches(sqlite_state, facts, origin="import") == 2
    assert _count(facts) == 2
    assert facts.pending_publications() == []
