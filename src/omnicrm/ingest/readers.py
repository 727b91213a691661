"""Readers: DuckDB loads an import file into a ``raw`` table and exposes its rows as a ``src`` query.

``src`` has one row per data row with ``_row`` (the raw rowid), ``_line`` (1-based line in the file;
the header is line 1), ``_rowno`` (1-based data row), ``_rowerr`` (a row-level problem, e.g. invalid
JSON) and one trimmed text column per value the mapping reads. Rows that DuckDB's CSV parser
cannot split (wrong column count, bad bytes) come back as ``rejects``, with their line.

Line numbers are exact when every record sits on one line with no blank lines (checked against the
file's line count); otherwise a second, line-wise scan maps records to lines, counting quotes to
follow quoted newlines. Identifiers are always quoted and every value is a bound parameter.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from omnicrm.ingest.mapping import FileFormat

__all__ = ["LINE_DELIM", "TRIM_CHARS", "Params", "Reader", "Reject", "Run", "make_reader", "quote_ident"]

TRIM_CHARS = " \t\r\n\u00a0\u3000\ufeff"
LINE_DELIM = "\x01\x02\x03\x04"  # never in text: each physical line becomes one value
CSV_BUFFER = 32 * 1024 * 1024  # DuckDB's read_csv buffer: a quarter faster than its 16 MB default here
Run = Callable[[str, list[Any], str], None]


def quote_ident(name: str) -> str:
    """A DuckDB identifier, quoted (so Chinese names, spaces and quotes are all safe)."""
    return '"' + name.replace('"', '""') + '"'


class Params:
    """Positional parameters of one statement; ``add`` returns the typed placeholder."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._seen: dict[tuple[str, str, Any], int] = {}

    def add(self, value: Any, cast: str | None = "VARCHAR") -> str:
        """The placeholder of ``value``, cast to ``cast`` (None: bare, where SQL wants no expression)."""
        frozen = tuple(value.items()) if isinstance(value, dict) else tuple(value) if isinstance(value, list) else value
        key = (cast or "", type(value).__name__, frozen)
        if key not in self._seen:
            self.values.append(value)
            self._seen[key] = len(self.values)
        return f"CAST(${self._seen[key]} AS {cast})" if cast else f"${self._seen[key]}"


@dataclass(frozen=True)
class Reject:
    """A row the reader could not split into columns."""

    line: int | None
    field: str | None
    reason: str
    raw: str | None
    invalid_unicode: bool = False


_TRIM_CODES = "[" + ", ".join(str(ord(c)) for c in TRIM_CHARS) + "]"


def _blank_ends(sql: str) -> str:
    """True when text starts or ends with a blank: its first and last code points looked up in a list, cheaper
    than ``left``/``right``. DuckDB plans a lookup in five or more values as a join, which does not keep row
    order: use it only where order does not matter (``_row`` is carried, aggregates)."""
    return f"list_contains({_TRIM_CODES}, ord({sql})) OR list_contains({_TRIM_CODES}, ord(({sql})[-1]))"


def _trimmed(sql: str) -> str:
    """Text without surrounding blanks, NULL when empty; trims only values that need it (trim is slow)."""
    return f"NULLIF(CASE WHEN {_blank_ends(sql)} THEN trim({sql}, '{TRIM_CHARS}') ELSE {sql} END, '')"


@dataclass
class Reader:
    """Base: the raw table, its rejects and line numbering are shared; ``src`` differs per format."""

    con: duckdb.DuckDBPyConnection
    path: Path
    fmt: FileFormat
    header_lines: int = 0
    rows: int = 0
    rejects: list[Reject] = field(default_factory=list)
    exact_lines: bool = True
    _line_sql: str = "r.rowid + 1"
    _join: str = ""

    raw_json = "to_json(r)"

    def header(self) -> list[str] | None:
        """Column names as the file declares them (None when rows carry their own keys)."""
        return None

    def _read_sql(self, params: Params) -> str:
        raise NotImplementedError

    def load(self, run: Run) -> None:
        """Read the whole file into the ``raw`` table and collect the parser's rejects."""
        params = Params()
        sql = f"CREATE OR REPLACE TEMP TABLE raw AS SELECT * FROM {self._read_sql(params)}"
        run(sql, params.values, "reading")
        self.rows = int(self._scalar("SELECT count(*) FROM raw"))
        self.rejects = self._fetch_rejects()

    def _scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        row = self.con.execute(sql, params or []).fetchone()
        return row[0] if row else None

    def _fetch_rejects(self) -> list[Reject]:
        exists = self._scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'reject_errors'")
        if not exists:
            return []
        rows = self.con.execute(
            "SELECT line, column_name, error_type, csv_line, error_message FROM reject_errors ORDER BY line"
        ).fetchall()
        self.con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
        by_line: dict[int, Reject] = {}
        for line, column, etype, csv_line, message in rows:
            kind = str(etype).lower().replace("_", " ")
            bad_bytes = "unicode" in kind or "encoding" in kind
            reason = (
                "cannot read this row: it is not valid UTF-8 (a line in another encoding?)"
                if bad_bytes
                else f"cannot read this row ({kind}): {message}"
            )
            by_line.setdefault(
                int(line),
                Reject(int(line), column or None, reason, json.dumps(csv_line, ensure_ascii=False), bad_bytes),
            )
        return list(by_line.values())

    def number_lines(self, physical_lines: int, run: Run) -> None:
        """Decide how ``_line`` is computed. Line-wise formats: raw row k is physical line k + 1."""
        self._use_thresholds(1)

    def _use_thresholds(self, base: int) -> None:
        """Row k is on line k + base + (rejected lines before it): simple files and line-wise formats."""
        lines = sorted(r.line for r in self.rejects if r.line is not None)
        if not lines:
            self._line_sql = f"r.rowid + {base}"
            return
        thresholds = [line - base - i for i, line in enumerate(lines)]
        self.con.execute("CREATE OR REPLACE TEMP TABLE _rejthr AS SELECT unnest($1::BIGINT[]) AS thr", [thresholds])
        self._line_sql = f"r.rowid + {base} + (SELECT count(*) FROM _rejthr t WHERE t.thr <= r.rowid)"

    def src(self, params: Params, refs: list[tuple[str, str]]) -> tuple[str, dict[tuple[str, str], str]]:
        """The ``src`` query and, for each (op, name) the mapping reads, its column in ``src``."""
        raise NotImplementedError


class CsvReader(Reader):
    """CSV with a header (or declared names); every value read as text, no dialect sniffing."""

    found: list[str] | None = None

    def header(self) -> list[str]:
        """The header as written (read here, so that a ragged row later on cannot confuse a sniffer)."""
        if self.found is not None:
            return self.found
        fmt = self.fmt
        if not fmt.header:
            self.found = list(fmt.names)
            return self.found
        with open(self.path, encoding="utf-8-sig", newline="") as fh:
            first = fh.readline()
            if len(fmt.delimiter) == 1 and len(fmt.quote) == 1:
                doubled = fmt.escape == fmt.quote
                row = next(
                    csv.reader(
                        [first],
                        delimiter=fmt.delimiter,
                        quotechar=fmt.quote,
                        doublequote=doubled,
                        escapechar=None if doubled else fmt.escape,
                    ),
                    [],
                )
            else:
                row = first.rstrip("\r\n").split(fmt.delimiter)
        self.found = [name.strip(TRIM_CHARS) for name in row]
        return self.found

    def _columns(self) -> dict[str, str]:
        """Unique, non-empty DuckDB column names for the header, all read as VARCHAR."""
        names: dict[str, str] = {}
        for i, name in enumerate(self.header()):
            base = name or f"column{i}"
            unique, n = base, 0
            while unique in names:
                n += 1
                unique = f"{base}_{n}"
            names[unique] = "VARCHAR"
        return names

    def _options(self, params: Params) -> str:
        fmt = self.fmt
        return ", ".join(
            [
                "auto_detect=false",
                f"buffer_size={CSV_BUFFER}",
                f"header={'true' if fmt.header else 'false'}",
                f"columns={params.add(self._columns(), None)}",
                f"delim={params.add(fmt.delimiter)}",
                f"quote={params.add(fmt.quote)}",
                f"escape={params.add(fmt.escape)}",
            ]
        )

    def _read_sql(self, params: Params) -> str:
        self.header_lines = 1 if self.fmt.header else 0
        return f"read_csv({params.add(str(self.path))}, {self._options(params)}, store_rejects=true)"

    def number_lines(self, physical_lines: int, run: Run) -> None:
        base = self.header_lines + 1
        if physical_lines == self.header_lines + self.rows + len(self.rejects):
            self._use_thresholds(base)
            return
        self._map_lines(physical_lines, run)

    def _map_lines(self, physical_lines: int, run: Run) -> None:
        """Blank lines or quoted newlines: find where each record starts by counting quotes line by line."""
        params = Params()
        path = params.add(str(self.path))
        delim = params.add(LINE_DELIM)
        h = self.header_lines
        run(
            "CREATE OR REPLACE TEMP TABLE _plines AS SELECT line FROM read_csv("
            f"{path}, columns={{'line': 'VARCHAR'}}, delim={delim}, quote='', escape='', header=false, "
            f"auto_detect=false, buffer_size={CSV_BUFFER})",
            params.values,
            "numbering lines",
        )
        if self._scalar("SELECT count(*) FROM _plines") != physical_lines:
            self._use_thresholds(h + 1)
            self.exact_lines = False
            return
        self.con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _units AS
            WITH l AS (
              SELECT rowid + 1 AS ln, line,
                     coalesce(length(line) - length(replace(line, $1, '')), 0) AS nq
              FROM _plines),
            c AS (
              SELECT ln, line,
                     coalesce(sum(nq) OVER (ORDER BY ln ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
              FROM l)
            SELECT ln, coalesce(line, '') = '' AS blank, row_number() OVER (ORDER BY ln) + $2 AS dline
            FROM c WHERE ln > $2 AND before % 2 = 0
            """,
            [self.fmt.quote, h],
        )
        rejected = [r.line for r in self.rejects if r.line is not None]
        self.con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _linemap AS
            SELECT row_number() OVER (ORDER BY ln) - 1 AS _row, ln AS _line FROM _units
            WHERE NOT blank AND NOT list_contains($1::BIGINT[], dline)
            """,
            [rejected],
        )
        if self._scalar("SELECT count(*) FROM _linemap") != self.rows:
            self._use_thresholds(h + 1)
            self.exact_lines = False
            return
        physical = dict(
            self.con.execute(
                "SELECT dline, ln FROM _units WHERE list_contains($1::BIGINT[], dline)", [rejected]
            ).fetchall()
        )
        self.rejects = [
            Reject(physical.get(r.line, r.line), r.field, r.reason, r.raw, r.invalid_unicode) for r in self.rejects
        ]
        self._line_sql = "m._line"
        self._join = "LEFT JOIN _linemap m ON m._row = r.rowid"

    def _blank_columns(self, names: list[str]) -> set[str]:
        """The columns with a value to trim, found in one scan: only those pay for trimming in ``src``."""
        if not names:
            return set()
        checks = ", ".join(f"coalesce(bool_or({_blank_ends(quote_ident(n))}), false)" for n in names)
        found: tuple[bool, ...] = tuple(self._scalar(f"SELECT [{checks}] FROM raw"))
        return {n for n, blank in zip(names, found, strict=True) if blank}

    def src(self, params: Params, refs: list[tuple[str, str]]) -> tuple[str, dict[tuple[str, str], str]]:
        names = [str(r[0]) for r in self.con.execute("DESCRIBE raw").fetchall()]
        actual = {n.strip(): n for n in reversed(names)} | {n: n for n in names}
        blank = self._blank_columns(sorted({actual[ref[1]] for ref in refs if ref[0] == "col" and ref[1] in actual}))
        cols: dict[tuple[str, str], str] = {}
        select = []
        for i, ref in enumerate(refs):
            if ref[0] == "col" and ref[1] in actual:
                cols[ref] = f"c{i}"
                ident = "r." + quote_ident(actual[ref[1]])
                text = _trimmed(ident) if actual[ref[1]] in blank else f"NULLIF({ident}, '')"
                select.append(f"{text} AS c{i}")
            elif ref[0] == "col":
                cols[ref] = f"c{i}"
                select.append(f"CAST(NULL AS VARCHAR) AS c{i}")  # an optional column the file lacks
        extra = "".join(f", {s}" for s in select)
        sql = (
            f"SELECT r.rowid AS _row, {self._line_sql} AS _line, r.rowid + 1 AS _rowno, "
            f"CAST(NULL AS VARCHAR) AS _rowerr{extra} FROM raw r {self._join}"
        )
        return sql, cols


class _LinesReader(Reader):
    """Formats read one physical line per raw row (JSON lines, whitespace-aligned text)."""

    raw_json = "to_json(r.line)"

    def _read_sql(self, params: Params) -> str:
        return (
            f"read_csv({params.add(str(self.path))}, columns={{'line': 'VARCHAR'}}, delim={params.add(LINE_DELIM)}, "
            f"quote='', escape='', header=false, auto_detect=false, buffer_size={CSV_BUFFER}, store_rejects=true)"
        )

    def _lines_src(self, row_cols: str, rowerr: str, mid_cols: str, out_cols: list[str]) -> str:
        """Data rows (after the header, not blank) with line numbers, a row error and value columns."""
        line_sql = self._line_sql.replace("r.rowid", "r.rowid_")
        rows = (
            f"SELECT rowid AS rowid_, line{row_cols} FROM raw "
            f"WHERE rowid >= {self.header_lines} AND trim(coalesce(line, '')) <> ''"
        )
        mid = (
            f"SELECT r.rowid_ AS _row, {line_sql} AS _line, row_number() OVER (ORDER BY r.rowid_) AS _rowno, "
            f"{rowerr} AS _rowerr{mid_cols} FROM ({rows}) r"
        )
        out = "".join(f", {c}" for c in out_cols)
        return f"SELECT _row, _line, _rowno, _rowerr{out} FROM ({mid})"


class JsonLinesReader(_LinesReader):
    """One JSON object per line; values are read by key (``col``) or JSON path (``path``, ``json``)."""

    raw_json = "CASE WHEN json_valid(r.line) THEN r.line ELSE to_json(r.line) END"

    def src(self, params: Params, refs: list[tuple[str, str]]) -> tuple[str, dict[tuple[str, str], str]]:
        cols: dict[tuple[str, str], str] = {}
        texts = [ref for ref in refs if ref[0] in ("col", "path")]
        mid = ""
        if texts:
            keys = ", ".join(params.add(name) for _, name in texts)
            mid += f", CASE WHEN r._jt = 'OBJECT' THEN json_extract_string(r.line, [{keys}]) END AS _vals"
        out = []
        for i, ref in enumerate(texts):
            cols[ref] = f"c{len(cols)}"
            out.append(f"{_trimmed(f'_vals[{i + 1}]')} AS {cols[ref]}")
        for ref in refs:
            if ref[0] == "json":
                cols[ref] = f"c{len(cols)}"
                mid += (
                    f", CASE WHEN r._jt = 'OBJECT' THEN "
                    f"NULLIF(CAST(json_extract(r.line, {params.add(ref[1])}) AS VARCHAR), 'null') END AS {cols[ref]}"
                )
                out.append(cols[ref])
        row_cols = ", CASE WHEN json_valid(line) THEN json_type(line) END AS _jt"
        rowerr = (
            "CASE WHEN r._jt IS NULL THEN 'not valid JSON' WHEN r._jt <> 'OBJECT' "
            "THEN 'not a JSON object (' || lower(r._jt) || ')' END"
        )
        return self._lines_src(row_cols, rowerr, mid, out), cols


class WhitespaceReader(_LinesReader):
    """Space-aligned columns under a header line of names (CDNOW_master.txt); runs of blanks separate."""

    names: tuple[str, ...] = ()

    def header(self) -> list[str]:
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip(TRIM_CHARS):
                    self.header_lines = number
                    self.names = tuple(line.strip(TRIM_CHARS).split())
                    break
        return list(self.names)

    def _read_sql(self, params: Params) -> str:
        if not self.names:
            self.header()
        return super()._read_sql(params)

    def src(self, params: Params, refs: list[tuple[str, str]]) -> tuple[str, dict[tuple[str, str], str]]:
        n = len(self.names)
        cols: dict[tuple[str, str], str] = {}
        out = []
        for ref in refs:
            if ref[0] == "col":
                cols[ref] = f"c{len(cols)}"
                index = self.names.index(ref[1]) + 1 if ref[1] in self.names else None
                out.append(f"{f'_f[{index}]' if index else 'CAST(NULL AS VARCHAR)'} AS {cols[ref]}")
        row_cols = f", regexp_split_to_array(trim(line, '{TRIM_CHARS}'), '\\s+') AS _f"
        rowerr = f"CASE WHEN len(r._f) <> {n} THEN {params.add(f'expected {n} fields, found ')} || len(r._f) END"
        return self._lines_src(row_cols, rowerr, ", r._f", out), cols


class ParquetReader(Reader):
    """Parquet: values are turned into text (nested values into JSON) and go through the same parsing."""

    def header(self) -> list[str]:
        params = Params()
        rows = self.con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({params.add(str(self.path))})", params.values
        ).fetchall()
        self._types = {str(r[0]): str(r[1]) for r in rows}
        return [str(r[0]) for r in rows]

    def _read_sql(self, params: Params) -> str:
        return f"read_parquet({params.add(str(self.path))})"

    def number_lines(self, physical_lines: int, run: Run) -> None:
        self._line_sql = "r.rowid + 1"

    def src(self, params: Params, refs: list[tuple[str, str]]) -> tuple[str, dict[tuple[str, str], str]]:
        types = getattr(self, "_types", None) or {n: "" for n in self.header()}
        cols: dict[tuple[str, str], str] = {}
        select = []
        for ref in refs:
            if ref[0] != "col":
                continue
            cols[ref] = f"c{len(cols)}"
            if ref[1] not in types:
                select.append(f"CAST(NULL AS VARCHAR) AS {cols[ref]}")
                continue
            ident = "r." + quote_ident(ref[1])
            nested = any(t in types[ref[1]] for t in ("STRUCT", "[]", "MAP", "JSON"))
            text = f"CAST(to_json({ident}) AS VARCHAR)" if nested else f"CAST({ident} AS VARCHAR)"
            select.append(f"{_trimmed(text)} AS {cols[ref]}")
        extra = "".join(f", {s}" for s in select)
        sql = (
            "SELECT r.rowid AS _row, r.rowid + 1 AS _line, r.rowid + 1 AS _rowno, "
            f"CAST(NULL AS VARCHAR) AS _rowerr{extra} FROM raw r"
        )
        return sql, cols


def make_reader(con: duckdb.DuckDBPyConnection, path: Path, fmt: FileFormat) -> Reader:
    """The reader for a mapping's file format."""
    cls: type[Reader] = {
        "csv": CsvReader,
        "jsonl": JsonLinesReader,
        "whitespace": WhitespaceReader,
        "parquet": ParquetReader,
    }[fmt.type]
    return cls(con=con, path=path, fmt=fmt)
