"""The inbox's background work in the server, in a thread: SLA warnings, following OneID, waiting conversations,
replies left mid-send, and messages written as facts (only while the server's loader runs, as facts are its job)."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from omnicrm.inbox.assignment import assign_waiting
from omnicrm.inbox.config import InboxConfig
from omnicrm.inbox.contacts import follow_identity
from omnicrm.inbox.facts import export_facts
from omnicrm.inbox.queue import record_warnings
from omnicrm.inbox.replies import settle_stale
from omnicrm.logs import get_logger
from omnicrm.store.derived import DerivedStore
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore

__all__ = ["InboxWorker"]

log = get_logger(__name__)


class InboxWorker(threading.Thread):
    """Runs ``step`` every ``config.worker_interval_seconds`` until stopped."""

    def __init__(
        self, state: StateStore, derived: DerivedStore, facts: FactsStore, config: InboxConfig, *, write_facts: bool
    ) -> None:
        super().__init__(name="omnicrm-inbox", daemon=True)
        self.state, self.derived, self.facts, self.config = state, derived, facts, config
        self.write_facts = write_facts
        self._followed: Path | None = None
        self._halt = threading.Event()

    def step(self, now: datetime | None = None) -> dict[str, Any]:
        """One round of every task; what each did."""
        done: dict[str, Any] = {}
        done["warnings"] = len(record_warnings(self.state, now=now, warn_at=self.config.warn_at))
        snapshot = self.derived.current("identity")
        if snapshot is not None and snapshot != self._followed:
            done["identity"] = follow_identity(self.state, snapshot, now=now).as_dict()
            self._followed = snapshot
        done["in_doubt"] = settle_stale(self.state, older_than_minutes=self.config.stale_sending_minutes, now=now)
        done["assigned"] = assign_waiting(self.state, now=now)
        if self.write_facts:
            done["facts"] = export_facts(self.state, self.facts, now=now).messages
        return done

    def run(self) -> None:
        while not self._halt.wait(self.config.worker_interval_seconds):
            try:
                done = self.step()
                if any(v for v in done.values()):
                    log.info("inbox round", **{k: v for k, v in done.items() if v})
            except Exception as exc:  # keep going after a transient failure; the next round retries
                log.exception("inbox round failed; will retry", error=repr(exc))

    def stop(self, timeout: float = 30.0) -> None:
        self._halt.set()
        self.join(timeout)
