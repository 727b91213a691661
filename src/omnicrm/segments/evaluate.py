"""Evaluate segment rules against the portrait in force and the facts: live counts and member lists.

The rule may come as JSON or as text; either way the answer names the rule it understood (JSON and text),
so the console can show "you asked for …" beside the count.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot as sg
import sqlglot.expressions as sge

from omnicrm.consent.audience import consented
from omnicrm.errors import InputError, NotFound, Problem
from omnicrm.portrait.inputs import PortraitInputs
from omnicrm.segments.compile import SegmentQuery, behaviours, compile_segment
from omnicrm.segments.language import parse_text, to_text
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.state import StateStore

__all__ = ["Audience", "SegmentEngine", "as_rule"]


def as_rule(rule: Any = None, text: str | None = None) -> Any:
    """The JSON rule from either form (exactly one must be given)."""
    if (rule is None) == (text is None):
        raise InputError("give the segment as a rule (JSON) or as text, not both or neither",
                         [Problem("one of rule, text", field="rule")])  # fmt: skip
    return parse_text(text) if text is not None else rule


@dataclass
class Audience:
    rule: Any
    text: str | None
    members: pa.Table  # customer_id, sorted
    total_customers: int

    @property
    def count(self) -> int:
        return self.members.num_rows


@functools.lru_cache(maxsize=8)
def _snapshot_file(path: Path, stamp: tuple[int, int]) -> tuple[ibis.Schema, dict[str, str]]:
    """The tags' schema and value types of a portrait snapshot (snapshots never change: read once per process)."""
    catalogue = json.loads((path.parent / "catalogue.json").read_text(encoding="utf-8"))
    return ibis.Schema.from_pyarrow(pq.read_schema(path)), {d["id"]: d["value_type"] for d in catalogue}


def _tags_table(engine: Engine, path: Path, schema: ibis.Schema) -> ir.Table:
    """The tags of a snapshot as a table. On DuckDB with the schema already known, so that a live count does not
    first ask the database to describe the file."""
    if engine.kind != "duckdb":
        return engine.parquet([path], "segment_tags")
    query = sg.select(sge.Star()).from_(sg.func("read_parquet", sge.convert(str(path))))
    return engine.con.sql(query.sql("duckdb"), schema=schema)


class SegmentEngine:
    """Rules over one portrait snapshot and the facts, on the given engine."""

    def __init__(
        self, engine: Engine, derived: DerivedStore, now: dt.datetime | None = None, state: StateStore | None = None
    ) -> None:
        portrait = derived.current("portrait")
        identity = derived.current("identity")
        if portrait is None or identity is None:
            raise NotFound("there is no portrait yet; run `omnicrm refresh` first")
        self.engine = engine
        self.state = state
        self.portrait: Path = portrait
        self.identity: Path = identity
        self.now = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
        path = portrait / "tags.parquet"
        stat = path.stat()
        schema, self.types = _snapshot_file(path, (stat.st_mtime_ns, stat.st_size))
        self.tags = _tags_table(engine, path, schema)
        self._total: int | None = None

    @functools.cached_property
    def inputs(self) -> PortraitInputs:
        """The facts with their customers (only rules with behaviour conditions read them)."""
        return PortraitInputs.from_snapshot(self.engine, self.identity, self.now)

    def _query(self, tree: Any) -> SegmentQuery:
        inputs = self.inputs if behaviours(tree) else None
        return compile_segment(tree, self.tags, self.types, inputs, self.now, self._consented)

    def _consented(self, channel: str, purpose: str) -> ir.Table:
        """Customers who may be sent ``purpose`` on ``channel`` now (the consent ledger × this OneID snapshot)."""
        if self.state is None:
            raise InputError("consent conditions need the state store; this context has none")
        table = consented(self.state, self.identity, channel, purpose).select(["customer_id"])
        return self.engine.table_from_arrow(table, "segment_consents")

    @property
    def total(self) -> int:
        if self._total is None:
            self._total = int(self.engine.to_arrow(self.tags.count().as_table())[0][0].as_py())
        return self._total

    def audience(self, rule: Any = None, text: str | None = None) -> Audience:
        tree = as_rule(rule, text)
        query = self._query(tree)
        members = self.engine.to_arrow(query.members.order_by("customer_id"))
        try:
            written: str | None = to_text(tree)
        except InputError:
            written = None
        return Audience(tree, written, members, self.total)

    def count(self, rule: Any = None, text: str | None = None) -> int:
        tree = as_rule(rule, text)
        counted = self._query(tree).members.count()
        if self.engine.kind == "duckdb":  # one number: no Arrow table around it
            rows = self.engine.con.raw_sql(self.engine.con.compile(counted)).fetchall()
            return int(rows[0][0])
        return int(self.engine.to_arrow(counted.as_table())[0][0].as_py())
