"""The mapping model: expressions, file formats and validated mappings (built by ``ingest.mapping``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from omnicrm.store.facts import SCHEMAS

__all__ = [
    "AUTO_NOW",
    "DEFAULT_DATE_FORMATS",
    "DEFAULT_TS_FORMATS",
    "FACT_KIND",
    "FORMATS",
    "JSON_COLUMNS",
    "PROVENANCE",
    "SOURCES",
    "TIME_TOKENS",
    "TYPES",
    "Expr",
    "FileFormat",
    "Mapping",
    "column_type",
]

FACT_KIND = {"orders": "order_line", "customers": "person", "events": "event", "messages": "message"}
FORMATS = ("csv", "jsonl", "parquet", "whitespace")
PROVENANCE = ("source", "source_key", "ingest_id", "ingested_at", "source_file", "source_line")
JSON_COLUMNS = frozenset({"traits", "properties", "context", "attachments"})
SOURCES = ("col", "const", "param", "concat", "coalesce", "line_no", "row", "now", "object", "path", "json")
TYPES = ("string", "int", "decimal", "timestamp", "date", "bool", "json")
TIME_TOKENS = {"iso": "ISO 8601", "unix": "unix seconds", "unix_ms": "unix milliseconds"}
# Non-null columns an import fills by itself when the mapping leaves them out.
AUTO_NOW: dict[str, tuple[str, ...]] = {"person": ("observed_at",), "event": ("received_at",)}
DEFAULT_TS_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "iso")
DEFAULT_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "iso")


@dataclass(frozen=True)
class Expr:
    """One value computed from a source row (see the module docstring for the keys)."""

    op: str
    arg: Any = None  # column/path/param name, constant, tuple of Expr, or tuple of (key, Expr)
    sep: str | None = None
    optional: bool = False
    trim: bool = False
    case: str | None = None
    regexp: str | None = None
    group: int = 0
    null_if: tuple[str, ...] = ()
    map: tuple[tuple[str, str | None], ...] | None = None
    map_unknown: str = "error"
    default: str | None = None
    type: str | None = None
    formats: tuple[str, ...] | None = None
    timezone: str | None = None

    def children(self) -> list[Expr]:
        if self.op in ("concat", "coalesce", "line_no"):
            return list(self.arg)
        if self.op == "object":
            return [e for _, e in self.arg]
        return []

    def refs(self) -> list[tuple[str, str]]:
        """The (op, name) pairs this expression reads from the row: col, path and json."""
        found = [(self.op, str(self.arg))] if self.op in ("col", "path", "json") else []
        for child in self.children():
            found.extend(child.refs())
        return found

    def columns(self) -> list[tuple[str, bool]]:
        """Source columns this expression reads, with whether each may be absent from the file."""
        found = [(str(self.arg), self.optional)] if self.op == "col" else []
        for child in self.children():
            found.extend(child.columns())
        return found


@dataclass(frozen=True)
class FileFormat:
    """How to read the file: CSV dialect, JSON lines, Parquet, or whitespace-aligned columns."""

    type: str = "csv"
    delimiter: str = ","
    quote: str = '"'
    escape: str = '"'
    header: bool = True
    names: tuple[str, ...] = ()
    encoding: str | None = None

    @property
    def is_text(self) -> bool:
        return self.type != "parquet"


@dataclass(frozen=True)
class Mapping:
    """A validated mapping: format, one expression per fact column, required columns."""

    name: str
    kind: str  # import kind: orders, customers, events, messages
    origin: str  # the file it came from, for messages
    format: FileFormat
    columns: dict[str, Expr]
    source_key: Expr | None
    required: frozenset[str]
    timezone: str = "Asia/Shanghai"
    timestamp_formats: tuple[str, ...] = DEFAULT_TS_FORMATS
    date_formats: tuple[str, ...] = DEFAULT_DATE_FORMATS
    params: dict[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def fact_kind(self) -> str:
        return FACT_KIND[self.kind]

    def exprs(self) -> list[Expr]:
        return [*self.columns.values(), *([self.source_key] if self.source_key else [])]

    def refs(self) -> list[tuple[str, str]]:
        """Distinct (op, name) reads from the source row, in mapping order."""
        return list(dict.fromkeys(ref for expr in self.exprs() for ref in expr.refs()))

    def source_columns(self) -> dict[str, bool]:
        """Every source column read, mapped to True when it must be in the file."""
        needed: dict[str, bool] = {}
        for expr in self.exprs():
            for name, optional in expr.columns():
                needed[name] = needed.get(name, False) or not optional
        return needed


def column_type(kind: str, column: str) -> str:
    """The parse type of a fact column: string, int, decimal, timestamp, date or json."""
    if column in JSON_COLUMNS:
        return "json"
    dtype = SCHEMAS[FACT_KIND.get(kind, kind)].field(column).type
    if pa.types.is_integer(dtype):
        return "int"
    if pa.types.is_decimal(dtype):
        return "decimal"
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    if pa.types.is_date(dtype):
        return "date"
    return "string"
