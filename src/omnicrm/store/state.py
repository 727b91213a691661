"""The state database: one SQLAlchemy engine per URL, migrated with Alembic on open.

SQLite runs in WAL mode with ``synchronous=FULL`` so a committed (acknowledged) write survives a
crash, and every transaction starts with ``BEGIN IMMEDIATE`` so concurrent writers queue instead of
failing half-way. PostgreSQL is used as it is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.sql.dml import Insert

__all__ = ["StateStore", "insert_ignoring_conflicts", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_engine(url: str) -> Engine:
    path = make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class StateStore:
    """Owns the engine of the state database and hands out transactions."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        if make_url(url).get_backend_name() == "sqlite":
            self.engine = _sqlite_engine(url)
        else:
            self.engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        if migrate:
            self.migrate()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with Alembic (idempotent)."""
        from omnicrm.store.migrate import upgrade

        upgrade(self.engine, revision)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def insert_ignoring_conflicts(conn: Connection, table: Table, index: Sequence[str]) -> Insert:
    """``INSERT ... ON CONFLICT (index) DO NOTHING`` for the connection's dialect."""
    name = conn.dialect.name
    if name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(index))
    if name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(index))
    raise NotImplementedError(f"state database dialect {name!r} is not supported; use SQLite or PostgreSQL")
