"""Whole-file import errors: each names the file, says what is wrong and what to run instead."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa

from omnicrm.errors import ImportFileError, InputError
from omnicrm.ingest.importer import ImportSummary, import_file
from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import import_files, quarantine
from omnicrm.store.state import StateStore

FIXTURES = Path(__file__).parents[1] / "fixtures" / "imports"
TMALL = FIXTURES / "tmall_orders.csv"


def run(state: StateStore, facts: FactsStore, source: str, path: Path, kind: str, **kw: Any) -> ImportSummary:
    return import_file(state, facts, source=source, path=path, kind=kind, progress=False, **kw)


def order_lines(facts: FactsStore) -> list[tuple[Any, ...]]:
    if not facts.files("order_line"):
        return []
    return duckdb.sql(
        f"SELECT buyer_name, product_name, source_line FROM read_parquet('{facts.glob('order_line')}') "
        "ORDER BY source_line"
    ).fetchall()


def no_imports(state: StateStore) -> bool:
    with state.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(import_files)).scalar_one() == 0


def test_a_gbk_file_is_refused_with_advice_then_read_with_encoding_gbk(
    sqlite_state: StateStore, facts: FactsStore, tmp_path: Path
) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(TMALL.read_text(encoding="utf-8").encode("gbk"))
    with pytest.raises(ImportFileError) as caught:
        run(sqlite_state, facts, "tmall", path, "orders")
    assert str(caught.value) == (
        "orders.csv is not UTF-8 (looks like GBK/GB18030, common in Tmall/JD exports); run again with --encoding gbk"
    )
    assert no_imports(sqlite_state) and facts.files("order_line") == []

    summary = run(sqlite_state, facts, "tmall", path, "orders", encoding="gbk")
    assert (summary.rows_accepted, summary.rows_quarantined) == (4, 0)
    assert order_lines(facts)[0] == ("张伟", "羊毛连衣裙 2026秋冬新款, 女", 2)
    assert run(sqlite_state, facts, "tmall", path, "orders", encoding="gbk").status == "already_imported"


def test_gbk_cannot_hold_every_character_gb18030_can(
    sqlite_state: StateStore, facts: FactsStore, tmp_path: Path
) -> None:
    path = tmp_path / "orders.csv"
    text = TMALL.read_text(encoding="utf-8").replace("张伟", "张𠀀")  # an extension-B character
    path.write_bytes(text.encode("gb18030"))
    with pytest.raises(ImportFileError, match=r"^orders\.csv is not valid gbk: undecodable bytes at byte offset "):
        run(sqlite_state, facts, "tmall", path, "orders", encoding="gbk")
    with pytest.raises(ImportFileError, match=r"try --encoding gb18030$"):
        run(sqlite_state, facts, "tmall", path, "orders", encoding="gbk")
    run(sqlite_state, facts, "tmall", path, "orders", encoding="gb18030")
    assert order_lines(facts)[0][0] == "张𠀀"


def test_utf16_is_recognised(sqlite_state: StateStore, facts: FactsStore, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(TMALL.read_text(encoding="utf-8").encode("utf-16"))
    with pytest.raises(ImportFileError) as caught:
        run(sqlite_state, facts, "tmall", path, "orders")
    assert str(caught.value) == (
        "orders.csv is not UTF-8 (looks like UTF-16, as Excel saves 'Unicode text'); run again with --encoding utf-16"
    )
    assert run(sqlite_state, facts, "tmall", path, "orders", encoding="utf-16").rows_accepted == 4


def test_a_stray_line_in_another_encoding_is_quarantined(
    sqlite_state: StateStore, facts: FactsStore, tmp_path: Path
) -> None:
    header, row = TMALL.read_bytes().splitlines()[:2]
    rows = [row.replace(b"3861029384756102938-1", f"X{i}".encode()) for i in range(200)]
    rows[99] = row.decode("utf-8").encode("gbk")  # line 101
    path = tmp_path / "orders.csv"
    path.write_bytes(b"\n".join([header, *rows]) + b"\n")
    summary = run(sqlite_state, facts, "tmall", path, "orders")
    assert (summary.rows_total, summary.rows_accepted, summary.rows_quarantined) == (200, 199, 1)
    with sqlite_state.connect() as conn:
        line, reason = conn.execute(sa.select(quarantine.c.line, quarantine.c.reason)).one()
    assert (line, reason) == (101, "cannot read this row: it is not valid UTF-8 (a line in another encoding?)")


def test_a_utf8_bom_is_accepted(sqlite_state: StateStore, facts: FactsStore, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(codecs.BOM_UTF8 + TMALL.read_bytes())
    summary = run(sqlite_state, facts, "tmall", path, "orders")
    assert (summary.rows_accepted, summary.rows_quarantined) == (4, 0)
    assert order_lines(facts)[0][2] == 2


def test_missing_columns_are_listed_with_what_was_found(
    sqlite_state: StateStore, facts: FactsStore, tmp_path: Path
) -> None:
    path = tmp_path / "jd.csv"
    text = (FIXTURES / "jd_orders.csv").read_text(encoding="utf-8")
    path.write_text(text.replace("订购数量", "数量").replace("下单时间,", "下单日期,"), encoding="utf-8")
    with pytest.raises(ImportFileError) as caught:
        run(sqlite_state, facts, "jd", path, "orders")
    assert str(caught.value) == (
        "jd.csv is missing 2 column(s) that mapping 'jd_orders' needs: 订购数量 (did you mean '数量'?), 下单时间. "
        "Columns found: 订单号, 商品编号, 商品名称, 一级分类, 品牌, 颜色, 尺码, 数量, 京东价, 优惠金额, 应付金额, "
        "退款金额, 下单帐号, 客户姓名, 联系电话, 客户地址, 订单状态, 促销活动, 下单日期, 付款确认时间, 退款时间. "
        "Check that the file is a jd_orders export with its header row, or choose another mapping with --mapping."
    )
    assert no_imports(sqlite_state)


def test_optional_columns_may_be_absent(sqlite_state: StateStore, facts: FactsStore, tmp_path: Path) -> None:
    path = tmp_path / "tmall.csv"
    lines = TMALL.read_text(encoding="utf-8").splitlines()
    cut = [",".join(c for i, c in enumerate(line.split(",")) if i != 8) for line in lines[:1]]  # drop 类目
    path.write_text("\n".join([cut[0], *(line.replace(",连衣裙,", ",") for line in lines[1:2])]) + "\n")
    summary = run(sqlite_state, facts, "tmall", path, "orders")
    assert summary.rows_accepted == 1


def test_empty_and_header_only_files(sqlite_state: StateStore, facts: FactsStore, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ImportFileError) as caught:
        run(sqlite_state, facts, "tmall", empty, "orders")
    assert str(caught.value) == "empty.csv is empty; nothing to import"
    blank = tmp_path / "blank.csv"
    blank.write_bytes(codecs.BOM_UTF8 + b"\r\n\r\n")
    with pytest.raises(ImportFileError, match=r"^blank\.csv is empty; nothing to import$"):
        run(sqlite_state, facts, "tmall", blank, "orders")
    header_only = tmp_path / "header.csv"
    header_only.write_text(TMALL.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    summary = run(sqlite_state, facts, "tmall", header_only, "orders")
    assert (summary.status, summary.rows_total) == ("imported", 0)


def test_mapping_errors(sqlite_state: StateStore, facts: FactsStore, tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        run(sqlite_state, facts, "tmall", TMALL, "orders", mapping="tmall")
    assert str(caught.value).startswith(
        "unknown mapping 'tmall'; did you mean 'tmall_orders'? shipped mappings: cdnow,"
    )
    with pytest.raises(InputError) as caught:
        run(sqlite_state, facts, "tmall", TMALL, "customers", mapping="tmall_orders")
    assert str(caught.value) == (
        "mapping 'tmall_orders' imports orders, not customers; run with --kind orders, "
        "or use a mapping for customers (febrl, members, wechat_followers)"
    )
    with pytest.raises(InputError) as caught:
        run(sqlite_state, facts, "acme", TMALL, "orders")
    assert str(caught.value) == (
        "no mapping for source 'acme' (orders): pass --mapping with a shipped mapping "
        "(cdnow, jd_orders, pos_sales, tmall_orders) or the path of a .toml mapping file"
    )
    with pytest.raises(InputError, match=r"^unknown kind 'order'; use one of orders, customers, events, messages$"):
        run(sqlite_state, facts, "tmall", TMALL, "order")
    with pytest.raises(InputError) as caught:
        run(sqlite_state, facts, "wechat", FIXTURES / "wechat_followers.csv", "customers", params={"app_id": "x"})
    assert str(caught.value) == "mapping 'wechat_followers' has no parameter app_id (it declares: appid)"


def test_file_errors(sqlite_state: StateStore, facts: FactsStore, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(ImportFileError) as caught:
        run(sqlite_state, facts, "tmall", missing, "orders")
    assert str(caught.value) == f"{missing} does not exist or is not a file"
    with pytest.raises(InputError, match=r"^unknown encoding 'klingon'"):
        run(sqlite_state, facts, "tmall", TMALL, "orders", encoding="klingon")
    with pytest.raises(InputError, match=r"^source 'my shop' must be 1-64 letters"):
        run(sqlite_state, facts, "my shop", TMALL, "orders", mapping="tmall_orders")


def test_a_parquet_export_goes_through_the_same_mapping(
    sqlite_state: StateStore, facts: FactsStore, tmp_path: Path
) -> None:
    parquet = tmp_path / "pos.parquet"
    duckdb.execute(
        f"COPY (SELECT * FROM read_csv('{FIXTURES / 'pos_sales.csv'}', all_varchar=true)) TO '{parquet}' (FORMAT parquet)"
    )
    mapping = tmp_path / "pos_parquet.toml"
    shipped = Path(__file__).parents[2] / "src" / "omnicrm" / "ingest" / "mappings" / "pos_sales.toml"
    mapping.write_text(shipped.read_text(encoding="utf-8").replace('type = "csv"', 'type = "parquet"'))
    summary = run(sqlite_state, facts, "pos", parquet, "orders", mapping=mapping)
    assert (summary.rows_accepted, summary.rows_quarantined) == (3, 0)
