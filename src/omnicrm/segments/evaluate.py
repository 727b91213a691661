"""Evaluate segment rules against the portrait in force and the facts: live counts and member lists.

The rule may come as JSON or as text; either way the answer names the rule it understood (JSON and text),
so the console can show "you asked for …" beside the count.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from omnicrm.errors import InputError, NotFound, Problem
from omnicrm.portrait.inputs import PortraitInputs
from omnicrm.segments.compile import compile_segment
from omnicrm.segments.language import parse_text, to_text
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine

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


class SegmentEngine:
    """Rules over one portrait snapshot and the facts, on the given engine."""

    def __init__(self, engine: Engine, derived: DerivedStore, now: dt.datetime | None = None) -> None:
        portrait = derived.current("portrait")
        identity = derived.current("identity")
        if portrait is None or identity is None:
            raise NotFound("there is no portrait yet; run `omnicrm refresh` first")
        self.engine = engine
        self.portrait: Path = portrait
        self.now = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.tags = engine.parquet([portrait / "tags.parquet"], "segment_tags")
        catalogue = json.loads((portrait / "catalogue.json").read_text(encoding="utf-8"))
        self.types = {d["id"]: d["value_type"] for d in catalogue}
        self.inputs = PortraitInputs.from_snapshot(engine, identity, self.now)
        self._total: int | None = None

    @property
    def total(self) -> int:
        if self._total is None:
            self._total = int(self.engine.to_arrow(self.tags.count().as_table())[0][0].as_py())
        return self._total

    def audience(self, rule: Any = None, text: str | None = None) -> Audience:
        tree = as_rule(rule, text)
        query = compile_segment(tree, self.tags, self.types, self.inputs, self.now)
        members = self.engine.to_arrow(query.members.order_by("customer_id"))
        try:
            written: str | None = to_text(tree)
        except InputError:
            written = None
        return Audience(tree, written, members, self.total)

    def count(self, rule: Any = None, text: str | None = None) -> int:
        tree = as_rule(rule, text)
        query = compile_segment(tree, self.tags, self.types, self.inputs, self.now)
        return int(self.engine.to_arrow(query.members.count().as_table())[0][0].as_py())
