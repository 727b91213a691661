"""Segments benchmark: typical segment counts against hand-written DuckDB SQL in the same run; customer-360 times.

Data: the synthetic merchant of ``benchmarks/portrait_tags.py`` (``--customers`` 1M customers, ``--orders`` 20M order
lines over two years, an identity snapshot), with its portrait refreshed once (``refresh_portrait`` as of the same
moment) and, for the customer 360, its timeline. All of it is cached in ``--workdir`` keyed by size and seed; the time
it takes to make is shown apart and is part of neither side.

1. Segments (``--only segments``): eight segments a marketer builds, each written in our rule language (text form)
   and as the DuckDB SQL a competent analyst would write over the same Parquet files (portrait snapshot, order-line
   facts, identity map), with the product's meaning (the latest version of each order line, refunds after the
   moment not yet made, calendar days in China time, an order's time is its first line's). Two sides, each in a
   fresh subprocess per round (peak RSS: the child's VmHWM), rounds interleaved in alternating order:
   - ours: what the API does per request: a fresh ``SegmentEngine`` (its own DuckDB connection) and ``count``;
   - SQL: a fresh DuckDB connection running the analyst's query and fetching the count.
   Both warm up once (imports, first connection) before the timed requests. The counts must be equal for every
   segment in every round (the run fails otherwise). Ratio = best ours / best SQL per segment, target <= 1.5,
   and their geometric mean.
2. Customer 360 (``--only c360``): ``GET /api/customers/{id}/360`` (API key with ``customers:read``) for
   ``--requests`` (200) random customers, in process through FastAPI's TestClient, in a fresh subprocess; server
   time (measured by a middleware around the app) p50 / p95 / max, and the client's view of it. Skipped, saying so,
   while the route does not exist.

Run: ``.venv/bin/python benchmarks/segments.py [--customers 1000000] [--orders 20000000] [--rounds 5]
[--only segments|c360|all] [--requests 200] [--workdir /tmp/omnicrm-bench-segments]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.portrait_tags import AS_OF, _rss_mb, data_dir, ensure_data  # the same synthetic merchant

TARGET = 1.5
SIDES = ("ours", "sql")
PREPARED_VERSION = 1  # bump when what ``prepare`` derives changes, so cached portraits are rebuilt
DEFAULT_WORKDIR = Path("/tmp/omnicrm-bench-segments")
C360_ROUTE = "/api/customers/{customer_id}/360"
CONSOLE_ROUTE = "/console/customers/{customer_id}"
CONSOLE_USER, CONSOLE_PASSWORD = "benchmark-360", "benchmark-360-password"  # a marketer, made in the cached data

# ---------------------------------------------------------------------------------------------------------------
# The segments, each in our rule language and in hand-written DuckDB SQL
# ---------------------------------------------------------------------------------------------------------------
TODAY = (AS_OF + dt.timedelta(hours=8)).date()  # the merchant's calendar day (China time)


def _midnight(day: dt.date) -> str:
    """A China-time midnight as a DuckDB TIMESTAMPTZ literal."""
    return f"TIMESTAMPTZ '{day.isoformat()} 00:00:00+08'"


def _since(day: dt.date) -> str:
    """Order lines created from a China-time midnight on. The facts are in a folder per UTC day (``date=``), so the
    analyst names the folders too, and DuckDB opens only those files."""
    return f"created_at >= {_midnight(day)} AND date >= DATE '{day - dt.timedelta(days=1)}'"


def _last_days(n: int) -> str:
    """Order lines of "the last n calendar days" (today is the first of them)."""
    return _since(TODAY - dt.timedelta(days=n - 1))


NOW = f"TIMESTAMPTZ '{AS_OF.isoformat()}'"
DEDUPE = """QUALIFY row_number() OVER (PARTITION BY source, order_id, line_no
                                       ORDER BY ingested_at DESC, ingest_id DESC, source_line DESC) = 1"""
WHO = "JOIN read_parquet('{records}') r ON r.record_key = 'o:' || l.source || ':' || l.order_id"
REFUNDED = f"CASE WHEN refunded_at > {NOW} THEN 0 ELSE refunded_amount END"  # a later refund had not happened yet


def _who_ordered(where: str) -> str:
    """Customers with an order line (any status) in ``where`` — versions do not matter for "ordered"."""
    return f"SELECT DISTINCT r.customer_id FROM read_parquet('{{lines}}') l {WHO} WHERE created_at <= {NOW} AND {where}"


@dataclass(frozen=True)
class Segment:
    name: str
    what: str  # what the marketer is after
    text: str  # our rule language
    sql: str  # the analyst's DuckDB SQL ({tags}, {lines}, {records} are the files)


SEGMENTS = (
    Segment(
        "champions_alive",
        "RFM champions still likely to buy",
        'rfm_segment = "champions" AND p_alive > 0.5',
        "SELECT count(*) FROM read_parquet('{tags}') WHERE rfm_segment = 'champions' AND p_alive > 0.5",
    ),
    Segment(
        "skirts_mid_high",
        "Dress and skirt buyers at mid or high prices",
        'top_categories CONTAINS ANY ("连衣裙", "半身裙") AND preferred_category NOT IN ("内衣", "配饰") '
        'AND price_band IN ("mid", "high")',
        """SELECT count(*) FROM read_parquet('{tags}')
           WHERE list_has_any(top_categories, ['连衣裙', '半身裙']) AND preferred_category NOT IN ('内衣', '配饰')
             AND price_band IN ('mid', 'high')""",
    ),
    Segment(
        "mid_value_recent",
        "Mid-value repeat buyers of the last four months",
        "monetary BETWEEN 1000 AND 5000 AND frequency >= 3 AND recency_days <= 120 AND avg_order_value > 300",
        """SELECT count(*) FROM read_parquet('{tags}')
           WHERE monetary BETWEEN 1000 AND 5000 AND frequency >= 3 AND recency_days <= 120 AND avg_order_value > 300""",
    ),
    Segment(
        "dress_lapsed",
        "Bought dresses twice in 90 days, nothing since Double 11, still likely to buy",
        'bought category = "连衣裙" AT LEAST 2 TIMES IN LAST 90 DAYS AND NO order SINCE 2026-11-11 AND p_alive > 0.5',
        f"""WITH dresses AS (
                SELECT r.customer_id
                FROM (
                    SELECT source, order_id, paid_amount, {REFUNDED} AS refunded_amount
                    FROM read_parquet('{{lines}}')
                    WHERE category = '连衣裙' AND {_last_days(90)} AND created_at <= {NOW}
                    {DEDUPE}
                ) l {WHO}
                WHERE paid_amount > coalesce(refunded_amount, 0)
                GROUP BY r.customer_id HAVING count(DISTINCT (l.source, l.order_id)) >= 2
            )
            SELECT count(*) FROM read_parquet('{{tags}}') t JOIN dresses USING (customer_id)
            WHERE t.p_alive > 0.5
              AND customer_id NOT IN ({_who_ordered(_since(dt.date(2026, 11, 11)))})""",
    ),
    Segment(
        "double11_returners",
        "Last year's Double 11 new buyers who bought again in this Double 11",
        'acquired_double11 IS TRUE AND tenure_days >= 300 AND bought promotion = "double11" SINCE 2026-11-01',
        f"""WITH orders AS (
                SELECT r.customer_id, l.source, l.order_id, min(l.created_at) AS created_at,
                       sum(coalesce(paid_amount, 0)) - sum(coalesce(refunded_amount, 0)) AS net,
                       bool_or(double11) AS double11
                FROM (
                    SELECT source, order_id, created_at, paid_amount, {REFUNDED} AS refunded_amount,
                           -- declared Double 11, or an online order in 1-11 November (China time)
                           regexp_matches(lower(promotion), '双11|双十一|11\\.11|double ?11')
                           OR (coalesce(promotion, '') = '' AND source <> 'pos'
                               AND month(created_at + INTERVAL 8 HOUR) = 11 AND day(created_at + INTERVAL 8 HOUR) <= 11)
                               AS double11
                    FROM read_parquet('{{lines}}')
                    WHERE {_since(dt.date(2026, 11, 1))} AND created_at <= {NOW}
                    {DEDUPE}
                ) l {WHO}
                GROUP BY ALL
            )
            SELECT count(*) FROM read_parquet('{{tags}}') t
            WHERE t.acquired_double11 AND t.tenure_days >= 300
              AND customer_id IN (SELECT customer_id FROM orders WHERE net > 0 AND double11)""",
    ),
    Segment(
        "cooling_online_big",
        "Cooling or low-recency big spenders who do not buy in stores and never complained",
        '(lifecycle_stage IN ("cooling", "dormant") OR r_score <= 2) AND NOT preferred_channel = "store" '
        "AND (m_score >= 4 OR avg_order_value > 600) AND NOT complainer IS TRUE",
        """SELECT count(*) FROM read_parquet('{tags}')
           WHERE (lifecycle_stage IN ('cooling', 'dormant') OR r_score <= 2)
             AND preferred_channel IS DISTINCT FROM 'store'
             AND (m_score >= 4 OR avg_order_value > 600) AND complainer IS NOT TRUE""",
    ),
    Segment(
        "store_regulars_offline",
        "Store regulars (two store visits in a year) who did not order on a marketplace in that year",
        'ordered channel = "store" AT LEAST 2 TIMES IN LAST 365 DAYS '
        'AND NO order channel = "marketplace" IN LAST 365 DAYS',
        f"""WITH store AS (
                SELECT r.customer_id FROM read_parquet('{{lines}}') l {WHO}
                WHERE l.source = 'pos' AND {_last_days(365)} AND created_at <= {NOW}
                GROUP BY r.customer_id HAVING count(DISTINCT l.order_id) >= 2
            )
            SELECT count(*) FROM store
            WHERE customer_id NOT IN ({_who_ordered(f"source <> 'pos' AND {_last_days(365)}")})""",
    ),
    Segment(
        "refunded_valuable",
        "Valuable customers who had a refund in the last 30 days (service recovery)",
        'refunded IN LAST 30 DAYS AND rfm_segment IN ("champions", "loyal", "cannot_lose")',
        f"""WITH refunds AS (
                SELECT DISTINCT r.customer_id
                FROM (
                    SELECT source, order_id, {REFUNDED} AS refunded_amount
                    FROM read_parquet('{{lines}}')
                    WHERE {_last_days(30)} AND created_at <= {NOW}
                    {DEDUPE}
                ) l {WHO}
                WHERE l.refunded_amount > 0
            )
            SELECT count(*) FROM read_parquet('{{tags}}') t JOIN refunds USING (customer_id)
            WHERE t.rfm_segment IN ('champions', 'loyal', 'cannot_lose')""",
    ),
)


# ---------------------------------------------------------------------------------------------------------------
# Data: the portrait_tags merchant, its portrait (and timeline) derived once
# ---------------------------------------------------------------------------------------------------------------
def _marker(data: Path, what: str) -> Path:
    return data / f"SEGMENTS_{what.upper()}_v{PREPARED_VERSION}.json"


def prepare(data: Path, what: str) -> dict[str, Any]:
    """Derive ``what`` (portrait or timeline) into the cached data; run in a subprocess of its own."""
    from omnicrm.store.derived import DerivedStore
    from omnicrm.store.engine import Engine
    from omnicrm.store.facts import FactsStore
    from omnicrm.store.state import StateStore

    started = time.perf_counter()
    engine, derived = Engine(FactsStore(data / "facts")), DerivedStore(data / "derived")
    if what == "portrait":
        from omnicrm.portrait.refresh import refresh_portrait

        state = StateStore(f"sqlite:///{data / 'state.db'}", migrate=False)
        result = refresh_portrait(state, engine, derived, as_of=AS_OF, full=True)
        state.dispose()
        info: dict[str, Any] = {"customers": result.customers, "tags": result.tags}
    else:
        from omnicrm.customers.timeline import refresh_timeline

        occurrences = write_occurrences(data)
        timeline = refresh_timeline(engine, derived)
        info = {"rows": timeline.rows, "customers": timeline.customers, "occurrences": occurrences}
    return info | {"seconds": time.perf_counter() - started, "rss_mb": _rss_mb()}


def write_occurrences(data: Path) -> int:
    """The identity snapshot's occurrences (which record carried which identifier), which the customer 360 explains
    identifiers by. The synthetic snapshot is written directly rather than by OneID, and lists phones as the
    identifiers: so are the occurrences, one per order record and phone, from the order lines."""
    import duckdb

    from omnicrm.identity.extract import OCCURRENCE_SCHEMA

    snapshot = Path(_paths(data)["records"]).parent
    target = snapshot / "occurrences.parquet"
    if target.exists():
        return -1
    columns = ", ".join(f.name for f in OCCURRENCE_SCHEMA)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"""COPY (
            SELECT {columns} FROM (
                SELECT 'o:' || source || ':' || order_id AS record_key, 'order_line' AS kind, source,
                       'phone' AS id_type, '' AS scope, phone AS raw, 'phone::' || phone AS key,
                       NULL::VARCHAR AS reason, min(created_at) AS first_seen, max(created_at) AS last_seen,
                       count(*) AS n
                FROM read_parquet('{_paths(data)["lines"]}') WHERE phone IS NOT NULL
                GROUP BY ALL
            ) ORDER BY record_key
        ) TO '{target}.tmp' (FORMAT parquet, COMPRESSION zstd)"""
    )
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{target}.tmp')").fetchone()
    Path(f"{target}.tmp").rename(target)
    return int(rows[0]) if rows else 0


def ensure_derived(data: Path, what: str, console: Console) -> str:
    """The portrait (or timeline) of the cached data, derived if absent; a note on how it came."""
    marker = _marker(data, what)
    if marker.exists():
        return "cached"
    console.print(f"deriving the {what} of {data.name} (once; part of neither side) …")
    info = _side("prepare", data, data / f"prepare-{what}.json", what)
    marker.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return f"derived in {info['seconds']:.1f} s, peak RSS {info['rss_mb']:,.0f} MB"


def _paths(data: Path) -> dict[str, str]:
    def current(area: str) -> Path:
        name = (data / "derived" / area / "CURRENT").read_text(encoding="utf-8").strip()
        return data / "derived" / area / "snapshots" / name

    return {
        "tags": str(current("portrait") / "tags.parquet"),
        "records": str(current("identity") / "records.parquet"),
        "lines": str(data / "facts" / "order_line" / "date=*" / "*.parquet"),
    }


# ---------------------------------------------------------------------------------------------------------------
# The sides (each run in a fresh subprocess)
# ---------------------------------------------------------------------------------------------------------------
def run_ours(data: Path) -> dict[str, Any]:
    """A fresh SegmentEngine and its count per segment, as the API answers a live count."""
    from omnicrm.segments.evaluate import SegmentEngine
    from omnicrm.store.derived import DerivedStore
    from omnicrm.store.engine import Engine
    from omnicrm.store.facts import FactsStore

    facts, derived = FactsStore(data / "facts"), DerivedStore(data / "derived")
    rss_start = _rss_mb()
    SegmentEngine(Engine(facts), derived, now=AS_OF).count(text="frequency > 1000000")  # warm-up, not timed
    out = []
    for segment in SEGMENTS:
        started = time.perf_counter()
        count = SegmentEngine(Engine(facts), derived, now=AS_OF).count(text=segment.text)
        out.append({"name": segment.name, "seconds": time.perf_counter() - started, "count": count})
    return {"segments": out, "rss_mb": _rss_mb(), "rss_start_mb": rss_start}


def _connect() -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute("SET TimeZone = 'UTC'")
    return con


def run_sql(data: Path) -> dict[str, Any]:
    """A fresh DuckDB connection and the analyst's query per segment."""
    paths = _paths(data)
    rss_start = _rss_mb()
    con = _connect()  # warm-up, not timed
    con.execute(f"SELECT count(*) FROM read_parquet('{paths['tags']}') WHERE frequency > 1000000").fetchone()
    con.close()
    out = []
    for segment in SEGMENTS:
        sql = segment.sql.format(**paths)
        started = time.perf_counter()
        con = _connect()
        row = con.execute(sql).fetchone()
        con.close()
        assert row is not None
        out.append({"name": segment.name, "seconds": time.perf_counter() - started, "count": int(row[0])})
    return {"segments": out, "rss_mb": _rss_mb(), "rss_start_mb": rss_start}


def _side(side: str, data: Path, result: Path, what: str = "") -> dict[str, Any]:
    """Run one side in a fresh interpreter (its own peak RSS, nothing cached from the other side)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--side", side, "--data", str(data), "--result", str(result)]
    if what:
        cmd += ["--what", what]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return dict(json.loads(result.read_text(encoding="utf-8")))


# ---------------------------------------------------------------------------------------------------------------
# Segments: the race
# ---------------------------------------------------------------------------------------------------------------
def bench_segments(data: Path, rounds: int, console: Console) -> bool:
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    results = data / "results"
    results.mkdir(exist_ok=True)
    for i in range(rounds):
        for side in SIDES if i % 2 == 0 else SIDES[::-1]:
            run = _side(side, data, results / f"segments-{side}.json")
            runs[side].append(run)
            total = sum(s["seconds"] for s in run["segments"])
            console.print(
                f"  round {i + 1}/{rounds} {side:4}: {total:7.2f} s for {len(SEGMENTS)} counts, "
                f"peak RSS {run['rss_mb']:,.0f} MB"
            )
    # equality, every segment, every round
    wrong = []
    for k, segment in enumerate(SEGMENTS):
        seen = {(side, r["segments"][k]["count"]) for side, rs in runs.items() for r in rs}
        if len({n for _, n in seen}) != 1:
            wrong.append(f"{segment.name}: {sorted(seen)}")
    table = Table(title=f"Segment counts, ours / hand-written DuckDB SQL (best of {rounds} interleaved rounds)")
    for col in ("segment", "count", "ours s", "SQL s", "ratio", "median ratio", "target", "pass"):
        table.add_column(col, justify="left" if col == "segment" else "right")
    ratios = []
    for k, segment in enumerate(SEGMENTS):
        ours = [r["segments"][k]["seconds"] for r in runs["ours"]]
        sql = [r["segments"][k]["seconds"] for r in runs["sql"]]
        ratio = min(ours) / min(sql)
        median = statistics.median(ours) / statistics.median(sql)
        ratios.append(ratio)
        count = runs["ours"][-1]["segments"][k]["count"]
        equal = not any(w.startswith(f"{segment.name}:") for w in wrong)
        table.add_row(
            segment.name,
            f"{count:,}" if equal else "[red]DIFFERS[/]",
            f"{min(ours):.3f}",
            f"{min(sql):.3f}",
            f"{ratio:.2f}",
            f"{median:.2f}",
            f"<= {TARGET}",
            "[green]PASS[/]" if ratio <= TARGET and equal else "[red]FAIL[/]",
        )
    geomean = math.exp(statistics.fmean(math.log(r) for r in ratios))
    table.add_section()
    table.add_row("geometric mean", "", "", "", f"{geomean:.2f}", "", f"<= {TARGET}", "")
    console.print(table)
    for segment in SEGMENTS:
        console.print(f"  [bold]{segment.name}[/]: {segment.what}\n    {segment.text}")
    for side, rs in runs.items():
        console.print(
            f"  {side}: peak RSS {max(r['rss_mb'] for r in rs):,.0f} MB "
            f"(after imports {max(r['rss_start_mb'] for r in rs):,.0f} MB); rounds (s, all counts): "
            f"{[round(sum(s['seconds'] for s in r['segments']), 2) for r in rs]}"
        )
    if wrong:
        console.print("[red bold]COUNTS DIFFER between ours and the SQL:[/]")
        for w in wrong:
            console.print(f"  [red]{w}[/]")
        return False
    console.print(f"  counts: ours = SQL for all {len(SEGMENTS)} segments in all {rounds} rounds")
    zero = [s.name for k, s in enumerate(SEGMENTS) if runs["ours"][-1]["segments"][k]["count"] == 0]
    if zero:
        console.print(f"  [yellow]segments with no members (the comparison says little): {', '.join(zero)}[/]")
    return all(r <= TARGET for r in ratios)


# ---------------------------------------------------------------------------------------------------------------
# Customer 360
# ---------------------------------------------------------------------------------------------------------------
def _routes(data: Path) -> set[str]:
    """The paths the app serves: its OpenAPI paths, and the paths of its routes (pages are not in the schema)."""
    from omnicrm.api.app import create_app
    from omnicrm.settings import load_settings

    app = create_app(load_settings(data_dir=data, loader_interval_seconds=0, log_level="WARNING"))
    found = set(app.openapi().get("paths", {}))

    def walk(routes: Sequence[Any]) -> None:
        for route in routes:
            if isinstance(getattr(route, "path", None), str):
                found.add(route.path)
            inner = getattr(route, "original_router", None) or route
            if getattr(inner, "routes", None) is not None and inner is not app.router:
                walk(inner.routes)

    walk(app.routes)
    return found


def _console_login(client: Any, state: Any) -> str | None:
    """Log the client in to the console as a marketer (made once per data folder); None, or why it could not."""
    import contextlib
    import re

    from omnicrm.access.users import create_user
    from omnicrm.errors import Conflict

    with contextlib.suppress(Conflict):  # made by an earlier run
        create_user(state, CONSOLE_USER, CONSOLE_PASSWORD, "marketer")
    form = client.get("/console/login")
    token = re.search(r'name="login_token"\s+value="([^"]+)"', form.text) or re.search(
        r'value="([^"]+)"\s+name="login_token"', form.text
    )
    if token is None:
        return f"no log-in form (status {form.status_code})"
    data = {"username": CONSOLE_USER, "password": CONSOLE_PASSWORD, "login_token": token.group(1)}
    done = client.post("/console/login", data=data, follow_redirects=False)
    if done.status_code != 303:
        return f"log-in answered {done.status_code}"
    return None


def run_c360(data: Path, requests: int, seed: int, console_page: bool) -> dict[str, Any]:
    """``requests`` random customers' 360 through the API (and the console page), in process; times in ms."""
    import numpy as np
    import pyarrow.parquet as pq
    from fastapi.testclient import TestClient
    from starlette.requests import Request

    from omnicrm.access.api_keys import create_api_key
    from omnicrm.api.app import create_app
    from omnicrm.settings import load_settings
    from omnicrm.store.state import StateStore

    settings = load_settings(data_dir=data, loader_interval_seconds=0, log_level="WARNING")
    state = StateStore(settings.state_database_url, migrate=False)
    key = create_api_key(state, "benchmark-360", ["customers:read"])
    ids = pq.read_table(_paths(data)["tags"], columns=["customer_id"])["customer_id"].to_numpy()
    rng = np.random.default_rng(seed)
    chosen = [int(c) for c in rng.choice(np.sort(ids), size=requests + 5, replace=False)]
    app = create_app(settings)
    server: dict[str, list[float]] = {"api": [], "page": []}

    @app.middleware("http")
    async def timed(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        kind = "page" if request.url.path.startswith("/console/customers/") else "api"
        server[kind].append(time.perf_counter() - started)
        return response

    rss_start = _rss_mb()
    out: dict[str, Any] = {}
    # https: the console's cookies are Secure
    with TestClient(app, base_url="https://testserver") as client:
        targets = {"api": ("/api/customers/{}/360", {"Authorization": f"Bearer {key}"})}
        if console_page:
            why = _console_login(client, state)
            if why is None:
                targets["page"] = ("/console/customers/{}", {})
            else:
                out["page_skipped"] = why
        for kind, (path, headers) in targets.items():
            for customer in chosen[:5]:  # warm-up, not timed
                client.get(path.format(customer), headers=headers).raise_for_status()
            server[kind].clear()
            client_times, sizes, rows = [], [], []
            for customer in chosen[5:]:
                started = time.perf_counter()
                response = client.get(path.format(customer), headers=headers)
                client_times.append(time.perf_counter() - started)
                response.raise_for_status()
                sizes.append(len(response.content))
                if kind == "api":
                    timeline = response.json().get("timeline")
                    listed = timeline.get("rows") if isinstance(timeline, dict) else timeline
                    rows.append(len(listed) if isinstance(listed, list) else 0)
            out[kind] = {
                "server_ms": [t * 1000 for t in server[kind]],
                "client_ms": [t * 1000 for t in client_times],
                "bytes": sizes,
                "timeline_rows": rows,
            }
    state.dispose()
    return out | {"rss_mb": _rss_mb(), "rss_start_mb": rss_start}


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def bench_c360(data: Path, requests: int, seed: int, console: Console) -> bool | None:
    routes = _routes(data)
    if C360_ROUTE not in routes:
        console.print(f"[yellow]customer 360: the route GET {C360_ROUTE} does not exist yet; skipped[/]")
        return None
    from importlib.util import find_spec

    if find_spec("omnicrm.customers.timeline") is not None:
        console.print(f"  timeline: {ensure_derived(data, 'timeline', console)}")
    page = CONSOLE_ROUTE in routes
    run = _side("c360", data, data / "results" / "c360.json", f"{requests}:{seed}:{int(page)}")
    table = Table(title=f"Customer 360: {requests} random customers each, in process through TestClient (ms)")
    for col in ("request", "measured", "p50", "p95", "max", "mean"):
        table.add_column(col, justify="left" if col in ("request", "measured") else "right")
    for kind, title in (("api", f"GET {C360_ROUTE}"), ("page", f"GET {CONSOLE_ROUTE}")):
        if kind not in run:
            continue
        for name, values in (("server", run[kind]["server_ms"]), ("client", run[kind]["client_ms"])):
            table.add_row(
                title if name == "server" else "",
                name,
                f"{_quantile(values, 0.5):.1f}",
                f"{_quantile(values, 0.95):.1f}",
                f"{max(values):.1f}",
                f"{statistics.fmean(values):.1f}",
            )
        table.add_section()
    console.print(table)
    api = run["api"]
    console.print(
        "  server: from a middleware around the app (routing, authentication, the view, the response); client: the"
        " whole TestClient call"
    )
    console.print(
        f"  API responses: median {statistics.median(api['bytes']):,.0f} bytes, timeline rows on the first page "
        f"median {statistics.median(api['timeline_rows']):.0f} (max {max(api['timeline_rows'])}); peak RSS "
        f"{run['rss_mb']:,.0f} MB (after start {run['rss_start_mb']:,.0f} MB)"
    )
    if not page:
        console.print(f"  [yellow]the console page GET {CONSOLE_ROUTE} does not exist yet; not timed[/]")
    elif "page" not in run:
        console.print(f"  [yellow]the console page was not timed: {run.get('page_skipped')}[/]")
    return True


# ---------------------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000, help="synthetic customers")
    parser.add_argument("--orders", type=int, default=20_000_000, help="synthetic order lines")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic data and of the 360 sample")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the segments race (best of)")
    parser.add_argument("--requests", type=int, default=200, help="customer-360 requests (random customers)")
    parser.add_argument("--only", choices=("segments", "c360", "all"), default="all")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where the generated data are cached")
    parser.add_argument("--side", choices=(*SIDES, "prepare", "c360"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--what", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        if args.side == "prepare":
            out = prepare(args.data, args.what)
        elif args.side == "c360":
            requests, seed, page = (int(x) for x in args.what.split(":"))
            out = run_c360(args.data, requests, seed, bool(page))
        else:
            out = run_ours(args.data) if args.side == "ours" else run_sql(args.data)
        args.result.write_text(json.dumps(out, default=str), encoding="utf-8")
        return 0

    console = Console(width=None if sys.stdout.isatty() else 150)
    args.workdir.mkdir(parents=True, exist_ok=True)
    data, info, gen_seconds = ensure_data(args.workdir, args.customers, args.orders, args.seed)
    assert data == data_dir(args.workdir, args.customers, args.orders, args.seed)
    gen = f"generated in {gen_seconds:.1f} s" if gen_seconds is not None else "cached"
    console.print(
        f"data: {info['customers']:,} customers, {info['orders']:,} orders, {info['order_lines']:,} order lines "
        f"(+{info['reexported_lines']:,} re-exported), as of {AS_OF:%Y-%m-%d %H:%M} UTC — {gen} ({data})"
    )
    console.print(f"  portrait: {ensure_derived(data, 'portrait', console)}")
    ok = True
    if args.only in ("segments", "all"):
        ok = bench_segments(data, max(1, args.rounds), console) and ok
    if args.only in ("c360", "all"):
        ok = bench_c360(data, args.requests, args.seed, console) is not False and ok
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
