"""A real crash: the server is SIGKILLed while a retrying client streams events into it.

Afterwards every acknowledged event is in facts exactly once (and, since the client retries until
acknowledged, so is every event it sent).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from omnicrm.ingest.loader import load
from omnicrm.ingest.sources import create_source
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore
from tests.live import LiveServer

pytestmark = pytest.mark.slow

BATCHES = 150
SIZE = 100
DEADLINE = 180.0


class RetryingClient(threading.Thread):
    """Sends numbered batches; a batch counts as acknowledged only on 200; anything else is retried."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.acknowledged: set[str] = set()
        self.attempts = 0
        self.failures = 0
        self.done = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        with httpx.Client(auth=("wk_crash", ""), timeout=5) as http:
            for b in range(BATCHES):
                ids = [f"c-{b}-{i}" for i in range(SIZE)]
                batch = [{"type": "track", "event": "Order Completed", "userId": f"u{i}", "messageId": m,
                          "properties": {"b": b}} for i, m in enumerate(ids)]  # fmt: skip
                while time.monotonic() - started < DEADLINE:
                    self.attempts += 1
                    try:
                        res = http.post(self.url + "/v1/batch", json={"batch": batch})
                        if res.status_code == 200:
                            self.acknowledged.update(ids)
                            break
                    except httpx.HTTPError:
                        pass
                    self.failures += 1
                    time.sleep(0.05)
                time.sleep(0.005)
        self.done.set()


def test_sigkill_while_streaming_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    state = StateStore(f"sqlite:///{data / 'state.db'}")
    create_source(state, "pos-store-1", "pos", write_key="wk_crash")
    live = LiveServer(data, loader_interval=0.2)  # the loader runs often, so kills land inside it too
    live.start()
    client = RetryingClient(live.url)
    client.start()
    kills = 0
    try:
        while not client.done.is_set() and kills < 4:
            time.sleep(0.7)
            live.kill()
            kills += 1
            time.sleep(0.2)
            live.start()
        assert client.done.wait(DEADLINE)
    finally:
        live.stop()
    assert kills >= 2, "the client finished before the server could be killed twice; send more"
    assert client.failures > 0, "no request failed, so no kill hit a request"
    assert len(client.acknowledged) == BATCHES * SIZE

    facts = FactsStore(data / "facts")
    load(state, facts)
    glob = facts.glob("event")
    total, distinct = duckdb.sql(f"SELECT count(*), count(DISTINCT message_id) FROM read_parquet('{glob}')").fetchall()[
        0
    ]
    assert (total, distinct) == (BATCHES * SIZE, BATCHES * SIZE)
    landed = {r[0] for r in duckdb.sql(f"SELECT message_id FROM read_parquet('{glob}')").fetchall()}
    assert landed == client.acknowledged
