"""Progress of a long import on the terminal (rich): byte bars for hashing and transcoding, and DuckDB's
own query progress for reading, validating and writing. Silent when turned off (tests, scripts)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import duckdb
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

__all__ = ["Reporter"]


class Reporter:
    """Stages of one import; ``run`` executes a DuckDB statement while showing its progress."""

    def __init__(self, enabled: bool, console: Console | None = None) -> None:
        self.progress: Progress | None = None
        if enabled:
            self.progress = Progress(
                TextColumn("{task.description:<16}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=console or Console(stderr=True),
                transient=False,
            )

    def __enter__(self) -> Reporter:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.progress is not None:
            self.progress.stop()

    def bytes(self, label: str, total: int) -> Callable[[int], None] | None:
        """An ``advance(n)`` callback for a stage measured in bytes, or None when silent."""
        progress = self.progress
        if progress is None:
            return None
        task = progress.add_task(label, total=max(total, 1))

        def advance(n: int) -> None:
            progress.advance(task, n)

        return advance

    def run(self, con: duckdb.DuckDBPyConnection, sql: str, params: list[Any], label: str) -> None:
        """Execute ``sql``; with progress on, in a worker thread while DuckDB's progress is polled."""
        progress = self.progress
        if progress is None:
            con.execute(sql, params)
            return
        task = progress.add_task(label, total=100)
        failure: list[BaseException] = []

        def work() -> None:
            try:
                con.execute(sql, params)
            except BaseException as exc:
                failure.append(exc)

        worker = threading.Thread(target=work, name=f"omnicrm-import-{label}", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.1)
                done = con.query_progress()
                if done >= 0:
                    progress.update(task, completed=done)
        except BaseException:  # Ctrl-C: stop the query too, then let the caller clean up
            con.interrupt()
            worker.join()
            raise
        if failure:  # the bar stays where the statement stopped; a cancelled one goes
            if isinstance(failure[0], duckdb.InterruptException):
                progress.remove_task(task)
            raise failure[0]
        progress.update(task, completed=100)

    def run_all(
        self,
        con: duckdb.DuckDBPyConnection,
        statements: Sequence[tuple[str, list[Any]]],
        label: str,
        workers: int,
        session: str = "",
    ) -> None:
        """Execute independent statements, up to ``workers`` at once (each on its own cursor), under one bar.

        For many small statements that DuckDB would run on one thread each (e.g. one COPY per file). The
        cursors see the connection's database, not its TEMP tables nor its settings: ``session`` (SQL) sets
        them up. The first failure stops the rest."""
        pending = deque(statements)
        total = len(pending)
        lock = threading.Lock()
        done = [0]
        failure: list[BaseException] = []
        cursors: list[duckdb.DuckDBPyConnection] = []

        def work(cur: duckdb.DuckDBPyConnection) -> None:
            while True:
                with lock:
                    if failure or not pending:
                        return
                    sql, params = pending.popleft()
                try:
                    cur.execute(sql, params)
                except BaseException as exc:
                    with lock:
                        failure.append(exc)
                    return
                with lock:
                    done[0] += 1

        progress = self.progress
        task = progress.add_task(label, total=max(total, 1)) if progress is not None else None
        try:
            for _ in range(max(1, min(workers, total))):
                cursors.append(con.cursor())
                if session:
                    cursors[-1].execute(session)
            threads = [
                threading.Thread(target=work, args=(cur,), name=f"omnicrm-import-{label}-{i}", daemon=True)
                for i, cur in enumerate(cursors)
            ]
            for t in threads:
                t.start()
            try:
                for t in threads:
                    while t.is_alive():
                        t.join(0.1)
                        if progress is not None and task is not None:
                            progress.update(task, completed=done[0])
            except BaseException:  # Ctrl-C: stop the statements too, then let the caller clean up
                with lock:
                    pending.clear()
                for cur in cursors:
                    cur.interrupt()
                for t in threads:
                    t.join()
                raise
        finally:
            for cur in cursors:
                cur.close()
        if failure:
            raise failure[0]
        if progress is not None and task is not None:
            progress.update(task, completed=max(total, 1))
