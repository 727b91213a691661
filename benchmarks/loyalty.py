"""Loyalty benchmark: redemptions per second on SQLite and PostgreSQL, against the minimal SQL on the same database.

Three operations, each from ``--workers`` threads of one process sharing one StateStore, and from ``--workers``
``spawn`` processes each opening its own StateStore on the same database:
- points: ``ledger.spend`` of 1-4 points from one member holding enough for every request (five lots to draw from);
- coupons: ``coupon_redemptions.redeem`` at the till, each of ``--requests`` coupons once;
- stored value: ``stored_value.spend`` of 1-20 fen from one member's balance (three top-ups, paid and bonus).
Each request is one transaction holding the member's (or the coupon's) lock, with an idempotency key.

Baseline, in the same run on the same database through the same engine (the same durability: SQLite WAL with
``synchronous=FULL`` and ``BEGIN IMMEDIATE``, PostgreSQL with fsync): the raw minimal SQL of a redemption, one
transaction of ``UPDATE bench_accounts SET balance = balance - :n WHERE id = :a AND balance >= :n`` and
``INSERT INTO bench_log``, from the same number of threads or processes against one account row. Ratio = ours per
second / baseline per second (higher is better; the work ours does beyond the baseline — draws, idempotency, the
ledger's checks — is the price of its guarantees).

After every run the invariants are checked from the tables and printed: every request succeeded exactly once, the
balance equals the ledger (points: lots, entries and draws; stored value: entries and buckets; coupons: redeemed ⇔
one standing redemption; baseline: the account's balance equals its starting balance less its log).

Databases: a fresh SQLite file under ``--scratch``; a fresh database on the PostgreSQL server of ``--pg-url``
(default ``$OMNICRM_BENCH_PG_URL``, else ``$OMNICRM_TEST_PG_URL``; skipped, saying so, without one), dropped at the
end. ``--url`` runs on that exact (empty) database instead, for one database of ``--databases``.

Run: ``.venv/bin/python benchmarks/loyalty.py [--requests 2000] [--workers 4] [--databases sqlite,postgresql]
[--pg-url postgresql+psycopg://omnicrm@127.0.0.1:54329/postgres] [--scratch /tmp/omnicrm-bench-loyalty]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from omnicrm.loyalty import stored_value as sv
from omnicrm.loyalty.coupon_redemptions import redeem
from omnicrm.loyalty.coupons import Template, create_template, issue_many
from omnicrm.loyalty.ledger import balance, spend
from omnicrm.store.state import StateStore
from tests.loyalty.checks import T0, check_coupons, check_ledger, check_points_entries_whole, check_stored_value, give

OPS = ("points", "coupons", "stored value")
MODES = ("threads", "processes")
DEFAULT_SCRATCH = Path("/tmp/omnicrm-bench-loyalty")
BASELINE_START = 10**12
STATE: StateStore | None = None  # a process's own store (processes mode)


# ---------------------------------------------------------------------------------------------------------------
# One request of each kind; run in a thread or in a pool process (module level, so 'spawn' children find them)
# ---------------------------------------------------------------------------------------------------------------
def one(state: StateStore, task: tuple[Any, ...]) -> float:
    """Do one request; its seconds. ``task`` = (op, run, i, amount or code)."""
    op, run, i, arg = task
    started = time.perf_counter()
    if op == "points":
        spend(state, 10_000 + run, arg, by="bench", idempotency_key=f"bench-{run}-p-{i}")
    elif op == "coupons":
        redeem(state, arg, channel="store", amount_fen=10_000, order_id=f"bench-{run}-{i}", store_code="B1",
               guide_id=f"g{i % 9}", by="bench")  # fmt: skip
    elif op == "stored value":
        sv.spend(state, 10_000 + run, arg, till=sv.Till("B1", f"bench-{run}-s-{i}", "bench", f"g{i % 9}"))
    else:  # the baseline
        with state.begin() as conn:
            done = conn.execute(
                text("UPDATE bench_accounts SET balance = balance - :n WHERE id = :a AND balance >= :n"),
                {"n": arg, "a": run},
            )
            if done.rowcount != 1:
                raise RuntimeError(f"baseline account {run} refused {arg}")
            conn.execute(text("INSERT INTO bench_log (account_id, amount, request) VALUES (:a, :n, :r)"),
                         {"a": run, "n": arg, "r": f"bench-{run}-{i}"})  # fmt: skip
    return time.perf_counter() - started


def _open(url: str, gate: Any) -> None:
    global STATE
    STATE = StateStore(url, migrate=False)
    with STATE.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    gate.wait(120)


def _ready(_: int) -> int:
    return os.getpid()


def _in_process(task: tuple[Any, ...]) -> float:
    assert STATE is not None
    return one(STATE, task)


# ---------------------------------------------------------------------------------------------------------------
# Setting a run up, running it, checking it
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Result:
    database: str
    op: str
    mode: str
    requests: int
    seconds: float
    latencies: list[float]
    invariants: str

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def prepare(state: StateStore, op: str, run: int, requests: int) -> list[tuple[Any, ...]]:
    """The member, coupons or baseline account of one run, with enough for every request; its tasks."""
    if op == "points":
        for n in range(5):
            give(state, 10_000 + run, 2 * requests, f"bench-{run}-lot-{n}", expires_in_days=None)
        return [("points", run, i, 1 + i % 4) for i in range(requests)]
    if op == "stored value":
        for n, (paid, bonus) in enumerate(((10 * requests, 1_000), (5 * requests, 0), (10 * requests, 500))):
            sv.top_up(state, 10_000 + run, paid, bonus_fen=bonus, till=sv.Till("B1", f"bench-{run}-t{n}", "bench"))
        return [("stored value", run, i, 1 + i % 20) for i in range(requests)]
    if op == "coupons":
        template = f"bench-{run}"
        create_template(state, Template(template, "¥5 off", "amount_off", requests, amount_off_fen=500, valid_days=30),
                        by="bench")  # fmt: skip
        issued = issue_many(state, template, range(100_000, 100_000 + requests), key=template).issued
        return [("coupons", run, i, c.code) for i, c in enumerate(issued)]
    with state.begin() as conn:
        conn.execute(text("INSERT INTO bench_accounts (id, balance) VALUES (:a, :b)"), {"a": run, "b": BASELINE_START})
    return [("baseline", run, i, 1 + i % 20) for i in range(requests)]


def check(state: StateStore, op: str, run: int, tasks: Sequence[tuple[Any, ...]]) -> str:
    """The invariants after a run, from the tables; a line saying what held (an AssertionError when one did not)."""
    asked = sum(t[3] for t in tasks) if op != "coupons" else len(tasks)
    member = 10_000 + run
    if op == "points":
        b = balance(state, member, T0)
        assert b.balance == 5 * 2 * len(tasks) - asked, (b, asked)
        check_ledger(state, member, T0)
        check_points_entries_whole(state, member)
        return f"{len(tasks):,} spends of {asked:,} points, balance {b.balance:,} = Σ entries = lots less draws"
    if op == "stored value":
        left = check_stored_value(state, member)
        assert left == 25 * len(tasks) + 1_500 - asked, (left, asked)
        return f"{len(tasks):,} spends of {asked:,} fen, balance {left:,} fen = Σ entries = buckets less draws"
    if op == "coupons":
        check_coupons(state)
        with state.connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM coupon_redemptions r JOIN coupons c ON c.id = r.coupon_id "
                                  "WHERE c.template_id = :t AND c.status = 'redeemed'"), {"t": f"bench-{run}"}).scalar_one()  # fmt: skip
        assert n == len(tasks), (n, len(tasks))
        return f"{n:,} coupons each redeemed once, every coupon redeemed ⇔ one standing redemption"
    with state.connect() as conn:
        left = conn.execute(text("SELECT balance FROM bench_accounts WHERE id = :a"), {"a": run}).scalar_one()
        logged, rows = conn.execute(
            text("SELECT coalesce(sum(amount), 0), count(*) FROM bench_log WHERE account_id = :a"), {"a": run}
        ).one()
    assert (left, logged, rows) == (BASELINE_START - asked, asked, len(tasks)), (left, logged, rows)
    return f"{rows:,} updates, balance = start less Σ log"


def execute(state: StateStore, pool: Any, workers: int, tasks: Sequence[tuple[Any, ...]],
            advance: Callable[[], None]) -> tuple[float, list[float]]:  # fmt: skip
    """Every task from ``workers`` threads (``pool`` None) or from the process ``pool``; (wall seconds, each
    request's seconds)."""
    latencies = []
    if pool is None:
        with ThreadPoolExecutor(workers) as threads:
            started = time.perf_counter()
            for seconds in threads.map(lambda t: one(state, t), tasks):
                latencies.append(seconds)
                advance()
            return time.perf_counter() - started, latencies
    started = time.perf_counter()
    for seconds in pool.imap(_in_process, tasks, chunksize=4):
        latencies.append(seconds)
        advance()
    return time.perf_counter() - started, latencies


def bench_database(name: str, url: str, requests: int, workers: int, console: Console) -> list[Result]:
    """Every operation in both modes, each run followed by its baseline, on one database; one process pool serves
    every run of the processes mode (started once: 'spawn' takes seconds)."""
    state = StateStore(url)  # migrated here, once
    with state.begin() as conn:
        conn.execute(
            text("CREATE TABLE IF NOT EXISTS bench_accounts (id INTEGER PRIMARY KEY, balance BIGINT NOT NULL)")
        )
        serial = "INTEGER PRIMARY KEY" if state.dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS bench_log (id {serial}, account_id INTEGER NOT NULL, "
                          "amount BIGINT NOT NULL, request VARCHAR(64) NOT NULL UNIQUE)"))  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    run = 0
    with (
        ctx.Pool(workers, initializer=_open, initargs=(url, ctx.Barrier(workers))) as processes,
        Progress(*columns, console=console, transient=True) as progress,
    ):
        processes.map(_ready, range(workers), chunksize=1)  # past the barrier: every process is up and connected
        for op in OPS:
            for mode in MODES:
                for side in (op, "baseline"):
                    run += 1
                    tasks = prepare(state, side, run, requests)
                    bar = progress.add_task(f"{name} {side} ({op}) {mode}", total=len(tasks))
                    pool = processes if mode == "processes" else None
                    seconds, latencies = execute(state, pool, workers, tasks, lambda b=bar: progress.advance(b))
                    held = check(state, side, run, tasks)
                    label = op if side == op else f"{op} baseline"
                    console.print(f"  {name} {label} {mode}: invariants held — {held}")
                    results.append(Result(name, label, mode, len(tasks), seconds, latencies, held))
    state.dispose()
    return results


@contextmanager
def database(name: str, args: argparse.Namespace, console: Console) -> Iterator[str | None]:
    """The URL of a fresh database for ``name`` (dropped or deleted afterwards), or None when there is none."""
    if args.url:
        yield args.url
        return
    if name == "sqlite":
        folder = args.scratch / "sqlite"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        yield f"sqlite:///{folder / 'state.db'}"
        shutil.rmtree(folder, ignore_errors=True)
        return
    if not args.pg_url:
        console.print("[yellow]PostgreSQL skipped: give --pg-url (or set OMNICRM_BENCH_PG_URL)[/]")
        yield None
        return
    db = "bench_loyalty_" + uuid.uuid4().hex[:8]
    admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    try:
        yield make_url(args.pg_url).set(database=db).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


def report(results: list[Result], requests: int, workers: int, console: Console) -> None:
    table = Table(title=f"Redemptions per second: {requests:,} requests from {workers} threads / processes, "
                        "ours against the minimal SQL (UPDATE + INSERT in a transaction) on the same database")  # fmt: skip
    for col in ("database", "operation", "mode", "ours /s", "baseline /s", "ratio", "ours p50 ms", "ours p95 ms",
                "baseline p95 ms"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("database", "operation", "mode") else "right")
    for ours in (r for r in results if not r.op.endswith("baseline")):
        base = next(r for r in results if (r.database, r.op, r.mode) == (ours.database, f"{ours.op} baseline",
                                                                           ours.mode))  # fmt: skip
        q = statistics.quantiles(ours.latencies, n=20) if len(ours.latencies) > 1 else [ours.latencies[0]] * 19
        qb = statistics.quantiles(base.latencies, n=20) if len(base.latencies) > 1 else [base.latencies[0]] * 19
        table.add_row(
            ours.database, ours.op, ours.mode, f"{ours.per_second:,.0f}", f"{base.per_second:,.0f}",
            f"{ours.per_second / base.per_second:.2f}", f"{1000 * statistics.median(ours.latencies):.1f}",
            f"{1000 * q[18]:.1f}", f"{1000 * qb[18]:.1f}",
        )  # fmt: skip
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per operation, mode and side")
    parser.add_argument("--workers", type=int, default=4, help="threads, or processes, sending them")
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("OMNICRM_BENCH_PG_URL") or os.environ.get(
        "OMNICRM_TEST_PG_URL"), help="a PostgreSQL server's URL: the benchmark creates (and drops) a database on it")  # fmt: skip
    parser.add_argument("--url", help="run on this exact, empty database (with one database in --databases)")
    parser.add_argument("--scratch", type=Path, default=DEFAULT_SCRATCH, help="where the SQLite database goes")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.databases.split(",") if n.strip()]
    if any(n not in ("sqlite", "postgresql") for n in names) or (args.url and len(names) != 1):
        parser.error("--databases is sqlite and/or postgresql, and only one of them with --url")
    console = Console(width=None if sys.stdout.isatty() else 150)
    results: list[Result] = []
    for name in names:
        with database(name, args, console) as url:
            if url is not None:
                console.print(f"[bold]{name}[/]: {args.requests:,} requests per run, {args.workers} workers")
                results += bench_database(name, url, args.requests, args.workers, console)
    if results:
        report(results, args.requests, args.workers, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
