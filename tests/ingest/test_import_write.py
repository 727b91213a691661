"""Bulk import fast paths: one COPY per day or one PARTITION_BY, trimming only what needs it, hashing while
reading. Each must give exactly what the plain path gives."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
from rich.console import Console

from omnicrm.ingest import staging
from omnicrm.ingest.importer import ImportSummary, import_file
from omnicrm.ingest.progress import Reporter
from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import import_files, quarantine
from omnicrm.store.state import StateStore

FIXTURES = Path(__file__).parents[1] / "fixtures" / "imports"
TMALL_HEADER = (
    "订单编号,子订单编号,买家会员名,收货人姓名,联系手机,收货地址,商家编码,宝贝标题,类目,品牌,颜色,尺码,购买数量,"
    "价格,优惠金额,实付金额,退款金额,订单状态,活动,订单创建时间,订单付款时间,退款时间"
)


def run(state: StateStore, facts: FactsStore, source: str, path: Path, kind: str, **kw: Any) -> ImportSummary:
    return import_file(state, facts, source=source, path=path, kind=kind, progress=False, **kw)


def tmall_line(i: int, at: datetime, *, nick: str | None = None, paid: str = "279.00") -> str:
    nick = f"nick{i % 7}" if nick is None else nick
    return (
        f"{9000 + i // 2},{9000 + i // 2}-{i % 2 + 1},{nick},张三,138{i:08d},杭州市 {i}号,SKU{i % 5},"
        f'"连衣裙, 夏季",连衣裙,,,,{1 + i % 3},299.00,20.00,{paid},0,交易成功,,{at:%Y-%m-%d %H:%M:%S},,'
    )


def rows_of(query: str) -> list[tuple[Any, ...]]:
    rel = duckdb.sql(query)
    assert rel is not None
    return rel.fetchall()


def write_orders(path: Path, lines: list[str]) -> Path:
    path.write_text(TMALL_HEADER + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def published(facts: FactsStore, kind: str = "order_line") -> tuple[list[str], list[tuple[Any, ...]]]:
    """Published files (relative, without the batch id) and their rows with the partition, in line order."""
    files = sorted(str(p.relative_to(facts.root)).replace("import-0000000001", "ID") for p in facts.files(kind))
    return files, rows_of(
        f"SELECT * EXCLUDE (ingested_at, ingest_id, filename), regexp_extract(filename, 'date=[^/]+') AS part "
        f"FROM read_parquet('{facts.glob(kind)}', hive_partitioning=true, filename=true) ORDER BY source_line"
    )


def both_ways(
    state_dir: Path, path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[tuple[list[str], list[Any]], tuple[list[str], list[Any]], list[str]]:
    """Import ``path`` once forced through one COPY per day, once through PARTITION_BY; what each wrote."""
    results = []
    used: list[str] = []
    original = staging._copy_facts

    def traced(con: Any, run_one: Any, run_all: Any, *args: Any) -> None:
        def all_(statements: Any, label: str) -> None:
            used.append(f"per-day x{len(statements)}")
            run_all(statements, label)

        def one(sql: str, params: Any, label: str) -> None:
            used.append("partition_by")
            run_one(sql, params, label)

        original(con, one, all_, *args)

    monkeypatch.setattr(staging, "_copy_facts", traced)
    for per_day in (True, False):
        monkeypatch.setattr(staging, "_MIN_DAY_ROWS", 0 if per_day else 10**9)
        monkeypatch.setattr(staging, "_MAX_READ", 10**9)
        where = state_dir / ("per-day" if per_day else "partition")
        state = StateStore(f"sqlite:///{where / 'state.db'}")
        facts = FactsStore(where / "facts")
        summary = run(state, facts, "tmall", path, "orders")
        assert summary.status == "imported"
        results.append(published(facts))
        state.dispose()
    return results[0], results[1], used


def test_one_copy_per_day_writes_what_partition_by_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start = datetime(2026, 11, 10, 20, 0, 0)  # Shanghai time: the UTC days change at 08:00
    lines = [tmall_line(i, start + timedelta(minutes=7 * i)) for i in range(600)]
    lines[100] = tmall_line(100, datetime(2026, 11, 12, 9, 0), paid="abc")  # a bad row is not written
    path = write_orders(tmp_path / "orders.csv", lines)
    per_day, partitioned, used = both_ways(tmp_path, path, monkeypatch)
    assert used == ["per-day x4", "partition_by"]
    assert per_day == partitioned
    files, rows = per_day
    assert files == [f"order_line/date=2026-11-{d}/ID-0.parquet" for d in (10, 11, 12, 13)]
    assert len(rows) == 599 and [r[-1] for r in rows[:2]] == ["date=2026-11-10"] * 2


def test_days_interleaved_through_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each day's COPY filters on the day's times, not only on its stretch of rows."""
    days = [datetime(2026, 1, 1 + d, 12, 0) for d in range(5)]
    lines = [tmall_line(i, days[(i * 7) % 5] + timedelta(seconds=i)) for i in range(300)]
    path = write_orders(tmp_path / "orders.csv", lines)
    per_day, partitioned, used = both_ways(tmp_path, path, monkeypatch)
    assert used == ["per-day x5", "partition_by"]
    assert per_day == partitioned and len(per_day[1]) == 300


def test_which_write_is_chosen(sqlite_state: StateStore, facts: FactsStore, tmp_path: Path) -> None:
    """Large days in time order: a COPY per day; many small or interleaved days: PARTITION_BY."""
    chosen: list[str] = []

    def choose(lines: list[str]) -> str:
        chosen.clear()
        state = StateStore(f"sqlite:///{tmp_path / f'{len(list(tmp_path.iterdir()))}.db'}")
        target = tmp_path / f"facts{len(list(tmp_path.iterdir()))}"
        with pytest.MonkeyPatch.context() as m:
            m.setattr(Reporter, "run_all", lambda self, *args: chosen.append("per-day"))
            original = Reporter.run

            def one(self: Reporter, con: Any, sql: str, params: Any, label: str) -> None:
                if "PARTITION_BY" in sql:
                    chosen.append("partition_by")
                original(self, con, sql, params, label)

            m.setattr(Reporter, "run", one)
            run(state, FactsStore(target), "tmall", write_orders(tmp_path / "orders.csv", lines), "orders")
        state.dispose()
        return chosen[-1]

    start = datetime(2026, 3, 1, 9, 0)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(staging, "_MIN_DAY_ROWS", 500)  # instead of 10,000: smaller files will do
        in_order = [tmall_line(i, start + timedelta(seconds=80 * i)) for i in range(6_000)]  # 6 days
        assert choose(in_order) == "per-day"
        interleaved = sorted(in_order, key=lambda line: int(line.split(",", 1)[0]) % 10)
        assert choose(interleaved) == "partition_by"  # each day spread through the whole file
        many_days = [tmall_line(i, start + timedelta(hours=2 * i)) for i in range(6_000)]  # 12 rows a day
        assert choose(many_days) == "partition_by"
        old = [tmall_line(i, datetime(1969, 12, 31, 9, 0) + timedelta(seconds=i)) for i in range(6_000)]
        assert choose(old) == "partition_by"  # before 1970


BLANKS = [" ", "\t", "\u00a0", "\u3000", "\ufeff"]


def test_values_are_trimmed_only_where_needed(sqlite_state: StateStore, facts: FactsStore, tmp_path: Path) -> None:
    at = datetime(2026, 5, 1, 10, 0)
    lines = [tmall_line(i, at) for i in range(40)]
    for i, blank in enumerate(BLANKS):  # blanks around the nick and the amount of a few rows
        lines[i] = tmall_line(i, at, nick=f"{blank}nick{blank}", paid=f'"{blank}¥1,234.50{blank}"')
    lines[10] = tmall_line(10, at, nick=" \u3000 ")  # only blanks: missing
    path = write_orders(tmp_path / "orders.csv", lines)
    summary = run(sqlite_state, facts, "tmall", path, "orders")
    assert (summary.rows_accepted, summary.rows_quarantined) == (39, 1)
    rows = rows_of(
        f"SELECT source_line, marketplace_nick, paid_amount, address FROM read_parquet('{facts.glob('order_line')}') "
        "ORDER BY source_line"
    )
    assert [r[1] for r in rows[:5]] == ["nick"] * 5
    assert {str(r[2]) for r in rows[:5]} == {"1234.50"} and str(rows[5][2]) == "279.00"
    assert rows[5][3] == "杭州市 5号"  # inner blanks stay
    with sqlite_state.connect() as conn:
        bad = conn.execute(sa.select(quarantine.c.line, quarantine.c.field, quarantine.c.reason)).all()
    assert [tuple(b) for b in bad] == [(12, "marketplace_nick", "required value missing")]


def test_reimporting_content_that_no_longer_reads_is_still_a_no_op(
    sqlite_state: StateStore, facts: FactsStore, tmp_path: Path
) -> None:
    """The file is read while it is hashed; an import of known content stops at the hash, whatever else fails."""
    first = run(sqlite_state, facts, "tmall", FIXTURES / "tmall_orders.csv", "orders")
    again = run(sqlite_state, facts, "tmall", FIXTURES / "tmall_orders.csv", "orders", mapping="jd_orders")
    assert (again.status, again.import_id, again.rows_accepted) == ("already_imported", first.import_id, 4)
    assert again.sha256 == first.sha256 and len(first.sha256) == 64
    with sqlite_state.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(import_files)).scalar_one() == 1


def test_reimporting_a_transcoded_file(sqlite_state: StateStore, facts: FactsStore, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes((FIXTURES / "tmall_orders.csv").read_text(encoding="utf-8").encode("gbk"))
    first = run(sqlite_state, facts, "tmall", path, "orders", encoding="gbk")
    assert first.status == "imported"
    for encoding in ("gbk", None):  # without the encoding too: known content is not even checked
        again = run(sqlite_state, facts, "tmall", path, "orders", encoding=encoding)
        assert (again.status, again.import_id, again.sha256) == ("already_imported", first.import_id, first.sha256)


def test_progress_bars(sqlite_state: StateStore, facts: FactsStore, tmp_path: Path) -> None:
    start = datetime(2026, 3, 1, 9, 0)
    path = write_orders(tmp_path / "orders.csv", [tmall_line(i, start + timedelta(seconds=i)) for i in range(20_000)])
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=False)
    summary = import_file(
        sqlite_state, facts, source="tmall", path=path, kind="orders", mapping="tmall_orders", console=console
    )
    assert summary.rows_accepted == 20_000
    text = out.getvalue()
    for stage in ("hashing", "reading", "validating", "writing facts"):
        assert stage in text


def test_run_all_runs_every_statement_and_reports_the_first_failure(tmp_path: Path) -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT range AS x FROM range(1000)")
    statements = [
        (f"COPY (SELECT x FROM t WHERE x % 5 = $1) TO '{tmp_path / f'{i}.parquet'}' (FORMAT parquet)", [i])
        for i in range(5)
    ]
    setting = f"COPY (SELECT current_setting('TimeZone') AS tz) TO '{tmp_path / 'tz.csv'}' (HEADER false)"
    with Reporter(False) as rep:
        rep.run_all(con, [*statements, (setting, [])], "writing", 2, "SET TimeZone = 'Asia/Tokyo'")
    assert (tmp_path / "tz.csv").read_text().strip() == "Asia/Tokyo"  # cursors get the session settings
    (tmp_path / "tz.csv").unlink()
    assert rows_of(f"SELECT count(*), sum(x) FROM read_parquet('{tmp_path}/*.parquet')") == [(1000, 499500)]
    with Reporter(True, Console(file=io.StringIO())) as rep, pytest.raises(duckdb.Error, match="no_such_table"):
        rep.run_all(con, [*statements, ("SELECT * FROM no_such_table", [])], "writing", 2)
    con.close()
