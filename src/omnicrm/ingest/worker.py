"""A background loader for the server: loads buffered events every few seconds, in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from omnicrm.ingest.buffer import buffered_count, purge_loaded
from omnicrm.ingest.loader import load
from omnicrm.logs import get_logger
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore

__all__ = ["LoaderThread"]

log = get_logger(__name__)
_PURGE_EVERY = 3600.0


class LoaderThread(threading.Thread):
    """Runs ``load`` every ``interval`` seconds until stopped; reports the backlog to ``on_backlog``."""

    def __init__(
        self,
        state: StateStore,
        facts: FactsStore,
        *,
        interval: float,
        batch_size: int,
        dedupe_days: int,
        on_backlog: Callable[[int], None],
    ) -> None:
        super().__init__(name="omnicrm-loader", daemon=True)
        self.state, self.facts = state, facts
        self.interval, self.batch_size, self.dedupe_days = interval, batch_size, dedupe_days
        self.on_backlog = on_backlog
        self._halt = threading.Event()
        self._last_purge = 0.0

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.on_backlog(buffered_count(self.state))
                result = load(self.state, self.facts, batch_size=self.batch_size)
                if result.events or result.recovered:
                    log.info("loaded events into facts", events=result.events, batches=result.batches)
                self.on_backlog(buffered_count(self.state))
                if time.monotonic() - self._last_purge > _PURGE_EVERY:
                    purge_loaded(self.state, days=self.dedupe_days)
                    self._last_purge = time.monotonic()
            except Exception as exc:  # keep loading after a transient failure; it is retried next round
                log.exception("loader step failed; will retry", error=repr(exc))
            self._halt.wait(self.interval)

    def stop(self, timeout: float = 30.0) -> None:
        self._halt.set()
        self.join(timeout)
