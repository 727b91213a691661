"""The state store: migrations, dialect helpers and durability settings, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from omnicrm.ingest.buffer import accept
from omnicrm.ingest.segment import Message, normalise
from omnicrm.store.migrate import alembic_config
from omnicrm.store.schema import ingest_buffer, metadata
from omnicrm.store.state import StateStore, utcnow


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
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == head


def test_buffer_keeps_one_row_per_message_id(state: StateStore) -> None:
    def msgs(*ids: str) -> list[Message]:
        out = [normalise({"type": "track", "event": "e", "userId": "u", "messageId": m}, index=0,
                         received_at=utcnow(), max_bytes=32_768) for m in ids]  # fmt: skip
        return [m for m in out if isinstance(m, Message)]

    first = accept(state, source="web", messages=msgs("a", "b", "a"), received_at=utcnow(), ref="r")
    assert (first.accepted, first.duplicates) == (2, 1)
    again = accept(state, source="web", messages=msgs("a", "b", "c"), received_at=utcnow(), ref="r")
    assert (again.accepted, again.duplicates) == (1, 2)
    other_source = accept(state, source="app", messages=msgs("a"), received_at=utcnow(), ref="r")
    assert other_source.accepted == 1


def test_failed_transaction_leaves_nothing(state: StateStore) -> None:
    now = utcnow()
    try:
        with state.begin() as conn:
            conn.execute(sa.insert(ingest_buffer).values(source="web", message_id="x", type="track", received_at=now))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with state.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ingest_buffer)).scalar_one() == 0


def test_sqlite_runs_in_wal_with_full_sync(sqlite_state: StateStore) -> None:
    with sqlite_state.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
