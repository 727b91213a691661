"""A sign-up storm run in a separate (spawned) process, for the process storm test."""

from __future__ import annotations

from typing import Any

from omnicrm.community.signups import sign_up
from omnicrm.store.state import StateStore
from tests.community.checks import NOW
from tests.loyalty.checks import run


def storm_in_process(url: str, event_id: int, customers: list[int], threads: int, gate: Any, out: Any) -> None:
    """In a spawned process: open a state store of its own on ``url``, wait for the other processes, then sign
    ``customers`` up on ``threads`` threads (each taking every ``threads``-th one); put (customer, id, status) or
    (customer, error) for each on ``out``."""
    state = StateStore(url, migrate=False)
    try:
        gate.wait(180)

        def work(i: int) -> list[tuple[Any, ...]]:
            done: list[tuple[Any, ...]] = []
            for customer in customers[i::threads]:
                try:
                    s = sign_up(state, event_id, customer, by=f"process-thread-{i}", now=NOW)
                    done.append((customer, s.id, s.status))
                except Exception as exc:  # reported to the parent, which fails the test
                    done.append((customer, repr(exc)))
            return done

        results = run(threads, work)
        out.put([item for part in results for item in (part if isinstance(part, list) else [(0, repr(part))])])
    finally:
        state.dispose()
