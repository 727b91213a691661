"""Import mappings: TOML files that say how one source's export becomes facts of one kind.

A mapping names the file format, and for each fact column an *expression* over the source row::

    name = "jd_orders"
    kind = "orders"                      # orders | customers | events | messages
    timezone = "Asia/Shanghai"           # for naive times
    timestamp_formats = ["%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "iso"]
    required = ["marketplace_nick"]      # besides the kind's own non-null columns
    source_key = { concat = ["订单号", "商品编号"], sep = "/" }

    [format]
    type = "csv"                         # csv | jsonl | parquet | whitespace
    delimiter = ","

    [columns]
    order_id = "订单号"                                   # a bare string is a source column
    line_no = { line_no = "订单号" }                      # row order within the order
    currency = { const = "CNY" }
    quantity = "订购数量"                                 # parsed by the column's type (int)
    created_at = { col = "下单时间", formats = ["%Y/%m/%d %H:%M:%S"] }

An expression has exactly one *source* (``col``, ``const``, ``param``, ``concat``, ``coalesce``,
``line_no``, ``row``, ``now``, ``object``, and for JSONL ``path`` and ``json``), then optional
transforms applied in this order: ``trim``, ``null_if``, ``case``, ``regexp``/``group``, ``map``
(with ``map_unknown`` = error | null | keep), ``default``. The value is then parsed by the fact
column's type (or ``type``): timestamps and dates try ``formats`` in order (strftime patterns, or
``iso``, ``unix``, ``unix_ms``). A mapping is checked completely on load; every problem is reported
at once, named by its key (``columns.created_at.formats``).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from omnicrm.errors import ConfigError, InputError, Problem
from omnicrm.ingest.mapping_model import (
    AUTO_NOW,
    DEFAULT_DATE_FORMATS,
    DEFAULT_TS_FORMATS,
    FACT_KIND,
    FORMATS,
    JSON_COLUMNS,
    PROVENANCE,
    SOURCES,
    TIME_TOKENS,
    TYPES,
    Expr,
    FileFormat,
    Mapping,
    column_type,
)
from omnicrm.store.facts import SCHEMAS

__all__ = [
    "AUTO_NOW",
    "FACT_KIND",
    "FORMATS",
    "JSON_COLUMNS",
    "PROVENANCE",
    "SOURCES",
    "TIME_TOKENS",
    "Expr",
    "FileFormat",
    "Mapping",
    "column_type",
    "default_mapping_name",
    "load_mapping",
    "parse_mapping",
    "shipped_mappings",
]

_MODIFIERS = (
    "optional", "sep", "trim", "case", "regexp", "group", "null_if", "map", "map_unknown", "default", "type",
    "formats", "timezone",
)  # fmt: skip
_TOP_KEYS = (
    "name", "kind", "description", "timezone", "timestamp_formats", "date_formats", "required", "source_key",
    "format", "columns", "params",
)  # fmt: skip
_FORMAT_KEYS = ("type", "delimiter", "quote", "escape", "header", "names", "encoding")

# (kind, prefixes of the source name, mapping): the mapping used when --mapping is not given.
_DEFAULTS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("orders", ("tmall", "taobao", "tb"), "tmall_orders"),
    ("orders", ("jd",), "jd_orders"),
    ("orders", ("pos", "store"), "pos_sales"),
    ("orders", ("cdnow",), "cdnow"),
    ("customers", ("wechat", "wx"), "wechat_followers"),
    ("customers", ("member", "crm"), "members"),
    ("customers", ("febrl",), "febrl"),
    ("events", ("",), "segment_events"),
    ("messages", ("",), "messages"),
)


class _Checker:
    """Collects every problem of one mapping file before anything is reported."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.problems: list[Problem] = []

    def add(self, key: str, reason: str) -> None:
        self.problems.append(Problem(reason=reason, field=key))

    def unknown_keys(self, key: str, table: dict[str, Any], allowed: tuple[str, ...]) -> None:
        for name in table:
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                hint = f" — did you mean '{close[0]}'?" if close else f"; expected one of {', '.join(allowed)}"
                self.add(f"{key}.{name}" if key else name, f"unknown key '{name}'{hint}")

    def string(self, key: str, value: Any) -> str | None:
        if isinstance(value, str):
            return value
        self.add(key, f"must be a string, got {type(value).__name__}")
        return None

    def strings(self, key: str, value: Any) -> tuple[str, ...]:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        self.add(key, "must be a list of strings")
        return ()

    def timezone(self, key: str, value: Any) -> str | None:
        name = self.string(key, value)
        if name is None:
            return None
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.add(key, f"unknown time zone '{name}' (use an IANA name such as Asia/Shanghai)")
            return None
        return name

    def time_formats(self, key: str, value: Any) -> tuple[str, ...]:
        formats = self.strings(key, value)
        if isinstance(value, list) and not value:
            self.add(key, "needs at least one format")
        for fmt in formats:
            if fmt not in TIME_TOKENS and "%" not in fmt:
                self.add(key, f"'{fmt}' is neither a strftime pattern nor one of {', '.join(TIME_TOKENS)}")
        return formats


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def _expr(ck: _Checker, key: str, raw: Any, fmt: str, params: dict[str, str]) -> Expr | None:
    """Parse and check one expression (a bare string is a source column)."""
    if isinstance(raw, str):
        raw = {"col": raw}
    if not isinstance(raw, dict):
        ck.add(key, f'must be a column name or a table such as {{ col = "..." }}, got {type(raw).__name__}')
        return None
    ck.unknown_keys(key, raw, SOURCES + _MODIFIERS)
    ops = [k for k in SOURCES if k in raw]
    if len(ops) != 1:
        found = ", ".join(ops) if ops else "none"
        ck.add(key, f"needs exactly one of {', '.join(SOURCES)} (found {found})")
        return None
    op, arg = ops[0], raw[ops[0]]
    value: Any = arg
    if op in ("col", "path", "json", "param"):
        value = ck.string(f"{key}.{op}", arg)
        if op in ("path", "json") and fmt != "jsonl":
            ck.add(f"{key}.{op}", f"'{op}' reads JSON lines; this mapping's format is {fmt}")
        if op == "path" and value is not None and not value.startswith("$"):
            ck.add(f"{key}.path", f"'{value}' is not a JSON path; write it like $.sender.nick")
        if op == "param" and value is not None and value not in params:
            known = ", ".join(params) or "none"
            ck.add(f"{key}.param", f"unknown parameter '{value}' (declared in [params]: {known})")
    elif op == "const":
        value = _scalar(arg)
        if value is None:
            ck.add(f"{key}.const", "must be a string, number or boolean")
    elif op in ("concat", "coalesce", "line_no"):
        items = arg if isinstance(arg, list) else [arg] if op == "line_no" else None
        if not items:
            ck.add(f"{key}.{op}", "must be a non-empty list of expressions")
            return None
        parts = [_expr(ck, f"{key}.{op}[{i}]", item, fmt, params) for i, item in enumerate(items)]
        if any(p is None for p in parts):
            return None
        value = tuple(parts)
    elif op in ("row", "now"):
        if arg is not True:
            ck.add(f"{key}.{op}", f"write it as {{ {op} = true }}")
        value = None
    elif op == "object":
        if not isinstance(arg, dict) or not arg:
            ck.add(f"{key}.object", "must be a table of key = expression")
            return None
        members = [(name, _expr(ck, f"{key}.object.{name}", item, fmt, params)) for name, item in arg.items()]
        if any(e is None for _, e in members):
            return None
        value = tuple(members)
        for mod in ("trim", "case", "regexp", "map", "null_if", "default"):
            if mod in raw:
                ck.add(f"{key}.{mod}", "transforms apply to single values, not to an object")
    return _modifiers(ck, key, raw, op, value)


def _modifiers(ck: _Checker, key: str, raw: dict[str, Any], op: str, value: Any) -> Expr | None:
    kw: dict[str, Any] = {}
    if "optional" in raw:
        if op != "col" or not isinstance(raw["optional"], bool):
            ck.add(f"{key}.optional", "is true or false, and only with col")
        kw["optional"] = bool(raw["optional"])
    if "sep" in raw:
        if op != "concat":
            ck.add(f"{key}.sep", "only goes with concat")
        kw["sep"] = ck.string(f"{key}.sep", raw["sep"])
    if "trim" in raw:
        kw["trim"] = raw["trim"] is True
    if "case" in raw:
        if raw["case"] not in ("upper", "lower"):
            ck.add(f"{key}.case", "must be 'upper' or 'lower'")
        kw["case"] = raw["case"]
    if "regexp" in raw:
        pattern = ck.string(f"{key}.regexp", raw["regexp"])
        if pattern is not None:
            try:
                groups = re.compile(pattern).groups
            except re.error as exc:
                ck.add(f"{key}.regexp", f"not a valid regular expression: {exc}")
                groups = 99
            group = raw.get("group", 1 if groups else 0)
            if not isinstance(group, int) or isinstance(group, bool) or not 0 <= group <= groups:
                ck.add(f"{key}.group", f"must be a group number from 0 to {groups}")
                group = 0
            kw["regexp"], kw["group"] = pattern, group
    elif "group" in raw:
        ck.add(f"{key}.group", "only goes with regexp")
    if "null_if" in raw:
        kw["null_if"] = ck.strings(f"{key}.null_if", raw["null_if"])
    if "map" in raw:
        table = raw["map"]
        if not isinstance(table, dict) or not table or not all(_scalar(v) is not None for v in table.values()):
            ck.add(f"{key}.map", 'must be a table of "source value" = "fact value" ("" for no value)')
        else:
            kw["map"] = tuple((str(k), _scalar(v) or None) for k, v in table.items())
    if "map_unknown" in raw:
        if "map" not in raw or raw["map_unknown"] not in ("error", "null", "keep"):
            ck.add(f"{key}.map_unknown", "is 'error', 'null' or 'keep', and only with map")
        kw["map_unknown"] = raw["map_unknown"]
    if "default" in raw:
        kw["default"] = _scalar(raw["default"])
        if kw["default"] is None:
            ck.add(f"{key}.default", "must be a string, number or boolean")
    if "type" in raw:
        if raw["type"] not in TYPES:
            ck.add(f"{key}.type", f"must be one of {', '.join(TYPES)}")
        kw["type"] = raw["type"]
    if "formats" in raw:
        kw["formats"] = ck.time_formats(f"{key}.formats", raw["formats"])
    if "timezone" in raw:
        kw["timezone"] = ck.timezone(f"{key}.timezone", raw["timezone"])
    return Expr(op=op, arg=value, **kw)


def _check_types(ck: _Checker, key: str, expr: Expr, expected: str) -> None:
    """Type-dependent checks: formats only for times, objects only for JSON columns."""
    kind = expr.type or expected
    if expr.formats is not None and kind not in ("timestamp", "date"):
        ck.add(f"{key}.formats", f"formats apply to timestamp and date values; this value is {kind}")
    if expr.op == "object":
        if kind != "json":
            ck.add(key, f"an object makes JSON; this column is {kind}")
        for name, member in expr.arg:
            _check_types(ck, f"{key}.object.{name}", member, "string")
    if expr.op == "json" and kind != "json":
        ck.add(key, f"json keeps JSON text; this column is {kind} (use path for a single value)")


def _format(ck: _Checker, raw: Any) -> FileFormat:
    if not isinstance(raw, dict):
        ck.add("format", "missing [format] table (type = csv | jsonl | parquet | whitespace)")
        return FileFormat()
    ck.unknown_keys("format", raw, _FORMAT_KEYS)
    ftype = raw.get("type", "csv")
    if ftype not in FORMATS:
        ck.add("format.type", f"'{ftype}' is not one of {', '.join(FORMATS)}")
        ftype = "csv"
    kw: dict[str, Any] = {"type": ftype}
    for name in ("delimiter", "quote", "escape"):
        if name in raw:
            value = ck.string(f"format.{name}", raw[name])
            if value is not None and not 0 < len(value.encode()) <= 4:
                ck.add(f"format.{name}", "must be 1 to 4 bytes")
            kw[name] = value
    if "header" in raw:
        if not isinstance(raw["header"], bool):
            ck.add("format.header", "must be true or false")
        kw["header"] = raw["header"] is not False
    if "names" in raw:
        kw["names"] = ck.strings("format.names", raw["names"])
    if kw.get("header") is False and not kw.get("names"):
        ck.add("format.names", "a file without a header needs names = [...] for its columns")
    if "encoding" in raw:
        kw["encoding"] = ck.string("format.encoding", raw["encoding"])
    if ftype != "csv" and set(raw) & {"delimiter", "quote", "escape", "header", "names"}:
        ck.add("format", f"delimiter, quote, escape, header and names are CSV options; this format is {ftype}")
    return FileFormat(**kw)


def parse_mapping(data: dict[str, Any], origin: str) -> Mapping:
    """Build a Mapping from parsed TOML, raising one ConfigError that lists every problem."""
    ck = _Checker(origin)
    ck.unknown_keys("", data, _TOP_KEYS)
    name = data.get("name", Path(origin).stem)
    kind = data.get("kind")
    if kind in FACT_KIND.values():
        kind = next(k for k, v in FACT_KIND.items() if v == kind)
    if kind not in FACT_KIND:
        ck.add("kind", f"must be one of {', '.join(FACT_KIND)} (got {kind!r})")
    tz = ck.timezone("timezone", data.get("timezone", "Asia/Shanghai")) or "Asia/Shanghai"
    ts_formats = ck.time_formats("timestamp_formats", data.get("timestamp_formats", list(DEFAULT_TS_FORMATS)))
    date_formats = ck.time_formats("date_formats", data.get("date_formats", list(DEFAULT_DATE_FORMATS)))
    fmt = _format(ck, data.get("format"))
    raw_params = data.get("params", {})
    params: dict[str, str] = {}
    if not isinstance(raw_params, dict):
        ck.add("params", "must be a table of name = default value")
    else:
        for key, value in raw_params.items():
            if _scalar(value) is None:
                ck.add(f"params.{key}", "must be a string, number or boolean")
            params[key] = _scalar(value) or ""

    columns: dict[str, Expr] = {}
    raw_columns = data.get("columns")
    if not isinstance(raw_columns, dict) or not raw_columns:
        ck.add("columns", "missing [columns] table (fact column = expression)")
        raw_columns = {}
    schema = SCHEMAS[FACT_KIND[kind]] if kind in FACT_KIND else None
    for target, raw in raw_columns.items():
        key = f"columns.{target}"
        if schema is not None and target in PROVENANCE:
            ck.add(key, f"'{target}' is filled by the importer; map source_key at the top level")
            continue
        if schema is not None and target not in schema.names:
            options = [n for n in schema.names if n not in PROVENANCE]
            close = difflib.get_close_matches(target, options, n=1)
            hint = f" — did you mean '{close[0]}'?" if close else f"; columns: {', '.join(options)}"
            ck.add(key, f"'{target}' is not a column of {kind} facts{hint}")
            continue
        expr = _expr(ck, key, raw, fmt.type, params)
        if expr is not None and kind in FACT_KIND:
            _check_types(ck, key, expr, column_type(kind, target))
            columns[target] = expr
    source_key = None
    if "source_key" in data:
        source_key = _expr(ck, "source_key", data["source_key"], fmt.type, params)
    required = set(ck.strings("required", data.get("required", [])))
    if schema is not None:
        for name in sorted(required - set(columns) - {"source_key"}):
            ck.add("required", f"'{name}' is required but not mapped in [columns]")
        if "source_key" in required and source_key is None:
            ck.add("required", "'source_key' is required but the mapping has no source_key")
        auto = AUTO_NOW.get(FACT_KIND[str(kind)], ())
        for f in schema:
            if not f.nullable and f.name not in PROVENANCE and f.name not in columns and f.name not in auto:
                ck.add(f"columns.{f.name}", f"{kind} facts need '{f.name}'; map it")
            if not f.nullable and f.name in columns:
                required.add(f.name)
    if ck.problems:
        raise ConfigError(f"mapping {origin} has {len(ck.problems)} problem(s)", problems=ck.problems)
    return Mapping(
        name=str(name),
        kind=str(kind),
        origin=origin,
        format=fmt,
        columns=columns,
        source_key=source_key,
        required=frozenset(required),
        timezone=tz,
        timestamp_formats=ts_formats,
        date_formats=date_formats,
        params=params,
        description=str(data.get("description", "")),
    )


def shipped_mappings() -> list[str]:
    """Names of the mappings that ship with omnicrm (``omnicrm/ingest/mappings/*.toml``)."""
    folder = resources.files("omnicrm.ingest") / "mappings"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_mapping(name_or_path: str | Path) -> Mapping:
    """Load a shipped mapping by name, or a mapping file by path; validated completely."""
    text_name = str(name_or_path)
    path = Path(text_name)
    if text_name.endswith(".toml") or path.exists() or "/" in text_name:
        if not path.is_file():
            raise InputError(f"mapping file {text_name} does not exist")
        origin, content = str(path), path.read_text(encoding="utf-8")
    else:
        shipped = shipped_mappings()
        if text_name not in shipped:
            close = difflib.get_close_matches(text_name, shipped, n=1) or [n for n in shipped if text_name in n][:1]
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise InputError(
                f"unknown mapping '{text_name}'; {hint}shipped mappings: {', '.join(shipped)} "
                "(or pass the path of a .toml mapping file)"
            )
        resource = resources.files("omnicrm.ingest") / "mappings" / f"{text_name}.toml"
        origin, content = f"{text_name} (shipped, {resource.name})", resource.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"mapping {origin} is not valid TOML: {exc}") from None
    return parse_mapping(data, origin)


def default_mapping_name(source: str, kind: str) -> str | None:
    """The shipped mapping to use for a source when none is given, if the source name makes it obvious."""
    lowered = source.lower()
    for for_kind, prefixes, name in _DEFAULTS:
        if for_kind == kind and any(lowered.startswith(p) for p in prefixes):
            return name
    return None
