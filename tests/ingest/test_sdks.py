"""The official Segment and RudderStack Python clients, unchanged, deliver into omnicrm's facts."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from omnicrm.ingest.loader import load
from omnicrm.ingest.sources import create_source
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore
from tests.live import LiveServer

pytestmark = pytest.mark.slow
N = 10_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    state = StateStore(f"sqlite:///{tmp_path / 'data' / 'state.db'}")
    create_source(state, "web", "web", write_key="wk_segment_web")
    create_source(state, "app", "app", write_key="wk_rudder_app")
    state.dispose()
    live = LiveServer(tmp_path / "data", loader_interval=1.0)
    live.start()
    yield live
    live.stop()


def send_segment(url: str, start: int = 0) -> list[BaseException]:
    from segment.analytics import Client

    errors: list[BaseException] = []
    client = Client(write_key="wk_segment_web", host=url, gzip=True, max_queue_size=N + 1, upload_size=100,
                    on_error=lambda e, _batch: errors.append(e))  # fmt: skip
    for i in range(start, N):
        if i % 3 == 0:
            client.identify(user_id=f"member-{i}", traits={"phone": f"138{i:08d}"}, message_id=f"seg-{i}")
        else:
            client.track(user_id=None, anonymous_id=f"device-{i % 500}", event="Products Searched",
                         properties={"query": "碎花连衣裙 夏"}, message_id=f"seg-{i}")  # fmt: skip
    client.flush()
    client.join()
    return errors


def send_rudder(url: str) -> list[BaseException]:
    from rudderstack.analytics import Client

    errors: list[BaseException] = []
    client = Client(write_key="wk_rudder_app", host=url, gzip=True, max_queue_size=N + 1, upload_size=100,
                    on_error=lambda e, _batch: errors.append(e))  # fmt: skip
    for i in range(N):
        if i % 2:
            client.screen(user_id=f"member-{i}", name="商品详情", properties={"sku": f"SKU{i % 300}"},
                          message_id=f"rud-{i}")  # fmt: skip
        else:
            client.track(user_id=f"member-{i}", event="Product Added", properties={"sku": f"SKU{i % 300}"},
                         message_id=f"rud-{i}")  # fmt: skip
    client.flush()
    client.join()
    return errors


def fact_counts(facts: FactsStore) -> tuple[int, int, dict[str, int]]:
    glob = facts.glob("event")
    total, distinct = duckdb.sql(f"SELECT count(*), count(DISTINCT message_id) FROM read_parquet('{glob}')").fetchall()[
        0
    ]
    by_source = dict(duckdb.sql(f"SELECT source, count(*) FROM read_parquet('{glob}') GROUP BY 1").fetchall())
    return total, distinct, by_source


def test_both_sdks_deliver_every_event_exactly_once(server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert send_segment(server.url) == []
    assert send_rudder(server.url) == []
    server.stop()  # the server's loader may have loaded part; the rest is still buffered
    state = StateStore(f"sqlite:///{server.data_dir / 'state.db'}")
    facts = FactsStore(server.data_dir / "facts")
    load(state, facts)
    assert fact_counts(facts) == (2 * N, 2 * N, {"web": N, "app": N})

    # the same batches again: every messageId is known, nothing new lands
    server.start()
    assert send_segment(server.url) == []
    assert send_rudder(server.url) == []
    server.stop()
    load(state, facts)
    assert fact_counts(facts) == (2 * N, 2 * N, {"web": N, "app": N})
    types = dict(duckdb.sql(f"SELECT type, count(*) FROM read_parquet('{facts.glob('event')}') GROUP BY 1").fetchall())
    assert types == {"identify": 3334, "track": 6666 + 5000, "screen": 5000}
