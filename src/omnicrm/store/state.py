"""The state database: one SQLAlchemy engine per URL, migrated with Alembic on open.

SQLite runs in WAL mode with ``synchronous=FULL`` so a committed (acknowledged) write survives a
crash, and every transaction starts with ``BEGIN IMMEDIATE`` so concurrent writers queue instead of
failing half-way. PostgreSQL is used as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

__all__ = ["StateStore", "utcnow"]


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


T = TypeVar("T")


class _Ticket:
    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[Connection], Any]) -> None:
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False


class StateStore:
    """Owns the engine of the state database and hands out transactions."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self._write_lock: AbstractContextManager[object] = nullcontext()
        if make_url(url).get_backend_name() == "sqlite":
            self.engine = _sqlite_engine(url)
            # SQLite has one writer; queueing writers of this process here is far faster than
            # SQLite's busy-wait backoff. Other processes still queue on the database lock.
            self._write_lock = threading.Lock()
        else:
            self.engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        self._pending: list[_Ticket] = []
        self._pending_lock = threading.Lock()
        self._leader_lock = threading.Lock()
        if migrate:
            self.migrate()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self, revision: str = "heads") -> None:
        """Bring the schema to ``revision`` with Alembic (idempotent)."""
        from omnicrm.store.migrate import upgrade

        upgrade(self.engine, revision)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back on error."""
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    def group_commit(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a write transaction shared with concurrent callers (group commit).

        Callers that arrive while a transaction is being written queue up; the next of them to get
        the lock writes everyone's work in one transaction, so one fsync serves many requests.
        Returns only after the transaction holding ``work`` has committed; if it fails, every
        caller of that group gets the error (and, as nothing was committed, may retry).
        """
        ticket = _Ticket(work)
        with self._pending_lock:
            self._pending.append(ticket)
        with self._leader_lock:
            if not ticket.done:
                with self._pending_lock:
                    group, self._pending = self._pending, []
                try:
                    with self.begin() as conn:
                        for member in group:
                            member.result = member.work(conn)
                except BaseException as exc:
                    for member in group:
                        member.error = exc
                finally:
                    for member in group:
                        member.done = True
        if ticket.error is not None:
            raise ticket.error
        return cast(T, ticket.result)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()
