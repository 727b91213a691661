"""The same tags for the demo merchant on DuckDB and on PySpark (local mode), through the same Ibis code."""

from __future__ import annotations

import datetime as dt
import math
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from omnicrm.demo import load_demo
from omnicrm.identity.refresh import refresh_identity
from omnicrm.portrait.refresh import AREA, refresh_portrait
from omnicrm.portrait.tags.catalogue import BUILTIN
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore

pytestmark = pytest.mark.spark

AS_OF = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)


def rows(derived: DerivedStore) -> dict[int, dict[str, Any]]:
    snap = derived.current(AREA)
    assert snap is not None
    table = duckdb.sql(f"SELECT * FROM '{snap / 'tags.parquet'}' ORDER BY customer_id").to_arrow_table()
    return {r["customer_id"]: r for r in table.to_pylist()}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def test_duckdb_and_spark_give_the_demo_merchant_the_same_tags(tmp_path: Path, spark: Any) -> None:
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    facts = FactsStore(tmp_path / "facts")
    load_demo(state, facts, data_dir=tmp_path, people=400, seed=5, progress=False, say=lambda _: None)
    on_duckdb = DerivedStore(tmp_path / "derived-duckdb")
    refresh_identity(state, Engine(facts), on_duckdb, probabilistic=False)
    shutil.copytree(on_duckdb.area("identity"), tmp_path / "derived-spark" / "identity")
    on_spark = DerivedStore(tmp_path / "derived-spark")
    refresh_portrait(state, Engine(facts), on_duckdb, as_of=AS_OF)
    refresh_portrait(state, Engine(facts, kind="spark", spark=spark), on_spark, as_of=AS_OF)
    a, b = rows(on_duckdb), rows(on_spark)
    assert a.keys() == b.keys() and len(a) > 300
    differ = {
        d.id: [(cid, a[cid][d.id], b[cid][d.id]) for cid in a if not same(a[cid][d.id], b[cid][d.id])][:3]
        for d in BUILTIN
    }
    assert {k: v for k, v in differ.items() if v} == {}
