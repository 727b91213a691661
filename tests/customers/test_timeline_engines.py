"""The same customer timelines on DuckDB and on PySpark (local mode), through the same Ibis code."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from omnicrm.customers.timeline import AREA, SCHEMA, refresh_timeline
from omnicrm.demo import load_demo
from omnicrm.identity.refresh import refresh_identity
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore

pytestmark = pytest.mark.spark


def test_duckdb_and_spark_write_the_same_timeline(tmp_path: Path, spark: Any) -> None:
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    facts = FactsStore(tmp_path / "facts")
    load_demo(state, facts, data_dir=tmp_path, people=200, seed=3, progress=False, say=lambda _: None)
    on_duckdb = DerivedStore(tmp_path / "derived-duckdb")
    refresh_identity(state, Engine(facts), on_duckdb, probabilistic=False)
    shutil.copytree(on_duckdb.area("identity"), tmp_path / "derived-spark" / "identity")
    on_spark = DerivedStore(tmp_path / "derived-spark")
    a = refresh_timeline(Engine(facts), on_duckdb)
    b = refresh_timeline(Engine(facts, kind="spark", spark=spark), on_spark)
    assert a.rows == b.rows > 0 and a.customers == b.customers
    left = pq.read_table(on_duckdb.current(AREA) / "timeline.parquet")  # type: ignore[operator]
    right = pq.read_table(on_spark.current(AREA) / "timeline.parquet")  # type: ignore[operator]
    assert [f.type for f in left.schema] == [f.type for f in right.schema] == [f.type for f in SCHEMA]
    keys = [("customer_id", "ascending"), ("occurred_at", "descending")]
    keys += [(c, "ascending") for c in ("kind", "ref", "title", "detail")]
    assert left.to_pylist() == left.sort_by(keys).to_pylist(), "written newest first within each customer"
    # rows the page order leaves tied (two lines of one receipt alike but in amount) are in either engine's order
    every = keys + [(c, "ascending") for c in left.column_names if c not in dict(keys)]
    assert left.sort_by(every).to_pylist() == right.sort_by(every).to_pylist()
    state.dispose()
