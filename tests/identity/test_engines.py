"""The same OneID answer on DuckDB and on PySpark (local mode), through the same Ibis code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from omnicrm.demo import load_demo
from omnicrm.identity.refresh import AREA, refresh_identity
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore

pytestmark = pytest.mark.spark


def partition(derived: DerivedStore) -> set[frozenset[str]]:
    snap = derived.current(AREA)
    assert snap is not None
    rows = duckdb.sql(
        f"SELECT list(record_key ORDER BY record_key) FROM '{snap / 'records.parquet'}' GROUP BY customer_id"
    ).fetchall()
    return {frozenset(r[0]) for r in rows}


def test_duckdb_and_spark_resolve_the_demo_merchant_alike(tmp_path: Path, spark: Any) -> None:
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    facts = FactsStore(tmp_path / "facts")
    load_demo(state, facts, data_dir=tmp_path, people=300, seed=3, progress=False, say=lambda _: None)
    on_duckdb = DerivedStore(tmp_path / "derived-duckdb")
    on_spark = DerivedStore(tmp_path / "derived-spark")
    a = refresh_identity(state, Engine(facts), on_duckdb)
    b = refresh_identity(state, Engine(facts, kind="spark", spark=spark), on_spark)
    assert (a.customers, a.records, a.ignored) == (b.customers, b.records, b.ignored)
    assert partition(on_duckdb) == partition(on_spark)
