"""The state store: migrations, dialect helpers and durability settings, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from omnicrm.store.schema import ingest_dedupe, metadata
from omnicrm.store.state import StateStore, insert_ignoring_conflicts, utcnow


def test_migrations_create_every_table(state: StateStore) -> None:
    tables = set(sa.inspect(state.engine).get_table_names())
    assert set(metadata.tables) <= tables
    assert "alembic_version" in tables


def test_migrations_match_the_declared_schema(state: StateStore) -> None:
    with state.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrate_is_idempotent(state: StateStore) -> None:
    state.migrate()
    state.migrate()
    with state.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0001"


def test_insert_ignoring_conflicts_returns_only_new_keys(state: StateStore) -> None:
    now = utcnow()
    rows = [{"source": "web", "message_id": m, "received_at": now} for m in ("a", "b")]
    with state.begin() as conn:
        stmt = insert_ignoring_conflicts(conn, ingest_dedupe, ["source", "message_id"]).returning(
            ingest_dedupe.c.message_id
        )
        assert set(conn.execute(stmt, rows).scalars()) == {"a", "b"}
    with state.begin() as conn:
        more = [*rows, {"source": "web", "message_id": "c", "received_at": now}]
        assert set(conn.execute(stmt, more).scalars()) == {"c"}


def test_failed_transaction_leaves_nothing(state: StateStore) -> None:
    now = utcnow()
    try:
        with state.begin() as conn:
            conn.execute(sa.insert(ingest_dedupe).values(source="web", message_id="x", received_at=now))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with state.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ingest_dedupe)).scalar_one() == 0


def test_sqlite_runs_in_wal_with_full_sync(sqlite_state: StateStore) -> None:
    with sqlite_state.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
