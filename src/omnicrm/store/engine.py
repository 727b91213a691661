"""The analytic engine seam: one Ibis connection over the Parquet facts, on DuckDB or on PySpark.

Domain code asks an ``Engine`` for fact tables as Ibis expressions and for results as Arrow; it never
names a backend. DuckDB runs in process (the default); Spark is imported lazily and only when the
settings ask for it, with an ImportError that says what to install.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from omnicrm.store.facts import SCHEMAS, FactsStore

__all__ = ["Engine", "duckdb_backend", "spark_session"]


def spark_session(app_name: str = "omnicrm", *, master: str = "local[2]", jars: Sequence[str] = ()) -> Any:
    """A local Spark session tuned for one machine (UI off, few shuffle partitions, UTC)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the Spark engine needs pyspark: pip install 'pyspark>=4.0,<5' (and Java 17)") from exc
    return (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.jars", ",".join(jars))
        .getOrCreate()
    )


def duckdb_backend() -> Any:
    """An in-process Ibis DuckDB connection set up the way every omnicrm query expects."""
    con = ibis.duckdb.connect()
    con.raw_sql("SET enable_progress_bar = false")
    con.raw_sql("SET TimeZone = 'UTC'")
    # Ibis 12 writes array lambdas as `x -> ...`, which DuckDB 2.0 refuses unless told otherwise
    con.raw_sql("SET lambda_syntax = 'ENABLE_SINGLE_ARROW'")
    return con


def _spark_schema(kind: str) -> Any:
    """The Spark schema of a fact kind, from its Arrow schema (so every file reads alike)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(SCHEMAS[kind])


class Engine:
    """An Ibis backend plus the facts it reads."""

    def __init__(self, facts: FactsStore, *, kind: str = "duckdb", spark: Any = None) -> None:
        self.facts = facts
        self.kind = kind
        if kind == "duckdb":
            self.con = duckdb_backend()
        elif kind == "spark":
            self.spark = spark or spark_session()
            self.con = ibis.pyspark.connect(self.spark)
        else:
            raise ValueError(f"unknown engine {kind!r}; use 'duckdb' or 'spark'")
        self._tables = 0
        self._run = uuid.uuid4().hex[:8]

    def fact_table(self, kind: str, files: Iterable[Path] | None = None) -> ir.Table:
        """All published facts of ``kind`` (or only ``files``), as an Ibis table in the kind's schema."""
        paths = [str(p) for p in (files if files is not None else self.facts.files(kind))]
        if not paths:
            return self.table_from_arrow(SCHEMAS[kind].empty_table(), f"empty_{kind}")
        name = self._name(f"facts_{kind}")
        if self.kind == "duckdb":
            return self.con.read_parquet(paths, table_name=name)
        # Spark reads a list of files natively; Ibis would take the list for one glob pattern
        frame = self.spark.read.schema(_spark_schema(kind)).parquet(*paths)
        frame.createOrReplaceTempView(name)
        return self.con.table(name)

    def _name(self, prefix: str) -> str:
        """A table name no other engine on the same (shared) Spark session or DuckDB connection uses."""
        self._tables += 1
        return f"{prefix}_{self._tables}_{self._run}"

    def table_from_arrow(self, table: pa.Table, name: str) -> ir.Table:
        """An in-memory Arrow table as an Ibis table (a temporary table or view, never a stored one)."""
        name = self._name(name)
        if self.kind == "duckdb":
            return self.con.create_table(name, table, temp=True)
        from pyspark.sql.pandas.types import from_arrow_schema

        frame = self.spark.createDataFrame(table.to_pandas(types_mapper=None), schema=from_arrow_schema(table.schema))
        frame.createOrReplaceTempView(name)
        return self.con.table(name)

    def parquet(self, paths: Sequence[Path], name: str) -> ir.Table:
        """Derived Parquet files (e.g. an identity snapshot's tables) as an Ibis table."""
        name = self._name(name)
        if self.kind == "duckdb":
            return self.con.read_parquet([str(p) for p in paths], table_name=name)
        self.spark.read.parquet(*(str(p) for p in paths)).createOrReplaceTempView(name)
        return self.con.table(name)

    def materialise(self, expr: ir.Table, name: str) -> ir.Table:
        """Compute ``expr`` once into a temporary table, so that several later queries share it."""
        name = self._name(name)
        if self.kind == "duckdb":
            return self.con.create_table(name, expr, temp=True)
        self.con._run_pre_execute_hooks(expr)  # registers in-memory tables the expression uses
        # computed now and cut from its lineage: a table built on others that were built on others would otherwise
        # carry (and print, for every query) the whole plan of each one it reads
        self.spark.sql(self.con.compile(expr)).localCheckpoint(eager=True).createOrReplaceTempView(name)
        return self.con.table(name)

    def to_arrow(self, expr: ir.Table) -> pa.Table:
        return self.con.to_pyarrow(expr)

    def write_parquet(
        self, expr: ir.Table, path: Path, *, row_group_size: int = 122_880, schema: pa.Schema | None = None
    ) -> None:
        """Write ``expr`` to one Parquet file in the order the expression sorts it, without holding it in memory.

        On DuckDB a ``COPY`` (Ibis's batch reader uses a cursor method DuckDB 2.0 no longer has); on Spark the
        result comes through Arrow, as a refresh at scale writes its own partitioned output.
        """
        if self.kind == "duckdb":
            self.con._run_pre_execute_hooks(expr)
            sql = self.con.compile(expr)
            target = str(path).replace("'", "''")
            self.con.raw_sql(
                f"COPY ({sql}) TO '{target}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {int(row_group_size)})"
            )
            return
        import pyarrow.parquet as pq

        table = self.to_arrow(expr)
        # Spark hands timestamps back without their (UTC) zone: cast to the declared schema
        table = table.cast(schema) if schema is not None else table
        pq.write_table(table, path, compression="zstd", row_group_size=row_group_size)
