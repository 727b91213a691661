"""Compile a mapping into one DuckDB SELECT that parses every row and lists each row's problems.

The query has three layers over the reader's ``src`` rows:

- ``pre``: each mapped value as text — sources, concatenations, row numbers within an order, then the
  transforms (trim, null_if, case, regexp, map, default);
- ``val``: each text parsed with TRY_ functions into its type (formats tried in order);
- the result: the fact columns plus ``_problems``, a list of ``{field, code, reason}`` — NULL for a
  good row. A reason quotes the offending value, e.g. ``'2026-13-45' is not a date in any of the
  formats %Y-%m-%d %H:%M:%S, ISO 8601``.

Everything the mapping supplies (constants, formats, patterns, keys) is a bound parameter; the only
identifiers are the reader's generated column names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from omnicrm.ingest.mapping import PROVENANCE, TIME_TOKENS, Expr, Mapping, column_type
from omnicrm.ingest.readers import TRIM_CHARS, Params
from omnicrm.store.facts import SCHEMAS

__all__ = ["Compiled", "compile_mapping", "sql_type"]

_SQL_TYPES = {
    "string": "VARCHAR",
    "json": "VARCHAR",
    "int": "INTEGER",
    "decimal": "DECIMAL(18,2)",
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
    "bool": "BOOLEAN",
}
_PROBLEM = "STRUCT(field VARCHAR, code VARCHAR, reason VARCHAR)"
_MAX_VALUE = 80  # characters of an offending value quoted in a reason
# An ISO time that carries its own offset (Z, +08, +08:00, -0500) after the time of day.
_ZONED = r"[0-9]:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?\s*(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"


def sql_type(kind: str) -> str:
    return _SQL_TYPES[kind]


def _transformed(expr: Expr) -> bool:
    """Whether any transform applies to the expression's value."""
    return (
        bool(expr.trim or expr.null_if or expr.case or expr.regexp is not None or expr.map is not None)
        or expr.default is not None
    )


@dataclass
class Compiled:
    """The parse query and its parameters; ``columns`` are the fact columns it yields."""

    sql: str
    params: list[object]
    columns: list[str]


@dataclass
class _Builder:
    mapping: Mapping
    refs: dict[tuple[str, str], str]
    values: dict[str, str]
    ingested_at: datetime
    p: Params
    pre: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    windows: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    n: int = 0

    def _name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def _problem(self, cond: str, label: str, code: str, reason: str) -> None:
        self.conditions.append(f"({cond})")
        self.problems.append(
            f"CASE WHEN {cond} THEN CAST({{'field': {self.p.add(label)}, 'code': '{code}', 'reason': {reason}}} "
            f"AS {_PROBLEM}) END"
        )

    def _quoted(self, sql: str, suffix: str) -> str:
        """A reason that quotes the offending value: '<value>' + suffix."""
        rest = self.p.add("' " + suffix)
        return f"'''' || left({sql}, {_MAX_VALUE}) || {rest}"

    # -- pre layer: text ------------------------------------------------------------------------
    def text(self, expr: Expr, label: str, checks: list[str]) -> str:
        """SQL for an expression's text value (before parsing), registering enum checks."""
        p = self.p
        if expr.op in ("col", "path", "json"):
            sql = self.refs[(expr.op, str(expr.arg))]
        elif expr.op == "const":
            sql = p.add(expr.arg)
        elif expr.op == "param":
            sql = p.add(self.values[str(expr.arg)])
        elif expr.op == "now":
            sql = p.add(self.ingested_at.isoformat())
        elif expr.op == "row":
            sql = "CAST(_rowno AS VARCHAR)"
        elif expr.op == "line_no":
            # numbered in a narrow query of its own (joined back on _row): a window that carries every
            # column of the row costs as much as the rest of the parse
            keys = ", ".join(self.text(e, label, checks) for e in expr.arg)
            win = self._name("w")
            self.windows.append(f"row_number() OVER (PARTITION BY {keys} ORDER BY _row) AS {win}")
            sql = f"CAST({win} AS VARCHAR)"
        elif expr.op == "coalesce":
            sql = f"coalesce({', '.join(self.text(e, label, checks) for e in expr.arg)})"
        elif expr.op == "concat":
            parts = [self.text(e, label, checks) for e in expr.arg]
            if expr.sep is None:
                sql = "(" + " || ".join(parts) + ")"  # NULL when any part is missing
            else:
                sql = f"NULLIF(concat_ws({p.add(expr.sep)}, {', '.join(parts)}), '')"
        else:  # pragma: no cover - object is handled by value()
            raise ValueError(expr.op)
        return self._transforms(expr, sql, label, checks)

    def _transforms(self, expr: Expr, sql: str, label: str, checks: list[str]) -> str:
        p = self.p
        if expr.trim:
            sql = f"NULLIF(trim({sql}, '{TRIM_CHARS}'), '')"
        if expr.null_if:
            sql = f"CASE WHEN {sql} IN ({', '.join(p.add(v) for v in expr.null_if)}) THEN NULL ELSE {sql} END"
        if expr.case:
            sql = f"{expr.case}({sql})"
        if expr.regexp is not None:
            sql = f"NULLIF(regexp_extract({sql}, {p.add(expr.regexp)}, {expr.group}), '')"
        if expr.map is not None:
            keys = ", ".join(p.add(k) for k, _ in expr.map)
            whens = " ".join(f"WHEN {p.add(k)} THEN {p.add(v) if v is not None else 'NULL'}" for k, v in expr.map)
            other = sql if expr.map_unknown == "keep" else "NULL"
            if expr.map_unknown == "error":
                check = self._name("e")
                self.pre.append(f"CASE WHEN {sql} IS NOT NULL AND {sql} NOT IN ({keys}) THEN {sql} END AS {check}")
                shown = ", ".join(k for k, _ in expr.map[:12]) + (", ..." if len(expr.map) > 12 else "")
                self._problem(
                    f"{check} IS NOT NULL", label, "unknown_value", self._quoted(check, f"is not one of {shown}")
                )
                checks.append(check)
            sql = f"CASE {sql} {whens} ELSE {other} END"
        if expr.default is not None:
            sql = f"coalesce({sql}, {p.add(expr.default)})"
        return sql

    # -- val layer: typed ---------------------------------------------------------------------
    def _parse(self, s: str, kind: str, expr: Expr) -> tuple[str, str | None]:
        """Typed SQL of text column ``s`` and the reason suffix when it does not parse (None: cannot fail)."""
        p = self.p
        if kind == "string":
            return s, None
        if expr.op == "now" and kind in ("timestamp", "date"):
            return f"CAST({p.add(self.ingested_at, 'TIMESTAMPTZ')} AS {sql_type(kind)})", None
        if kind == "int":
            if expr.op in ("line_no", "row") and not _transformed(expr):  # plain digits: no need to check them
                return f"TRY_CAST({s} AS INTEGER)", "is not a whole number"
            ok = f"regexp_full_match({s}, '[+-]?[0-9]+(\\.0*)?')"
            return f"CASE WHEN {ok} THEN TRY_CAST(split_part({s}, '.', 1) AS INTEGER) END", "is not a whole number"
        if kind == "decimal":
            # plain numbers cast as they are; only the others pay for removing separators and currency signs
            # (a cast that succeeds has none of them inside, so both give the same value)
            cleaned = f"TRY_CAST(regexp_replace({s}, '[,¥￥$\\s]', '', 'g') AS DECIMAL(18,2))"
            return f"coalesce(TRY_CAST({s} AS DECIMAL(18,2)), {cleaned})", "is not a number"
        if kind == "bool":
            return f"TRY_CAST({s} AS BOOLEAN)", "is not true or false"
        if kind == "json":
            if expr.op == "json":
                return s, None
            return f"CASE WHEN json_valid({s}) THEN {s} END", "is not valid JSON"
        formats = expr.formats or (self.mapping.timestamp_formats if kind == "timestamp" else self.mapping.date_formats)
        tz = expr.timezone or self.mapping.timezone
        tries = [self._time(s, fmt, tz, kind) for fmt in formats]
        shown = ", ".join(TIME_TOKENS.get(f, f) for f in formats)
        return f"coalesce({', '.join(tries)})", f"is not a date in any of the formats {shown}"

    def _time(self, s: str, fmt: str, zone: str, kind: str) -> str:
        """One attempt at parsing ``s`` as a time in format ``fmt``; naive times are in ``zone``."""

        def tz() -> str:  # added only when used: DuckDB rejects unused parameters
            return self.p.add(zone)

        if fmt == "iso":
            if kind == "date":
                return f"TRY_CAST({s} AS DATE)"
            return (
                f"CASE WHEN regexp_matches({s}, '{_ZONED}') THEN TRY_CAST({s} AS TIMESTAMPTZ)"
                f" ELSE timezone({tz()}, TRY_CAST({s} AS TIMESTAMP)) END"
            )
        if fmt in ("unix", "unix_ms"):
            digits, scale = ("{9,11}", "") if fmt == "unix" else ("{12,14}", " / 1000.0")
            seconds = f"TRY_CAST({s} AS BIGINT){scale}"
            ts = f"CASE WHEN regexp_full_match({s}, '[0-9]{digits}') THEN to_timestamp({seconds}) END"
            return f"CAST(timezone({tz()}, {ts}) AS DATE)" if kind == "date" else ts
        parsed = f"try_strptime({s}, {self.p.add(fmt)})"
        if kind == "date":
            return f"CAST({parsed} AS DATE)"
        return parsed if "%z" in fmt or "%Z" in fmt else f"timezone({tz()}, {parsed})"

    def slot(self, expr: Expr, kind: str, label: str) -> tuple[str, str, list[str]]:
        """Register one value: text column s, typed column v; returns (s, v, enum checks)."""
        checks: list[str] = []
        s = self._name("s")
        self.pre.append(f"{self.text(expr, label, checks)} AS {s}")
        v = self._name("v")
        typed, suffix = self._parse(s, kind, expr)
        self.val.append(f"{typed} AS {v}")
        if suffix is not None:
            self._problem(f"{s} IS NOT NULL AND {v} IS NULL", label, f"not_{kind}", self._quoted(s, suffix))
        return s, v, checks

    def value(self, expr: Expr, kind: str, label: str, required: bool) -> str:
        """Final SQL of one fact column (objects become JSON text built from their members)."""
        if expr.op == "object":
            return f"CAST({self._object(expr, label)} AS VARCHAR)"
        s, v, checks = self.slot(expr, expr.type or kind, label)
        if required:
            quiet = "".join(f" AND {c} IS NULL" for c in checks)
            self._problem(f"{v} IS NULL AND {s} IS NULL{quiet}", label, "missing", "'required value missing'")
        return f"CAST({v} AS {sql_type(kind)})"

    def _object(self, expr: Expr, label: str) -> str:
        parts = []
        for key, member in expr.arg:
            name = f"{label}.{key}"
            if member.op == "object":
                parts += [self.p.add(key), self._object(member, name)]
                continue
            kind = member.type or "string"
            _, v, _ = self.slot(member, kind, name)
            if kind == "timestamp":
                v = f"strftime({v} AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ')"
            elif kind == "date":
                v = f"CAST({v} AS VARCHAR)"
            elif kind == "json":
                v = f"CAST({v} AS JSON)"
            parts += [self.p.add(key), v]
        return f"json_object({', '.join(parts)})"


def compile_mapping(
    mapping: Mapping,
    *,
    src_sql: str,
    refs: dict[tuple[str, str], str],
    params: Params,
    values: dict[str, str],
    ingested_at: datetime,
) -> Compiled:
    """The SELECT (over the reader's ``src``) yielding ``_row, _line``, the mapped fact columns and ``_problems``."""
    b = _Builder(mapping=mapping, refs=refs, values=values, ingested_at=ingested_at, p=params)
    kind = mapping.kind
    outputs: list[str] = []
    columns: list[str] = []
    for name in SCHEMAS[mapping.fact_kind].names:
        if name in mapping.columns and name not in PROVENANCE:
            sql = b.value(mapping.columns[name], column_type(kind, name), name, name in mapping.required)
            outputs.append(f"{sql} AS {name}")
            columns.append(name)
    if mapping.source_key is not None:
        sql = b.value(mapping.source_key, "string", "source_key", "source_key" in mapping.required)
        outputs.append(f"{sql} AS source_key")
        columns.append("source_key")
    row_problem = f"[CAST({{'field': NULL, 'code': 'row', 'reason': _rowerr}} AS {_PROBLEM})]"
    problems = f"CASE WHEN _rowerr IS NOT NULL THEN {row_problem}"
    if b.problems:  # the list is only built for rows that have a problem: most rows have none
        checks = f"list_filter([{', '.join(b.problems)}], lambda x: x IS NOT NULL)"
        problems += f" WHEN {' OR '.join(b.conditions)} THEN {checks}"
    problems = f"CAST({problems} END AS {_PROBLEM}[])"
    pre = "".join(f", {c}" for c in b.pre)
    val = "".join(f", {c}" for c in b.val)
    rows = "src"
    if b.windows:
        rows = f"src JOIN (SELECT _row, {', '.join(b.windows)} FROM src) win USING (_row)"
    sql = (
        f"WITH src AS NOT MATERIALIZED ({src_sql}),\n"
        f"pre AS (SELECT _row, _line, _rowerr{pre} FROM {rows}),\n"
        f"val AS (SELECT *{val} FROM pre)\n"
        f"SELECT _row, _line, {', '.join(outputs)}, {problems} AS _problems FROM val"
    )
    return Compiled(sql=sql, params=params.values, columns=columns)
