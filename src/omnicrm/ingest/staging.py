"""The write side of an import: good rows to Parquet facts, bad rows to the quarantine, exactly once.

Follows ``store.batches``: the import and its fact batch are recorded as running/writing, the good
rows of ``parsed`` are written into the batch's staging folder, one file per day (a COPY per day, or
one ``COPY ... PARTITION_BY (date)``), and fsynced; then one state transaction commits the batch,
marks the import committed and inserts its quarantine rows; only then are the files published.
Imports hold a file lock per facts folder, so the recovery each one runs first only ever sees
imports that died.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import Row, insert, select, update

from omnicrm.errors import Conflict
from omnicrm.ingest.mapping import AUTO_NOW, Mapping
from omnicrm.ingest.readers import Params, Reject, Run
from omnicrm.store.batches import Batch, begin_batch, commit_batch, recover_batches
from omnicrm.store.facts import SCHEMAS, TIME_COLUMN, FactsStore
from omnicrm.store.schema import fact_batches, import_files, quarantine
from omnicrm.store.state import StateStore, utcnow

__all__ = ["ORIGIN", "Job", "RunAll", "find_committed", "recover", "start", "write"]

ORIGIN = "import"
_CHUNK = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_US = 86_400_000_000
_LAST_DAY = (datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH).days
_MIN_DAY_ROWS = 10_000  # fewer rows per day on average: one PARTITION_BY beats a COPY per day
_MAX_READ = 4  # rows read by the per-day COPYs, at most this many times the rows written
RunAll = Callable[[Sequence[tuple[str, list[Any]]], str], None]


@dataclass
class Job:
    """One import on its way to the facts: what it is, what the parse found, where it is written."""

    source: str
    kind: str  # the import kind: orders, customers, events, messages
    file: str
    sha256: str
    mapping: Mapping
    columns: list[str]  # fact columns present in ``parsed``
    at: datetime
    rows_total: int
    rows_accepted: int
    raw_json: str  # SQL for a bad row's raw JSON, over ``raw r``
    rejects: list[Reject]
    import_id: int | None = None
    batch: Batch | None = None

    @property
    def rows_quarantined(self) -> int:
        return self.rows_total - self.rows_accepted


def recover(state: StateStore, facts: FactsStore) -> None:
    """Finish publishing committed imports; undo the staging of interrupted ones and mark them failed."""
    recover_batches(state, facts, origin=ORIGIN)
    with state.begin() as conn:
        conn.execute(
            update(import_files)
            .where(import_files.c.status == "running")
            .values(
                status="failed",
                error="interrupted before it finished; its staged files were removed and nothing was published",
                finished_at=utcnow(),
            )
        )


def find_committed(state: StateStore, *, source: str, kind: str, sha256: str) -> Row[Any] | None:
    """The latest committed import of the same content from the same source, if any."""
    with state.connect() as conn:
        return conn.execute(
            select(import_files)
            .where(import_files.c.source == source, import_files.c.kind == kind)
            .where(import_files.c.sha256 == sha256, import_files.c.status == "committed")
            .order_by(import_files.c.id.desc())
        ).first()


def start(state: StateStore, job: Job) -> None:
    """Record the import as running with a new fact batch (one transaction)."""
    with state.begin() as conn:
        job.batch = begin_batch(conn, kind=job.mapping.fact_kind, origin=ORIGIN)
        job.import_id = conn.execute(
            insert(import_files)
            .values(
                source=job.source, kind=job.kind, file_name=job.file, sha256=job.sha256, mapping=job.mapping.name,
                status="running", rows_total=job.rows_total, rows_accepted=0, rows_quarantined=0,
                batch_id=job.batch.id, created_at=job.at,
            )
            .returning(import_files.c.id)
        ).scalar_one()  # fmt: skip


def write(
    con: duckdb.DuckDBPyConnection, run: Run, run_all: RunAll, state: StateStore, facts: FactsStore, job: Job
) -> list[str]:
    """Stage, commit and publish a started job; returns the published files. A failure is recorded.

    ``run`` executes one statement, ``run_all`` independent statements in parallel (they see ``parsed``,
    so it must not be a TEMP table)."""
    assert job.batch is not None, "start() the job first"
    try:
        _stage_and_commit(con, run, run_all, state, facts, job, job.batch)
    except BaseException as exc:
        _fail(state, facts, job.batch, job.import_id, exc)
        raise
    return facts.publish(job.batch.ingest_id)


def _sql_type(dtype: pa.DataType) -> str:
    if pa.types.is_int64(dtype):
        return "BIGINT"
    if pa.types.is_integer(dtype):
        return "INTEGER"
    if pa.types.is_decimal(dtype):
        return f"DECIMAL({dtype.precision},{dtype.scale})"
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMPTZ"
    if pa.types.is_date(dtype):
        return "DATE"
    return "VARCHAR"


def _fact_select(job: Job, ingest_id: str, p: Params, *, where: str = "true", date: bool = True) -> str:
    """The good rows of ``parsed`` (and ``where``) in the fact schema's column order, with provenance and (with
    ``date``) the date partition."""
    kind = job.mapping.fact_kind
    fixed = {
        "source": p.add(job.source),
        "ingest_id": p.add(ingest_id),
        "ingested_at": p.add(job.at, "TIMESTAMPTZ"),
        "source_file": p.add(job.file),
        "source_line": "CAST(_line AS BIGINT)",
    }
    cols = []
    for f in SCHEMAS[kind]:
        if f.name in job.columns:
            sql = f.name
        elif f.name in fixed:
            sql = fixed[f.name]
        elif f.name in AUTO_NOW.get(kind, ()):
            sql = p.add(job.at, "TIMESTAMPTZ")
        else:
            sql = f"CAST(NULL AS {_sql_type(f.type)})"
        cols.append(f"{sql} AS {f.name}")
    if date:  # the UTC day of the time column
        cols.append(f"strftime({TIME_COLUMN[kind]} AT TIME ZONE 'UTC', '%Y-%m-%d') AS date")
    return f"SELECT {', '.join(cols)} FROM parsed WHERE _problems IS NULL AND {where}"


def _copy_facts(
    con: duckdb.DuckDBPyConnection, run: Run, run_all: RunAll, job: Job, ingest_id: str, target: Path
) -> None:
    """Write the good rows as ``target/date=YYYY-MM-DD/<ingest_id>-0.parquet`` (the UTC day of the time column).

    When most of each day's rows sit together in the file (exports are usually in time order), one COPY per
    day reads just that day's stretch of ``parsed``, and the days are written in parallel: much cheaper than
    DuckDB's ``PARTITION_BY``, which first copies every row into per-day buffers. Otherwise (days interleaved
    throughout, many small days, times before 1970), one ``COPY ... PARTITION_BY`` writes the same files.
    """
    time = TIME_COLUMN[job.mapping.fact_kind]
    spans = con.execute(  # the biggest days first: the parallel COPYs end together
        f"SELECT epoch_us({time}) // {_DAY_US} AS d, min(_row), max(_row), min(epoch_us({time})) FROM parsed "
        "WHERE _problems IS NULL GROUP BY d ORDER BY count(*) DESC, d"
    ).fetchall()
    read = sum(hi - lo + 1 for _, lo, hi, _ in spans)
    if (
        all(d is not None and first >= 0 and d <= _LAST_DAY for d, _, _, first in spans)
        and len(spans) * _MIN_DAY_ROWS <= job.rows_accepted
        and read <= _MAX_READ * job.rows_accepted
    ):
        statements = []
        for d, lo, hi, _ in spans:
            start = _EPOCH + timedelta(days=d)
            folder = target / f"date={start:%Y-%m-%d}"
            folder.mkdir(parents=True, exist_ok=True)
            p = Params()
            end = start + timedelta(days=1)
            where = (
                f"_row BETWEEN {p.add(lo, 'BIGINT')} AND {p.add(hi, 'BIGINT')}"
                f" AND {time} >= {p.add(start, 'TIMESTAMPTZ')} AND {time} < {p.add(end, 'TIMESTAMPTZ')}"
            )
            query = _fact_select(job, ingest_id, p, where=where, date=False)
            out = p.add(str(folder / f"{ingest_id}-0.parquet"), None)
            statements.append((f"COPY ({query}) TO {out} (FORMAT parquet, COMPRESSION zstd)", p.values))
        run_all(statements, "writing facts")
        return
    p = Params()
    query = _fact_select(job, ingest_id, p)
    out = p.add(str(target), None)
    run(
        f"COPY ({query}) TO {out} (FORMAT parquet, PARTITION_BY (date), COMPRESSION zstd, "
        f"FILENAME_PATTERN '{ingest_id}-{{i}}', OVERWRITE_OR_IGNORE true)",
        p.values,
        "writing facts",
    )


def _quarantine_rows(con: duckdb.DuckDBPyConnection, job: Job) -> Iterator[list[tuple[Any, ...]]]:
    """Bad rows as (line, field, reason, raw) chunks: parser rejects, then each problem of each row."""
    if job.rejects:
        yield [(r.line, r.field, r.reason, r.raw) for r in job.rejects]
    result = con.execute(
        f"SELECT p._line, p.x.field, p.x.reason, {job.raw_json} FROM "
        "(SELECT _row, _line, unnest(_problems) AS x, unnest(range(len(_problems))) AS i FROM parsed "
        "WHERE _problems IS NOT NULL) p JOIN raw r ON r.rowid = p._row ORDER BY p._row, p.i"
    )
    while chunk := result.fetchmany(_CHUNK):
        yield chunk


def _stage_and_commit(
    con: duckdb.DuckDBPyConnection,
    run: Run,
    run_all: RunAll,
    state: StateStore,
    facts: FactsStore,
    job: Job,
    batch: Batch,
) -> None:
    """Write the good rows to staging, then commit batch, import and quarantine in one transaction."""
    facts.clear_staging(batch.ingest_id)
    if job.rows_accepted:
        target = facts.staging(batch.ingest_id) / job.mapping.fact_kind
        target.mkdir(parents=True, exist_ok=True)
        _copy_facts(con, run, run_all, job, batch.ingest_id, target)
        facts.sync_staging(batch.ingest_id)
    files = facts.staged_files(batch.ingest_id)
    with state.begin() as conn:
        status = conn.execute(select(fact_batches.c.status).where(fact_batches.c.id == batch.id)).scalar_one()
        if status != "writing":
            raise Conflict(f"import {job.import_id} was interrupted by a recovery (batch {status}); run it again")
        commit_batch(conn, batch, files=files, rows=job.rows_accepted)
        conn.execute(
            update(import_files)
            .where(import_files.c.id == job.import_id)
            .values(
                status="committed",
                rows_accepted=job.rows_accepted,
                rows_quarantined=job.rows_quarantined,
                finished_at=utcnow(),
            )
        )
        base = {"origin": ORIGIN, "source": job.source, "ref": str(job.import_id), "file": job.file}
        for chunk in _quarantine_rows(con, job):
            conn.execute(
                insert(quarantine),
                [
                    base | {"line": line, "field": fld, "reason": reason, "raw": raw, "created_at": job.at}
                    for line, fld, reason, raw in chunk
                ],
            )


def _fail(state: StateStore, facts: FactsStore, batch: Batch, import_id: int | None, exc: BaseException) -> None:
    """Record a failed import and drop its staging; never masks the original error."""
    with suppress(Exception):
        facts.clear_staging(batch.ingest_id)
        with state.begin() as conn:
            conn.execute(
                update(fact_batches)
                .where(fact_batches.c.id == batch.id, fact_batches.c.status == "writing")
                .values(status="abandoned")
            )
            conn.execute(
                update(import_files)
                .where(import_files.c.id == import_id)
                .values(status="failed", error=(str(exc) or type(exc).__name__)[:2000], finished_at=utcnow())
            )
