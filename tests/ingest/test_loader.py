"""The loader moves buffered events into facts exactly once, whatever step a crash interrupts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import duckdb
import pytest
import sqlalchemy as sa

from omnicrm.ingest import loader as loader_module
from omnicrm.ingest.buffer import accept, buffered_count
from omnicrm.ingest.loader import load
from omnicrm.ingest.segment import Message, normalise
from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import fact_batches
from omnicrm.store.state import StateStore

NOW = datetime(2026, 11, 11, 2, 0, tzinfo=UTC)


class Crash(Exception):
    pass


def buffer(state: StateStore, n: int, start: int = 0) -> None:
    msgs = []
    for i in range(start, start + n):
        out = normalise(
            {"type": "track", "event": "Order Completed", "userId": f"u{i % 7}", "messageId": f"m{i}",
             "properties": {"revenue": i, "note": "双11"}, "timestamp": f"2026-11-{10 + i % 3}T08:00:00+08:00"},
            index=i, received_at=NOW, max_bytes=32_768,
        )  # fmt: skip
        assert isinstance(out, Message)
        msgs.append(out)
    accept(state, source="web", messages=msgs, received_at=NOW, ref="t")


def fact_ids(facts: FactsStore) -> list[str]:
    if not facts.files("event"):
        return []
    rel = duckdb.sql(f"SELECT message_id FROM read_parquet('{facts.glob('event')}', hive_partitioning=true)")
    return sorted(r[0] for r in rel.fetchall())


def expected(n: int) -> list[str]:
    return sorted(f"m{i}" for i in range(n))


def test_load_moves_everything_once(state: StateStore, facts: FactsStore) -> None:
    buffer(state, 250)
    result = load(state, facts, batch_size=100)
    assert (result.events, result.batches) == (250, 3)
    assert fact_ids(facts) == expected(250)
    assert buffered_count(state) == 0
    assert load(state, facts).events == 0
    assert fact_ids(facts) == expected(250)


def test_event_columns_keep_what_was_sent(state: StateStore, facts: FactsStore) -> None:
    buffer(state, 3)
    load(state, facts)
    row = duckdb.sql(
        f"SELECT type, event, user_id, properties, timestamp, source, ingest_id, date "
        f"FROM read_parquet('{facts.glob('event')}', hive_partitioning=true) WHERE message_id = 'm1'"
    ).fetchall()[0]
    assert row[:4] == ("track", "Order Completed", "u1", '{"revenue":1,"note":"双11"}')
    assert row[4] == datetime(2026, 11, 11, 0, 0, tzinfo=UTC)
    assert row[5:7] == ("web", "load-0000000001")
    assert str(row[7]) == "2026-11-11"


@pytest.mark.parametrize("step", ["stage", "commit", "publish"])
def test_a_crash_at_any_step_neither_loses_nor_duplicates(
    state: StateStore, facts: FactsStore, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    buffer(state, 120)
    target = {
        "stage": (FactsStore, "stage_table"),
        "commit": (loader_module, "commit_batch"),
        "publish": (FactsStore, "publish"),
    }[step]
    original = getattr(*target)
    calls = {"n": 0}

    def crash_on_second(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash(step)
        return original(*args, **kwargs)

    monkeypatch.setattr(*target, crash_on_second)
    with pytest.raises(Crash):
        load(state, facts, batch_size=50)
    monkeypatch.setattr(*target, original)
    buffer(state, 30, start=120)  # more arrives while the loader is down
    load(state, facts, batch_size=50)
    assert fact_ids(facts) == expected(150)
    assert buffered_count(state) == 0
    with state.connect() as conn:
        statuses = conn.execute(sa.select(fact_batches.c.status)).scalars().all()
    assert set(statuses) == {"committed"}
    assert facts.pending_publications() == []


def test_concurrent_loaders_do_not_double_load(sqlite_state: StateStore, facts: FactsStore) -> None:
    buffer(sqlite_state, 400)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            load(sqlite_state, facts, batch_size=37)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert fact_ids(facts) == expected(400)
