"""Campaigns benchmark: the audience build of a launch at 1M customers, and sends per second through a local gateway.

Data: the synthetic merchant of ``benchmarks/portrait_tags.py`` (``--customers`` 1M customers, ``--orders`` order lines,
by default 20 per customer, an identity snapshot with one phone per customer) with its portrait derived once, exactly
as ``benchmarks/segments.py`` caches it (the default ``--workdir`` is that benchmark's, so its cached data and
portrait are reused). Then, once per run, a template state database (setup, timed and shown apart, part of neither
side): a copy of the cached one, with marketing SMS consents granted for ~60 % of the customers' phones (5 % of
those withdrawn again later), "non-personalised only" chosen by ~1 %, all written in bulk with SQLAlchemy Core
inserts into ``consents`` and ``personalisation_choices`` (the ledger's ``record`` writes one row per call), and a
saved segment ``monetary > 0`` (most customers). Every side below runs in a fresh subprocess (peak RSS: the child's
VmHWM) on its own copy of the template (copying is not timed), with the cached facts and derived snapshots linked in.

1. Audience build (``--only audience``): a campaign (SMS, holdout 10 % stratified by ``lifecycle_stage``, global
   control group 5 %, the default cap 4/7) launched with ``launch`` end to end, split into its phases by wrapping
   the functions ``launch`` calls: snapshot (``take_snapshot``: evaluate the segment, write its Parquet file),
   draw (``draw``: consent states and non-personalised choices read from the state store and joined with the
   identity snapshot, then the DuckDB assignment), write (``write_recipients`` into the launch's transaction, and its
   commit). The baseline, in the same run on the same files:
   - snapshot: one DuckDB ``COPY (SELECT customer_id FROM tags WHERE monetary > 0) TO parquet``;
   - draw: the latest consent states and choices read with plain ``sqlite3`` (hand-written window queries), then
     one hand-written DuckDB query doing the membership, consent join, one-address-one-message, global control
     group, exclusions and the stratified holdout with the same hashes;
   - write: the same rows (built from the drawn Arrow table) inserted with ``sqlite3`` ``executemany`` in one
     transaction into a fresh SQLite database holding only the ``campaign_recipients`` table (same DDL and indexes,
     same WAL / synchronous=FULL settings as the state store).
   Both draws must give the same (arm, reason, stratum, address) for every member (the run fails otherwise).
   Both sides warm up once before the timed part (ours evaluates a segment: the first one in a process imports
   pandas through Ibis, ~1.5 s here; the baseline opens DuckDB and reads the tags once), as a running server would
   have. Ratio = best ours / best baseline per phase (rounds interleaved in alternating order).
2. Sends (``--only sends``): a launched campaign of ``--recipients`` (20k) consented customers, no holdout, sent by
   ``run_campaign`` (``--workers`` threads, ``--batch`` rows per claim) through the AliyunSms adapter to a local
   gateway on 127.0.0.1 (an asyncio HTTP/1.1 server in its own process that answers every SendSms at once with
   Code OK and counts the OutIds it saw); every recipient must be sent exactly once. Baseline: the same number of
   raw HTTP GETs (the same SendSms query parameters, unsigned) through one ``httpx.Client`` with the same thread
   count to the same gateway. Messages per second for both; ratio = ours seconds / raw seconds. Ours also shows
   where its time went (claims, consent re-reads and tag prefetch between batches; render, HTTP send and
   group-committed result per message, in thread-seconds).

Run: ``.venv/bin/python benchmarks/campaigns.py [--customers 1000000] [--orders 20000000] [--rounds 3]
[--send-rounds 3] [--recipients 20000] [--workers 4] [--batch 200] [--only audience|sends|all]
[--workdir /tmp/omnicrm-bench-segments] [--scratch /tmp/omnicrm-bench-campaigns]``; a quick run:
``--customers 100000 --orders 2000000 --rounds 1 --send-rounds 1 --recipients 5000``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.portrait_tags import AS_OF, _rss_mb, data_dir, ensure_data  # the same synthetic merchant
from benchmarks.segments import DEFAULT_WORKDIR, ensure_derived  # ... with the portrait segments.py derives

SETUP_VERSION = 1  # bump when the template (consents, choices, segment) changes
DEFAULT_SCRATCH = Path("/tmp/omnicrm-bench-campaigns")
SIDES = ("ours", "baseline")
NOW = AS_OF  # the launch moment: the portrait's as-of moment (2026Q4 for the global control group)
CONSENT_SHARE, WITHDRAWN_SHARE, NON_PERSONALISED_SHARE = 0.6, 0.05, 0.01
SEGMENT_TEXT = "monetary > 0"
STRATIFY_BY, HOLDOUT, GLOBAL_SHARE, CAP = "lifecycle_stage", 0.1, 0.05, "4/7"
SEED = "bench-campaigns-seed"  # the campaign's holdout seed, set after creating it so both sides know it
SECRET = "benchmark-secret-key-not-for-production"
SMS_BODY = {"zh": {"body": "{{ shop_name }}会员专享：{{ preferred_category }}满199减30 https://shop.example/d11"}}
DRAW_COLUMNS = ("customer_id", "arm", "reason", "stratum", "address")


# ---------------------------------------------------------------------------------------------------------------
# Folders: the template state and one folder per side and round, with the cached facts and snapshots linked in
# ---------------------------------------------------------------------------------------------------------------
def _layout(folder: Path, data: Path) -> Path:
    """A data folder for the product: the cached facts, identity and portrait linked in, a segments area of its own."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "derived" / "segments").mkdir(parents=True)
    (folder / "facts").symlink_to(data / "facts")
    for area in ("identity", "portrait"):
        (folder / "derived" / area).symlink_to(data / "derived" / area)
    return folder


def _settings(folder: Path, gateway: str = "http://127.0.0.1:9", **overrides: Any) -> Any:
    from omnicrm.settings import load_settings

    values: dict[str, Any] = {
        "data_dir": folder, "loader_interval_seconds": 0, "campaign_interval_seconds": 0, "log_level": "WARNING",
        "public_url": "https://crm.shop.example", "shop_name": "言木", "secret_key": SECRET,
        "global_control_share": GLOBAL_SHARE, "frequency_cap": CAP, "quiet_hours": "",
        "channels": {"sms": {"kind": "sms", "base_url": gateway, "rate_per_second": 0, "cost_per_unit": "0.045",
                             "backoff_base": 0.01, "timeout": 10,
                             "credentials": {"access_key_id": "LTAI-bench", "access_key_secret": "bench-secret"},
                             "options": {"sign_name": "言木", "text_template_code": "SMS_000001"}}},
    }  # fmt: skip
    values.update(overrides)
    return load_settings(**values)


def _system(folder: Path, gateway: str = "http://127.0.0.1:9", **overrides: Any) -> Any:
    from omnicrm.campaigns.launch import Marketing
    from omnicrm.channels.registry import for_settings
    from omnicrm.store.state import StateStore

    settings = _settings(folder, gateway, **overrides)
    return Marketing(settings, StateStore(settings.state_database_url, migrate=False), for_settings(settings))


def _run_folder(scratch: Path, data: Path, name: str) -> Path:
    """A fresh copy of the template for one side of one round."""
    folder = _layout(scratch / "runs" / name, data)
    shutil.copyfile(scratch / "template" / "state.db", folder / "state.db")
    return folder


def _identity(data: Path) -> Path:
    name = (data / "derived" / "identity" / "CURRENT").read_text(encoding="utf-8").strip()
    return data / "derived" / "identity" / "snapshots" / name


def _tags(data: Path) -> Path:
    name = (data / "derived" / "portrait" / "CURRENT").read_text(encoding="utf-8").strip()
    return data / "derived" / "portrait" / "snapshots" / name / "tags.parquet"


# ---------------------------------------------------------------------------------------------------------------
# Setup (once per run, a subprocess of its own): consents, choices and the segment in a template state database
# ---------------------------------------------------------------------------------------------------------------
def setup(data: Path, scratch: Path, seed: int) -> dict[str, Any]:
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from sqlalchemy import insert

    from omnicrm.segments.saved import create_segment
    from omnicrm.store.schema import consents, personalisation_choices
    from omnicrm.store.state import StateStore

    started = time.perf_counter()
    folder = _layout(scratch / "template", data)
    shutil.copyfile(data / "state.db", folder / "state.db")
    state = StateStore(f"sqlite:///{folder / 'state.db'}")  # migrated to the code's schema here, once
    migrated = time.perf_counter()
    ids = pq.read_table(_identity(data) / "identifiers.parquet", columns=["customer_id", "key", "id_type"])
    phones = ids.filter(pc.equal(ids["id_type"], "phone"))
    customer = phones["customer_id"].to_numpy()
    key = phones["key"].to_pylist()
    rng = np.random.default_rng(seed)
    granted = rng.random(len(key)) < CONSENT_SHARE
    withdrawn = granted & (rng.random(len(key)) < WITHDRAWN_SHARE)
    asked = rng.random(len(key)) < NON_PERSONALISED_SHARE
    days = rng.integers(1, 700, len(key))
    recorded = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)

    def consent(i: int, grant: bool) -> dict[str, Any]:
        at = NOW - dt.timedelta(days=int(days[i]) if grant else int(days[i]) // 2, hours=1)
        return {"subject": key[i], "channel": "sms", "purpose": "marketing", "granted": grant,
                "source": "signup_form" if grant else "sms_reply", "wording": "signup-2025" if grant else None,
                "detail": None if grant else "TD", "recorded_by": "benchmark", "customer_id": int(customer[i]),
                "at": at, "recorded_at": recorded}  # fmt: skip

    rows = [consent(int(i), True) for i in np.flatnonzero(granted)]
    rows += [consent(int(i), False) for i in np.flatnonzero(withdrawn)]
    choices = [
        {"subject": key[i], "non_personalised": True, "source": "preference_centre", "wording": None, "detail": None,
         "recorded_by": "benchmark", "customer_id": int(customer[i]), "at": NOW - dt.timedelta(days=3),
         "recorded_at": recorded}
        for i in np.flatnonzero(asked)
    ]  # fmt: skip
    prepared = time.perf_counter()
    with state.begin() as conn:
        for start in range(0, len(rows), 50_000):
            conn.execute(insert(consents), rows[start : start + 50_000])
        for start in range(0, len(choices), 50_000):
            conn.execute(insert(personalisation_choices), choices[start : start + 50_000])
    inserted = time.perf_counter()
    state.dispose()
    system = _system(folder)
    segment = create_segment(system.state, system.segment_engine(NOW), name="benchmark: buyers",
                             text=SEGMENT_TEXT, schedule="manual", by="benchmark")  # fmt: skip
    system.state.dispose()
    system.channels.close()
    db = sqlite3.connect(folder / "state.db")  # everything in the main file: the copies need no -wal file
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return {
        "segment_id": segment.id, "consent_rows": len(rows), "granted": int(granted.sum()),
        "withdrawn": int(withdrawn.sum()), "non_personalised": len(choices),
        "seconds": time.perf_counter() - started, "migrate_s": migrated - started,
        "prepare_s": prepared - migrated, "insert_s": inserted - prepared, "rss_mb": _rss_mb(),
    }  # fmt: skip


def _new_campaign(system: Any, segment_id: int, **spec: Any) -> int:
    """A draft SMS campaign with the benchmark's seed (so that both sides draw the same holdout)."""
    from sqlalchemy import update

    from omnicrm.campaigns.definition import create_campaign
    from omnicrm.store.schema import campaigns

    values = {"name": "benchmark", "segment_id": segment_id, "channel": "sms", "content": SMS_BODY,
              "holdout_share": HOLDOUT, "stratify_by": STRATIFY_BY} | spec  # fmt: skip
    campaign = create_campaign(system.state, system.channels, system.settings, values, by="benchmark")
    with system.state.begin() as conn:
        conn.execute(update(campaigns).where(campaigns.c.id == campaign.id).values(seed=SEED))
    return int(campaign.id)


# ---------------------------------------------------------------------------------------------------------------
# 1. Audience build: ours (launch, by phase) and the baseline
# ---------------------------------------------------------------------------------------------------------------
class _Marks:
    """Wraps module functions to note when each call started and ended (the last call of each name)."""

    def __init__(self) -> None:
        self.spans: dict[str, tuple[float, float]] = {}
        self.results: dict[str, Any] = {}

    def wrap(self, module: Any, name: str, label: str, keep: bool = False) -> None:
        inner = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                out = inner(*args, **kwargs)
                if keep:
                    self.results[label] = out
                return out
            finally:
                self.spans[label] = (started, time.perf_counter())

        setattr(module, name, timed)

    def seconds(self, label: str) -> float:
        start, end = self.spans[label]
        return end - start


def run_ours(data: Path, scratch: Path, name: str, segment_id: int) -> dict[str, Any]:
    import pyarrow.parquet as pq
    from sqlalchemy import text

    import omnicrm.campaigns.audience as audience
    import omnicrm.campaigns.launch as launching

    folder = _run_folder(scratch, data, name)
    system = _system(folder)
    campaign_id = _new_campaign(system, segment_id)
    # warm-up, not timed: the first segment evaluated in a process imports pandas (through Ibis's Arrow output)
    system.segment_engine(NOW).audience(text="frequency > 1000000")
    marks = _Marks()
    marks.wrap(launching, "take_snapshot", "snapshot")
    marks.wrap(launching, "draw", "draw", keep=True)
    marks.wrap(launching, "write_recipients", "write")
    marks.wrap(launching, "summary_of", "summary")
    for fn in ("consented", "non_personalised", "capped_customers"):
        marks.wrap(audience, fn, fn)
    rss_start = _rss_mb()
    started = time.perf_counter()
    result = launching.launch(system, campaign_id, now=NOW)
    total = time.perf_counter() - started
    rss = _rss_mb()
    reads = sum(marks.seconds(fn) for fn in ("consented", "non_personalised", "capped_customers"))
    write_start, write_end = marks.spans["write"]
    phases = {
        "snapshot": marks.seconds("snapshot"),
        "draw": marks.seconds("draw"),
        "draw: state reads": reads,
        "draw: assignment": marks.seconds("draw") - reads,
        "write": marks.spans["summary"][0] - write_start,
        "write: inserts": write_end - write_start,
        "write: commit": marks.spans["summary"][0] - write_end,
    }
    phases["other"] = total - phases["snapshot"] - phases["draw"] - phases["write"]
    pq.write_table(marks.results["draw"], folder / "drawn.parquet")
    with system.state.connect() as conn:
        logged = conn.execute(
            text("SELECT arm, status, count(*) FROM campaign_recipients WHERE campaign_id = :c GROUP BY 1, 2"),
            {"c": campaign_id},
        ).all()
    system.state.dispose()
    system.channels.close()
    return {
        "seconds": total, "phases": phases, "rss_mb": rss, "rss_start_mb": rss_start,
        "summary": {k: v for k, v in result.items() if k in ("members", "arms", "excluded")},
        "logged": {f"{a}/{s}": int(n) for a, s, n in logged}, "drawn": str(folder / "drawn.parquet"),
        "state_db_mb": (folder / "state.db").stat().st_size / 1e6,
    }  # fmt: skip


GRANTED_SQL = """
    SELECT subject FROM (
        SELECT subject, granted,
               row_number() OVER (PARTITION BY subject, channel, purpose ORDER BY at DESC, id DESC) AS rn
        FROM consents WHERE channel = 'sms' AND purpose = 'marketing'
    ) WHERE rn = 1 AND granted"""
ASKED_SQL = """
    SELECT subject FROM (
        SELECT subject, non_personalised, row_number() OVER (PARTITION BY subject ORDER BY at DESC, id DESC) AS rn
        FROM personalisation_choices
    ) WHERE rn = 1 AND non_personalised"""
CAPPED_SQL = """
    SELECT customer_id FROM campaign_recipients
    WHERE arm = 'treatment' AND status IN ('pending', 'sending', 'sent', 'in_doubt')
      AND coalesce(sent_at, assigned_at) >= ?
    GROUP BY customer_id HAVING count(*) >= ?"""
# The analyst's draw: one row per member; exclusions in the product's order; then the stratified holdout.
DRAW_SQL = """
    WITH m AS (SELECT DISTINCT customer_id FROM read_parquet($members)),
    reach AS (  -- each member's consented phone (the smallest key if several)
        SELECT i.customer_id, min(i.key) AS address
        FROM read_parquet($identifiers) i JOIN granted g ON g.subject = i.key
        WHERE i.id_type = 'phone' AND i.customer_id IN (SELECT customer_id FROM m)
        GROUP BY i.customer_id
    ),
    flagged AS (
        SELECT m.customer_id, r.address, coalesce(CAST(t.lifecycle_stage AS VARCHAR), '') AS stratum,
            CASE WHEN ('0x' || substr(md5($gsalt || m.customer_id::VARCHAR), 1, 8))::BIGINT < $gshare * 4294967296
                      THEN 'global_control'
                 WHEN m.customer_id IN (SELECT DISTINCT i.customer_id FROM read_parquet($identifiers) i
                                        JOIN asked a ON a.subject = i.key) THEN 'non_personalised'
                 WHEN r.address IS NULL THEN 'no_consent'
                 WHEN min(m.customer_id) OVER (PARTITION BY r.address) <> m.customer_id THEN 'shared_address'
                 WHEN m.customer_id IN (SELECT customer_id FROM capped) THEN 'capped'
            END AS reason
        FROM m LEFT JOIN reach r USING (customer_id)
        LEFT JOIN read_parquet($tags) t USING (customer_id)
    ),
    eligible AS (
        SELECT *, row_number() OVER (PARTITION BY stratum ORDER BY md5($seed || customer_id::VARCHAR)) AS k,
               count(*) OVER (PARTITION BY stratum) AS n
        FROM flagged WHERE reason IS NULL
    )
    SELECT customer_id, CASE WHEN k <= round(n * $share) THEN 'holdout' ELSE 'treatment' END AS arm,
           CASE WHEN k <= round(n * $share) THEN 'holdout' END AS reason, stratum, address
    FROM eligible
    UNION ALL
    SELECT customer_id, 'excluded', reason, stratum, address FROM flagged WHERE reason IS NOT NULL
    ORDER BY customer_id"""


def _recipients_ddl() -> list[str]:
    """The send log's DDL (table and indexes) as the state store's schema declares it, for SQLite."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from omnicrm.store.schema import campaign_recipients

    dialect = sqlite.dialect()
    table = str(CreateTable(campaign_recipients).compile(dialect=dialect))
    return [table, *(str(CreateIndex(ix).compile(dialect=dialect)) for ix in campaign_recipients.indexes)]


def run_baseline(data: Path, scratch: Path, name: str) -> dict[str, Any]:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from omnicrm.campaigns.audience import global_control_salt, quarter_of

    folder = _run_folder(scratch, data, name)
    ddl = _recipients_ddl()
    warm = duckdb.connect()  # warm-up (first connection, first read of the tags), not timed
    warm.execute(f"SELECT count(*) FROM read_parquet('{_tags(data)}') WHERE frequency > 1000000").fetchall()
    warm.close()
    rss_start = _rss_mb()
    phases: dict[str, float] = {}
    started = time.perf_counter()

    # snapshot: the segment's members as a Parquet file
    members = folder / "members.parquet"
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(
        f"COPY (SELECT customer_id FROM read_parquet('{_tags(data)}') WHERE monetary > 0 ORDER BY customer_id) "
        f"TO '{members}' (FORMAT parquet)"
    )
    phases["snapshot"] = time.perf_counter() - started

    # draw: consent states and choices from the state database, then one DuckDB query
    begun = time.perf_counter()
    db = sqlite3.connect(folder / "state.db")
    granted = pa.table({"subject": pa.array([r[0] for r in db.execute(GRANTED_SQL).fetchall()], pa.string())})
    asked = pa.table({"subject": pa.array([r[0] for r in db.execute(ASKED_SQL).fetchall()], pa.string())})
    since = (NOW - dt.timedelta(days=int(CAP.split("/")[1]))).strftime("%Y-%m-%d %H:%M:%S.%f")
    capped_ids = [r[0] for r in db.execute(CAPPED_SQL, (since, int(CAP.split("/")[0]))).fetchall()]
    capped = pa.table({"customer_id": pa.array(capped_ids, pa.int64())})
    db.close()
    phases["draw: state reads"] = time.perf_counter() - begun
    con.register("granted", granted)
    con.register("asked", asked)
    con.register("capped", capped)
    params = {"members": str(members), "identifiers": str(_identity(data) / "identifiers.parquet"),
              "tags": str(_tags(data)), "seed": SEED, "share": HOLDOUT, "gshare": GLOBAL_SHARE,
              "gsalt": global_control_salt(SECRET) + quarter_of(NOW)}  # fmt: skip
    drawn = con.sql(DRAW_SQL, params=params).to_arrow_table()
    phases["draw"] = time.perf_counter() - begun
    phases["draw: assignment"] = phases["draw"] - phases["draw: state reads"]

    # write: the same send-log rows, executemany into a fresh SQLite database, one transaction
    begun = time.perf_counter()
    out = sqlite3.connect(folder / "baseline-log.db", isolation_level=None)
    out.execute("PRAGMA journal_mode=WAL")
    out.execute("PRAGMA synchronous=FULL")
    for statement in ddl:
        out.execute(statement)
    prepared = time.perf_counter()
    assigned = NOW.strftime("%Y-%m-%d %H:%M:%S.%f")
    cols = {c: drawn[c].to_pylist() for c in DRAW_COLUMNS}
    rows = [
        (1, "1", c, arm, reason, stratum, address, "zh", "pending" if arm == "treatment" else "none", f"1:{c}:1",
         0, 0, 0, assigned)
        for c, arm, reason, stratum, address in zip(*cols.values(), strict=True)
    ]  # fmt: skip
    out.execute("BEGIN IMMEDIATE")
    out.executemany(
        "INSERT INTO campaign_recipients (campaign_id, step, customer_id, arm, reason, stratum, address, language, "
        "status, idempotency_key, attempts, units, cost_micros, assigned_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    inserted = time.perf_counter()
    out.execute("COMMIT")
    ended = time.perf_counter()
    phases["write"] = ended - prepared
    phases["write: inserts"] = inserted - prepared
    phases["write: commit"] = ended - inserted
    phases["other"] = prepared - begun  # creating the fresh database
    total = time.perf_counter() - started
    rss = _rss_mb()
    out.close()
    pq.write_table(drawn, folder / "drawn.parquet")
    return {"seconds": total, "phases": phases, "rss_mb": rss, "rss_start_mb": rss_start, "rows": len(rows),
            "drawn": str(folder / "drawn.parquet")}  # fmt: skip


def _side(side: str, data: Path, scratch: Path, result: Path, what: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one side in a fresh interpreter (its own peak RSS, nothing cached from the other side)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--side", side, "--data", str(data), "--scratch",
           str(scratch), "--result", str(result), "--what", json.dumps(what or {})]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return dict(json.loads(result.read_text(encoding="utf-8")))


def compare_draws(ours: str, baseline: str) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    row = con.execute(
        f"""SELECT count(*) FILTER (WHERE b.customer_id IS NULL), count(*) FILTER (WHERE o.customer_id IS NULL),
                   count(*) FILTER (WHERE o.customer_id IS NOT NULL AND b.customer_id IS NOT NULL
                                    AND (o.arm, o.reason, o.stratum, o.address)
                                        IS DISTINCT FROM (b.arm, b.reason, b.stratum, b.address)),
                   count(*)
            FROM read_parquet('{ours}') o FULL JOIN read_parquet('{baseline}') b USING (customer_id)"""
    ).fetchone()
    assert row is not None
    return {"only_ours": row[0], "only_baseline": row[1], "differ": row[2], "members": row[3]}


PHASES = (
    ("snapshot", "DuckDB COPY of the tag filter to Parquet"),
    ("draw", "sqlite3 window queries + one DuckDB query"),
    ("draw: state reads", "latest consents / choices / caps via sqlite3"),
    ("draw: assignment", "the hand-written DuckDB draw"),
    ("write", "sqlite3 executemany into a fresh database"),
    ("write: inserts", "tuples from Arrow + executemany"),
    ("write: commit", "COMMIT (WAL, synchronous=FULL)"),
    ("other", "ours: campaign, links, summary; baseline: CREATE TABLE"),
)


def bench_audience(data: Path, scratch: Path, segment_id: int, rounds: int, console: Console) -> bool:
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    results = scratch / "results"
    results.mkdir(exist_ok=True)
    checks = []
    for i in range(rounds):
        for side in SIDES if i % 2 == 0 else SIDES[::-1]:
            with console.status(f"round {i + 1}/{rounds}: {side} …"):
                what = {"name": f"{side}-{i}", "segment_id": segment_id}
                run = _side(side, data, scratch, results / f"audience-{side}.json", what)
            runs[side].append(run)
            console.print(
                f"  round {i + 1}/{rounds} {side:8}: {run['seconds']:7.2f} s "
                + ", ".join(f"{k} {v:.2f}" for k, v in run["phases"].items() if ":" not in k)
                + f"; peak RSS {run['rss_mb']:,.0f} MB"
            )
        checks.append(compare_draws(runs["ours"][-1]["drawn"], runs["baseline"][-1]["drawn"]))
        shutil.rmtree(scratch / "runs", ignore_errors=True)  # a copy of the state per side and round: free the disk
    ours, base = runs["ours"], runs["baseline"]
    summary = ours[-1]["summary"]
    table = Table(title=f"Audience build: launch of a {summary['members']:,}-member segment, ours / hand-written "
                        f"baseline (best of {rounds} interleaved rounds, seconds)")  # fmt: skip
    for col in ("phase", "ours s", "baseline s", "ratio", "median ratio", "baseline does"):
        table.add_column(col, justify="left" if col in ("phase", "baseline does") else "right")
    for phase, what in PHASES:
        o = [r["phases"][phase] for r in ours]
        b = [r["phases"][phase] for r in base]
        ratio = f"{min(o) / min(b):.2f}" if min(b) >= 0.01 else "n/a"
        median = f"{statistics.median(o) / statistics.median(b):.2f}" if min(b) >= 0.01 else "n/a"
        style = "dim" if ":" in phase or phase == "other" else ""
        table.add_row(phase, f"{min(o):.2f}", f"{min(b):.2f}", ratio, median, what, style=style)
    table.add_section()
    t_o, t_b = [r["seconds"] for r in ours], [r["seconds"] for r in base]
    table.add_row("total (end to end)", f"{min(t_o):.2f}", f"{min(t_b):.2f}", f"{min(t_o) / min(t_b):.2f}",
                  f"{statistics.median(t_o) / statistics.median(t_b):.2f}", "")  # fmt: skip
    console.print(table)
    arms = ", ".join(f"{k} {v:,}" for k, v in sorted(summary["arms"].items()))
    excluded = ", ".join(f"{k} {v:,}" for k, v in sorted(summary["excluded"].items()))
    console.print(f"  members {summary['members']:,}: {arms}; excluded by reason: {excluded}")
    console.print(f"  send log written by ours: {ours[-1]['logged']}; state.db after launch "
                  f"{ours[-1]['state_db_mb']:,.0f} MB")  # fmt: skip
    console.print(
        f"  peak RSS: ours {max(r['rss_mb'] for r in ours):,.0f} MB (after imports "
        f"{max(r['rss_start_mb'] for r in ours):,.0f} MB), baseline {max(r['rss_mb'] for r in base):,.0f} MB "
        f"(after imports {max(r['rss_start_mb'] for r in base):,.0f} MB)"
    )
    console.print(f"  rounds (s): ours {[round(x, 2) for x in t_o]}, baseline {[round(x, 2) for x in t_b]}")
    wrong = [c for c in checks if c["only_ours"] or c["only_baseline"] or c["differ"]]
    if wrong:
        console.print(f"[red bold]DRAWS DIFFER between ours and the baseline:[/] {wrong}")
        return False
    console.print(f"  draws: ours = baseline for all {checks[-1]['members']:,} members in all {rounds} rounds "
                  "(arm, reason, stratum, address)")  # fmt: skip
    return True


# ---------------------------------------------------------------------------------------------------------------
# 2. Sends per second: a local gateway, ours (run_campaign) and raw httpx GETs
# ---------------------------------------------------------------------------------------------------------------
def serve_gateway() -> None:
    """An HTTP/1.1 (keep-alive) server on 127.0.0.1 answering every SendSms at once; prints its port.
    ``/__stats`` tells the SendSms calls and distinct OutIds seen since ``/__reset``."""
    import asyncio
    from urllib.parse import parse_qsl

    seen: set[str] = set()
    counts = {"calls": 0}

    def answer(target: bytes) -> bytes:
        path, _, query = target.partition(b"?")
        if path == b"/__stats":
            return json.dumps({"calls": counts["calls"], "out_ids": len(seen)}).encode()
        if path == b"/__reset":
            counts["calls"] = 0
            seen.clear()
            return b"{}"
        params = dict(parse_qsl(query.decode()))
        if params.get("Action") != "SendSms":
            return json.dumps({"Code": "isv.INVALID_PARAMETERS", "Message": "unknown Action"}).encode()
        counts["calls"] += 1
        seen.add(params.get("OutId", ""))
        n = counts["calls"]
        return json.dumps({"Code": "OK", "Message": "OK", "BizId": f"biz-{n}", "RequestId": f"r-{n}"}).encode()

    class Http(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport, self.buffer = transport, b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                head = self.buffer[:end]
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if len(self.buffer) < end + 4 + length:
                    return  # the body is still coming
                self.buffer = self.buffer[end + 4 + length :]
                body = answer(head.split(b" ", 2)[1])
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body)
                )

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Http, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def _gateway_call(url: str, path: str) -> dict[str, Any]:
    import httpx

    return dict(httpx.get(url + path, timeout=10).json())


class _Busy:
    """Wall time spent in wrapped functions, summed over threads (thread-seconds), and calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def wrap(self, owner: Any, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                with self.lock:
                    self.seconds[label] = self.seconds.get(label, 0.0) + spent
                    self.calls[label] = self.calls.get(label, 0) + 1

        setattr(owner, name, timed)


def run_sends(data: Path, scratch: Path, what: dict[str, Any]) -> dict[str, Any]:
    """Launch a campaign of exactly ``recipients`` consented customers (not timed), then ``run_campaign`` (timed)."""
    import pyarrow as pa
    from sqlalchemy import update

    import omnicrm.campaigns.rendering as rendering
    import omnicrm.campaigns.sender as sender
    from omnicrm.campaigns.audience import draw
    from omnicrm.campaigns.definition import get_campaign
    from omnicrm.campaigns.launch import _register_links, summary_of, write_recipients
    from omnicrm.consent.audience import consented, non_personalised
    from omnicrm.store.schema import campaigns

    n, url = int(what["recipients"]), str(what["gateway"])
    folder = _run_folder(scratch, data, what["name"])
    system = _system(folder, url)
    campaign_id = _new_campaign(system, int(what["segment_id"]), holdout_share=0.0, stratify_by=None,
                                use_global_control=False, frequency_cap="")  # fmt: skip
    # launch minus the segment snapshot: the first n customers with a granted consent and no "non-personalised"
    reach = consented(system.state, _identity(data), "sms", "marketing")
    asked = set(non_personalised(system.state, _identity(data))["customer_id"].to_pylist())
    chosen = [c for c in dict.fromkeys(reach["customer_id"].to_pylist()) if c not in asked][:n]
    if len(chosen) < n:
        raise SystemExit(f"only {len(chosen):,} consented customers; ask for fewer --recipients")
    campaign = get_campaign(system.state, campaign_id)
    drawn = draw(campaign, members=pa.table({"customer_id": pa.array(chosen, pa.int64())}), state=system.state,
                 identity=_identity(data), portrait=_tags(data).parent, now=NOW, global_share=0.0, secret=SECRET)  # fmt: skip
    assert summary_of(drawn)["arms"] == {"treatment": n}, summary_of(drawn)
    _register_links(system, campaign)
    with system.state.begin() as conn:
        conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(status="sending", launched_at=NOW))
        write_recipients(conn, campaign_id, drawn, NOW)
    busy = _Busy()
    for owner, name, label in (
        (sender._Run, "claim", "claim a batch"),
        (sender._Run, "withdrawn", "re-read consents"),
        (rendering.Renderer, "prefetch", "prefetch tags"),
        (rendering.Renderer, "message", "render"),
        (system.channels["sms"], "send", "HTTP send (adapter)"),
        (sender, "_record", "record result (group commit)"),
    ):
        busy.wrap(owner, name, label)
    _gateway_call(url, "/__reset")
    rss_start = _rss_mb()
    started = time.perf_counter()
    report = sender.run_campaign(system, campaign_id, workers=int(what["workers"]), batch=int(what["batch"]))
    seconds = time.perf_counter() - started
    seen = _gateway_call(url, "/__stats")
    system.state.dispose()
    system.channels.close()
    return {"seconds": seconds, "messages": n, "counts": report.counts, "stopped": report.stopped, "gateway": seen,
            "busy": busy.seconds, "calls": busy.calls, "rss_mb": _rss_mb(), "rss_start_mb": rss_start}  # fmt: skip


def run_raw(what: dict[str, Any]) -> dict[str, Any]:
    """``recipients`` GETs of SendSms-shaped queries through one httpx.Client from ``workers`` threads."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    n, url = int(what["recipients"]), str(what["gateway"])
    base = {"Action": "SendSms", "Version": "2017-05-25", "RegionId": "cn-hangzhou", "SignName": "言木",
            "TemplateCode": "SMS_000001", "AccessKeyId": "LTAI-bench", "Format": "JSON",
            "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "Timestamp": "2026-11-25T12:00:00Z",
            "TemplateParam": json.dumps({"content": "会员专享：连衣裙满199减30 https://crm.shop.example/l/x 回T退订"},
                                        ensure_ascii=False, separators=(",", ":"))}  # fmt: skip
    client = httpx.Client(base_url=url, timeout=httpx.Timeout(10, connect=3))

    def one(i: int) -> int:
        params = base | {"PhoneNumbers": str(13_000_000_000 + i), "OutId": f"raw:{i}:1", "SignatureNonce": str(i)}
        response = client.get("/", params=params)
        return int(response.json()["Code"] == "OK")

    _gateway_call(url, "/__reset")
    rss_start = _rss_mb()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=int(what["workers"])) as pool:
        ok = sum(pool.map(one, range(n)))
    seconds = time.perf_counter() - started
    client.close()
    return {"seconds": seconds, "messages": n, "ok": ok, "gateway": _gateway_call(url, "/__stats"),
            "rss_mb": _rss_mb(), "rss_start_mb": rss_start}  # fmt: skip


def bench_sends(data: Path, scratch: Path, segment_id: int, args: argparse.Namespace, console: Console) -> bool:
    gateway = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--side", "gateway"],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert gateway.stdout is not None
        url = f"http://127.0.0.1:{int(gateway.stdout.readline())}"
        results = scratch / "results"
        results.mkdir(exist_ok=True)
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "raw": []}
        rounds = max(1, args.send_rounds)
        for i in range(rounds):
            for side in ("ours", "raw") if i % 2 == 0 else ("raw", "ours"):
                what = {"name": f"sends-{i}", "recipients": args.recipients, "workers": args.workers,
                        "batch": args.batch, "gateway": url, "segment_id": segment_id}  # fmt: skip
                with console.status(f"sends round {i + 1}/{rounds}: {side} …"):
                    run = _side("sends" if side == "ours" else "raw", data, scratch, results / f"{side}.json", what)
                runs[side].append(run)
                console.print(f"  round {i + 1}/{rounds} {side:4}: {run['messages']:,} messages in "
                              f"{run['seconds']:6.2f} s = {run['messages'] / run['seconds']:7,.0f} /s; gateway saw "
                              f"{run['gateway']['calls']:,} SendSms, {run['gateway']['out_ids']:,} OutIds")  # fmt: skip
            shutil.rmtree(scratch / "runs", ignore_errors=True)
    finally:
        gateway.terminate()
        gateway.wait(10)
    n = args.recipients
    ok = all(
        r["counts"] == {"sent": n} and r["stopped"] == "done" and r["gateway"] == {"calls": n, "out_ids": n}
        for r in runs["ours"]
    ) and all(r["ok"] == n and r["gateway"]["calls"] == n for r in runs["raw"])
    best = {side: min(r["seconds"] for r in rs) for side, rs in runs.items()}
    median = {side: statistics.median(r["seconds"] for r in rs) for side, rs in runs.items()}
    table = Table(title=f"Sends: {n:,} SMS through a local gateway on 127.0.0.1, {args.workers} threads "
                        f"(best of {rounds} interleaved rounds)")  # fmt: skip
    for col in ("side", "seconds", "messages/s", "median messages/s", "peak RSS MB", "what"):
        table.add_column(col, justify="left" if col in ("side", "what") else "right")
    table.add_row("ours", f"{best['ours']:.2f}", f"{n / best['ours']:,.0f}", f"{n / median['ours']:,.0f}",
                  f"{max(r['rss_mb'] for r in runs['ours']):,.0f}",
                  f"run_campaign, AliyunSms adapter, batch {args.batch}")  # fmt: skip
    table.add_row("raw", f"{best['raw']:.2f}", f"{n / best['raw']:,.0f}", f"{n / median['raw']:,.0f}",
                  f"{max(r['rss_mb'] for r in runs['raw']):,.0f}", "httpx.Client GETs, same query shape")  # fmt: skip
    table.add_section()
    table.add_row("ratio ours/raw (time)", f"{best['ours'] / best['raw']:.2f}", "", f"{median['ours'] / median['raw']:.2f}",
                  "", "ours' rate is 1/ratio of the raw rate")  # fmt: skip
    console.print(table)
    fastest = min(runs["ours"], key=lambda r: r["seconds"])
    where = Table(title=f"Where ours' time went (fastest round, {fastest['seconds']:.2f} s wall)")
    for col in ("work", "calls", "seconds", "per call ms", "runs"):
        where.add_column(col, justify="left" if col in ("work", "runs") else "right")
    for label, spent in fastest["busy"].items():
        calls = fastest["calls"][label]
        threads = "between batches (main thread)" if label in ("claim a batch", "re-read consents", "prefetch tags") \
            else f"per message, in {args.workers} threads (thread-seconds)"  # fmt: skip
        where.add_row(label, f"{calls:,}", f"{spent:.2f}", f"{spent / calls * 1000:.2f}", threads)
    console.print(where)
    if not ok:
        console.print("[red bold]not every recipient was sent exactly once:[/] "
                      f"{[(r['counts'], r['stopped'], r['gateway']) for r in runs['ours']]}, "
                      f"raw {[(r['ok'], r['gateway']) for r in runs['raw']]}")  # fmt: skip
    else:
        console.print(f"  every round: {n:,} sent, each OutId once at the gateway (ours: report 'done', all 'sent')")
    return ok


# ---------------------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000, help="synthetic customers")
    parser.add_argument("--orders", type=int, default=None, help="synthetic order lines (default 20 per customer)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic data and of the consents")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the audience build (best of)")
    parser.add_argument("--send-rounds", type=int, default=3, help="interleaved rounds of the sends (best of)")
    parser.add_argument("--recipients", type=int, default=20_000, help="recipients of the sends campaign")
    parser.add_argument("--workers", type=int, default=4, help="sender threads (both sides)")
    parser.add_argument("--batch", type=int, default=200, help="rows per claim of run_campaign")
    parser.add_argument("--only", choices=("audience", "sends", "all"), default="all")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where the generated data are cached")
    parser.add_argument("--scratch", type=Path, default=DEFAULT_SCRATCH, help="template and per-run state copies")
    parser.add_argument("--side", choices=("setup", *SIDES, "sends", "raw", "gateway"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--what", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        if args.side == "gateway":
            serve_gateway()
            return 0
        what = json.loads(args.what)
        sides: dict[str, Callable[[], dict[str, Any]]] = {
            "setup": lambda: setup(args.data, args.scratch, int(what["seed"])),
            "ours": lambda: run_ours(args.data, args.scratch, what["name"], int(what["segment_id"])),
            "baseline": lambda: run_baseline(args.data, args.scratch, what["name"]),
            "sends": lambda: run_sends(args.data, args.scratch, what),
            "raw": lambda: run_raw(what),
        }
        args.result.write_text(json.dumps(sides[args.side](), default=str), encoding="utf-8")
        return 0

    console = Console(width=None if sys.stdout.isatty() else 150)
    orders = args.orders or 20 * args.customers
    args.workdir.mkdir(parents=True, exist_ok=True)
    data, info, gen_seconds = ensure_data(args.workdir, args.customers, orders, args.seed)
    assert data == data_dir(args.workdir, args.customers, orders, args.seed)
    gen = f"generated in {gen_seconds:.1f} s" if gen_seconds is not None else "cached"
    console.print(
        f"data: {info['customers']:,} customers, {info['orders']:,} orders, {info['order_lines']:,} order lines, "
        f"as of {AS_OF:%Y-%m-%d %H:%M} UTC — {gen} ({data})"
    )
    console.print(f"  portrait: {ensure_derived(data, 'portrait', console)}")
    scratch = args.scratch / data.name
    scratch.mkdir(parents=True, exist_ok=True)
    with console.status("setup: consents, choices and the segment in a template state database …"):
        made = _side("setup", data, scratch, scratch / "setup.json", {"seed": args.seed, "v": SETUP_VERSION})
    console.print(
        f"  setup (part of neither side): {made['seconds']:.1f} s — {made['granted']:,} SMS marketing grants "
        f"({made['withdrawn']:,} withdrawn later; {made['consent_rows']:,} consent rows), {made['non_personalised']:,} "
        f"non-personalised choices, bulk Core inserts {made['insert_s']:.1f} s (rows built {made['prepare_s']:.1f} s, "
        f"migration {made['migrate_s']:.1f} s); segment '{SEGMENT_TEXT}' #{made['segment_id']}; "
        f"peak RSS {made['rss_mb']:,.0f} MB"
    )
    ok = True
    if args.only in ("audience", "all"):
        ok = bench_audience(data, scratch, made["segment_id"], max(1, args.rounds), console) and ok
    if args.only in ("sends", "all"):
        ok = bench_sends(data, scratch, made["segment_id"], args, console) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
