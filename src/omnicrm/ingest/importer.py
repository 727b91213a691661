"""Bulk import: one export file → facts of one kind, exactly once, with bad rows in the quarantine.

Set-based from end to end: DuckDB reads the file (while a thread hashes it), one SELECT compiled
from the mapping parses every value and lists each row's problems, good rows go straight to Parquet
(one ``COPY`` per day, see ``staging``) in the batch's staging folder, and bad rows are inserted into
``quarantine`` in bulk. The state transaction that commits the fact batch also marks the import
committed and stores its quarantine rows; only then are the files published (``store.batches``
protocol). A crash before that commit leaves staging that the next import cleans up; re-importing
the same content is a no-op: it stops as soon as the hash is known.
"""

from __future__ import annotations

import difflib
import re
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
from rich.console import Console
from sqlalchemy import Row

from omnicrm.errors import ConfigError, ImportFileError, InputError
from omnicrm.ingest import staging
from omnicrm.ingest.compiler import compile_mapping
from omnicrm.ingest.encoding import (
    Advance,
    FileScan,
    check_utf8,
    normalise_encoding,
    not_utf8_error,
    read_sample,
    scan_file,
    transcode_to_utf8,
)
from omnicrm.ingest.mapping import FACT_KIND, Mapping, default_mapping_name, load_mapping, shipped_mappings
from omnicrm.ingest.progress import Reporter
from omnicrm.ingest.readers import Params, make_reader
from omnicrm.ingest.staging import ORIGIN, Job
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore, utcnow

__all__ = ["ORIGIN", "ImportSummary", "ProblemGroup", "import_file", "resolve_mapping"]

_SOURCE_NAME = re.compile(r"[\w.:@-]{1,64}")
_SESSION = "SET TimeZone = 'UTC'; SET enable_progress_bar = true; SET enable_progress_bar_print = false"


@dataclass(frozen=True)
class ProblemGroup:
    """Quarantined rows that share a field and a kind of problem, with one example reason."""

    field: str | None
    code: str
    count: int
    example: str


@dataclass
class ImportSummary:
    """What one import did (or, with status ``already_imported``, what an earlier import did)."""

    status: str  # imported | already_imported
    source: str
    kind: str
    file: str
    mapping: str
    sha256: str
    import_id: int | None = None
    rows_total: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    problems: list[ProblemGroup] = field(default_factory=list)
    seconds: float = 0.0
    ingest_id: str | None = None
    files: list[str] = field(default_factory=list)
    exact_lines: bool = True
    imported_at: datetime | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows_total / self.seconds if self.seconds > 0 else 0.0


def resolve_mapping(source: str, kind: str, mapping: str | Path | Mapping | None) -> Mapping:
    """The mapping to use: given, or the obvious default for the source; it must import ``kind``."""
    if kind not in FACT_KIND:
        raise InputError(f"unknown kind '{kind}'; use one of {', '.join(FACT_KIND)}")
    if mapping is None:
        name = default_mapping_name(source, kind)
        if name is None:
            options = ", ".join(n for n in shipped_mappings() if load_mapping(n).kind == kind)
            raise InputError(
                f"no mapping for source '{source}' ({kind}): pass --mapping with a shipped mapping "
                f"({options}) or the path of a .toml mapping file"
            )
        mapping = name
    loaded = mapping if isinstance(mapping, Mapping) else load_mapping(mapping)
    if loaded.kind != kind:
        options = ", ".join(n for n in shipped_mappings() if load_mapping(n).kind == kind)
        raise InputError(
            f"mapping '{loaded.name}' imports {loaded.kind}, not {kind}; "
            f"run with --kind {loaded.kind}, or use a mapping for {kind} ({options})"
        )
    return loaded


def _check_columns(name: str, mapping: Mapping, found: list[str]) -> None:
    present = {c.strip() for c in found}
    missing = [c for c, needed in mapping.source_columns().items() if needed and c not in present]
    if not missing:
        return
    described = []
    for col in missing:
        close = difflib.get_close_matches(col, sorted(present), n=1, cutoff=0.6)
        described.append(f"{col} (did you mean '{close[0]}'?)" if close else col)
    raise ImportFileError(
        f"{name} is missing {len(missing)} column(s) that mapping '{mapping.name}' needs: {', '.join(described)}. "
        f"Columns found: {', '.join(found)}. Check that the file is a {mapping.name} export with its header "
        "row, or choose another mapping with --mapping."
    )


class _AlreadyImported(Exception):
    """The file's content turned out to be imported already (raised once the hash is known)."""


class _Hashing:
    """The file's hash (and line count), computed in a thread while DuckDB reads the file: ``hashlib`` and file
    reads release the GIL, so the two overlap. When the content was imported before, the thread interrupts the
    DuckDB connection it was given, so a re-import stops about as soon as the hash is known."""

    def __init__(self, state: StateStore, summary: ImportSummary, path: Path, advance: Advance | None) -> None:
        self._state, self._summary, self._path, self._advance = state, summary, path, advance
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._scan: FileScan | None = None
        self._earlier: Row[Any] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="omnicrm-import-hashing", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            scan = scan_file(self._path, self._advance, self._stop)
            s = self._summary
            earlier = staging.find_committed(self._state, source=s.source, kind=s.kind, sha256=scan.sha256)
        except BaseException as exc:
            self._error = exc
            return
        with self._lock:
            self._scan, self._earlier = scan, earlier
            if earlier is not None and self._con is not None:
                self._con.interrupt()

    def interrupts(self, con: duckdb.DuckDBPyConnection | None) -> None:
        """Interrupt ``con`` (None: nothing) once the content turns out to be imported already."""
        with self._lock:
            self._con = con
            if con is not None and self._earlier is not None:
                raise _AlreadyImported(self._path.name)

    def result(self) -> FileScan:
        """The finished scan (waits for it); the summary gets the hash."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._scan is not None
        self._summary.sha256 = self._scan.sha256
        return self._scan

    def earlier(self) -> Row[Any] | None:
        """The committed import of the same content, if any (waits for the hash; None if it failed)."""
        self._thread.join()
        return self._earlier

    def fill(self) -> None:
        """Make the summary say what the earlier import of the same content did."""
        earlier, summary = self.earlier(), self._summary
        assert earlier is not None and self._scan is not None
        summary.status, summary.sha256, summary.import_id = "already_imported", self._scan.sha256, earlier.id
        summary.imported_at = earlier.created_at
        summary.rows_total, summary.rows_accepted = earlier.rows_total, earlier.rows_accepted
        summary.rows_quarantined = earlier.rows_quarantined
        summary.problems, summary.files, summary.ingest_id, summary.exact_lines = [], [], None, True

    def stop(self) -> None:
        """Stop hashing (after a failure or Ctrl-C; a finished scan is kept)."""
        self._stop.set()


@contextmanager
def _reading(name: str, fmt: str, sample: bytes) -> Iterator[None]:
    """DuckDB's read errors as whole-file errors that name the file."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise not_utf8_error(name, sample, f"invalid UTF-8 at byte {exc.start}") from None
    except duckdb.Error as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "invalid unicode" in str(exc).lower():
            raise not_utf8_error(name, sample, detail) from None
        raise ImportFileError(f"{name} could not be read as {fmt}: {detail}") from None


def import_file(
    state: StateStore,
    facts: FactsStore,
    *,
    source: str,
    path: str | Path,
    kind: str,
    mapping: str | Path | Mapping | None = None,
    encoding: str | None = None,
    params: dict[str, str] | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> ImportSummary:
    """Import one file of ``kind`` from ``source`` with a mapping; see the module docstring."""
    started = time.perf_counter()
    m = resolve_mapping(source, kind, mapping)
    if not _SOURCE_NAME.fullmatch(source):
        raise InputError(f"source '{source}' must be 1-64 letters, digits or . _ : @ - (e.g. tmall, pos-store-3)")
    unknown = sorted(set(params or {}) - set(m.params))
    if unknown:
        declared = ", ".join(m.params) or "none"
        raise InputError(f"mapping '{m.name}' has no parameter {', '.join(unknown)} (it declares: {declared})")
    values = m.params | (params or {})
    file = Path(path)
    name = file.name
    if not file.is_file():
        raise ImportFileError(f"{file} does not exist or is not a file")
    if encoding and not m.format.is_text:
        raise InputError(f"--encoding applies to text files; {name} is read as {m.format.type}")
    with Reporter(progress, console) as rep, facts.exclusive("import"):  # one import at a time per folder
        staging.recover(state, facts)
        summary = ImportSummary("imported", source, kind, name, m.name, "")
        sample = read_sample(file)
        if not sample.replace(b"\xef\xbb\xbf", b"").strip():
            raise ImportFileError(f"{name} is empty; nothing to import")
        hashing = _Hashing(state, summary, file, rep.bytes("hashing", file.stat().st_size))
        try:
            codec = normalise_encoding(encoding or m.format.encoding) if m.format.is_text else None
            if codec is not None and hashing.earlier() is not None:  # transcoding reads the whole file too
                raise _AlreadyImported(name)
            with tempfile.TemporaryDirectory(prefix="omnicrm-import-") as tmp:
                read_path, lines = file, None
                if codec is not None:
                    read_path = Path(tmp) / "utf8.txt"
                    size = file.stat().st_size
                    lines = transcode_to_utf8(file, codec, read_path, name, rep.bytes("transcoding", size))
                elif m.format.is_text:
                    check_utf8(name, sample)
                con = duckdb.connect(config={"preserve_insertion_order": True, "temp_directory": tmp})
                try:
                    hashing.interrupts(con)
                    con.execute(_SESSION)
                    _import(con, rep, state, facts, summary, m, values, read_path, hashing, lines, sample)
                finally:
                    hashing.interrupts(None)
                    con.close()
        except Exception:
            # Failed or interrupted before the hash was known: an import of the same content is not redone.
            if hashing.earlier() is None:
                raise
            hashing.fill()
        finally:
            hashing.stop()
    summary.seconds = time.perf_counter() - started
    return summary


def _import(
    con: duckdb.DuckDBPyConnection,
    rep: Reporter,
    state: StateStore,
    facts: FactsStore,
    summary: ImportSummary,
    m: Mapping,
    values: dict[str, str],
    path: Path,
    hashing: _Hashing,
    lines: int | None,
    sample: bytes,
) -> None:
    """Read, validate, stage, commit and publish (the caller holds the import lock).

    The file is read while it is being hashed; ``lines`` is the line count of a transcoded file."""
    name = summary.file
    reader = make_reader(con, path, m.format)

    def run(sql: str, params: list[Any], label: str) -> None:
        rep.run(con, sql, params, label)

    def run_all(statements: Sequence[tuple[str, list[Any]]], label: str) -> None:
        threads = con.execute("SELECT current_setting('threads')").fetchone()
        rep.run_all(con, statements, label, int(threads[0]) if threads else 1, _SESSION)

    with _reading(name, m.format.type, sample):
        found = reader.header()
        if found is not None:
            _check_columns(name, m, found)
        reader.load(run)
        bad_bytes = [r for r in reader.rejects if r.invalid_unicode]
        if bad_bytes and (len(bad_bytes) > 1000 or len(bad_bytes) * 100 > reader.rows + len(reader.rejects)):
            raise not_utf8_error(name, sample, f"invalid UTF-8 on line {bad_bytes[0].line}")
        scan = hashing.result()
        if hashing.earlier() is not None:
            raise _AlreadyImported(name)
        reader.number_lines(scan.lines if lines is None else lines, run)
    at = utcnow()
    p = Params()
    src_sql, refs = reader.src(p, m.refs())
    compiled = compile_mapping(m, src_sql=src_sql, refs=refs, params=p, values=values, ingested_at=at)
    try:
        # not TEMP: the facts are written by several cursors at once (see staging.write)
        run(f"CREATE OR REPLACE TABLE parsed AS {compiled.sql}", compiled.params, "validating")
    except duckdb.Error as exc:
        raise ConfigError(f"mapping {m.origin} could not be applied to {name}: {str(exc).splitlines()[0]}") from None
    rows, good = con.execute("SELECT count(*), count(*) FILTER (_problems IS NULL) FROM parsed").fetchone() or (0, 0)
    groups = con.execute(
        "SELECT x.field, x.code, count(*) AS n, min(x.reason) FROM (SELECT unnest(_problems) AS x FROM parsed) "
        "GROUP BY ALL ORDER BY n DESC, 1, 2"
    ).fetchall()
    summary.problems = [ProblemGroup(f, c, int(n), str(r)) for f, c, n, r in groups]
    if reader.rejects:
        summary.problems.append(ProblemGroup(None, "unreadable", len(reader.rejects), reader.rejects[0].reason))
        summary.problems.sort(key=lambda g: -g.count)
    summary.rows_total = int(rows) + len(reader.rejects)
    summary.rows_accepted = int(good)
    summary.rows_quarantined = summary.rows_total - summary.rows_accepted
    summary.exact_lines = reader.exact_lines

    job = Job(
        source=summary.source, kind=summary.kind, file=name, sha256=summary.sha256, mapping=m,
        columns=compiled.columns, at=at, rows_total=summary.rows_total, rows_accepted=summary.rows_accepted,
        raw_json=reader.raw_json, rejects=reader.rejects,
    )  # fmt: skip
    staging.start(state, job)
    assert job.batch is not None
    summary.import_id, summary.ingest_id = job.import_id, job.batch.ingest_id
    summary.files = staging.write(con, run, run_all, state, facts, job)
