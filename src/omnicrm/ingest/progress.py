"""Progress of a long import on the terminal (rich): byte bars for hashing and transcoding, and DuckDB's
own query progress for reading, validating and writing. Silent when turned off (tests, scripts)."""

from __future__ import annotations

import threading
from collections.abc import Callable
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
        progress.update(task, completed=100)
        if failure:
            raise failure[0]
