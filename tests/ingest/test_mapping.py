"""Import mappings: shipped ones load, broken ones report every problem at once, names resolve."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from omnicrm.errors import ConfigError, InputError
from omnicrm.ingest.mapping import (
    column_type,
    default_mapping_name,
    load_mapping,
    parse_mapping,
    shipped_mappings,
)

SHIPPED = [
    "cdnow",
    "febrl",
    "jd_orders",
    "members",
    "messages",
    "pos_sales",
    "segment_events",
    "tmall_orders",
    "wechat_followers",
]


def test_every_shipped_mapping_loads() -> None:
    assert shipped_mappings() == SHIPPED
    kinds = {name: load_mapping(name).kind for name in SHIPPED}
    assert kinds == {
        "cdnow": "orders",
        "febrl": "customers",
        "jd_orders": "orders",
        "members": "customers",
        "messages": "messages",
        "pos_sales": "orders",
        "segment_events": "events",
        "tmall_orders": "orders",
        "wechat_followers": "customers",
    }


def test_jd_mapping_reads_the_simulator_header() -> None:
    jd = load_mapping("jd_orders")
    assert jd.fact_kind == "order_line"
    assert set(jd.source_columns()) <= {
        "订单号", "商品编号", "商品名称", "一级分类", "品牌", "颜色", "尺码", "订购数量", "京东价", "优惠金额",
        "应付金额", "退款金额", "下单帐号", "客户姓名", "联系电话", "客户地址", "订单状态", "促销活动",
        "下单时间", "付款确认时间", "退款时间",
    }  # fmt: skip
    assert jd.columns["line_no"].op == "line_no"
    assert {"order_id", "line_no", "created_at", "marketplace_nick"} <= jd.required


def test_a_broken_mapping_reports_all_its_problems_with_keys(tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    path.write_text(
        """
kind = "orders"
timezone = "Mars/Olympus"
required = ["colour"]

[format]
type = "xlsx"

[columns]
order_id = "订单号"
line_no = { line_no = "订单号", fromats = ["%Y"] }
created_at = { col = "下单时间", formats = ["yyyy-mm-dd"] }
quantity = { col = "数量", formats = ["%Y"] }
gender = "性别"
ingest_id = { const = "x" }
status = { col = "状态", map = "done" }
promotion = { col = "活动", regexp = "([" }
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_mapping(path)
    err = caught.value
    assert err.message == f"mapping {path} has 10 problem(s)"
    got = {(p.field, p.reason) for p in err.problems}
    assert ("timezone", "unknown time zone 'Mars/Olympus' (use an IANA name such as Asia/Shanghai)") in got
    assert ("format.type", "'xlsx' is not one of csv, jsonl, parquet, whitespace") in got
    assert ("columns.line_no.fromats", "unknown key 'fromats' — did you mean 'formats'?") in got
    assert (
        "columns.created_at.formats",
        "'yyyy-mm-dd' is neither a strftime pattern nor one of iso, unix, unix_ms",
    ) in got
    assert ("columns.quantity.formats", "formats apply to timestamp and date values; this value is int") in got
    assert ("columns.gender", "'gender' is not a column of orders facts — did you mean 'sender'?") not in got
    assert any(f == "columns.gender" and r.startswith("'gender' is not a column of orders facts") for f, r in got)
    assert ("columns.ingest_id", "'ingest_id' is filled by the importer; map source_key at the top level") in got
    assert ("columns.status.map", 'must be a table of "source value" = "fact value" ("" for no value)') in got
    assert any(f == "columns.promotion.regexp" and r.startswith("not a valid regular expression") for f, r in got)
    assert ("required", "'colour' is required but not mapped in [columns]") in got
    assert str(err).startswith(f"mapping {path} has 10 problem(s)\n  - field 'timezone': unknown time zone")


def test_non_null_fact_columns_must_be_mapped() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_mapping({"kind": "orders", "format": {"type": "csv"}, "columns": {"order_id": "id"}}, "t.toml")
    fields = [p.field for p in caught.value.problems]
    assert fields == ["columns.line_no", "columns.created_at"]


def test_expression_checks() -> None:
    data = tomllib.loads(
        """
kind = "events"
[format]
type = "csv"
[columns]
message_id = { col = "id", const = "x" }
type = { path = "$.type" }
timestamp = { param = "tz" }
traits = { object = { a = "a" }, trim = true }
"""
    )
    with pytest.raises(ConfigError) as caught:
        parse_mapping(data, "ev.toml")
    got = {(p.field, p.reason) for p in caught.value.problems}
    assert (
        "columns.message_id",
        "needs exactly one of col, const, param, concat, coalesce, line_no, row, now, object, path, json "
        "(found col, const)",
    ) in got
    assert ("columns.type.path", "'path' reads JSON lines; this mapping's format is csv") in got
    assert ("columns.timestamp.param", "unknown parameter 'tz' (declared in [params]: none)") in got
    assert ("columns.traits.trim", "transforms apply to single values, not to an object") in got


def test_unknown_mapping_name_lists_the_shipped_ones() -> None:
    with pytest.raises(InputError) as caught:
        load_mapping("tmall_order")
    assert str(caught.value) == (
        "unknown mapping 'tmall_order'; did you mean 'tmall_orders'? shipped mappings: "
        + ", ".join(SHIPPED)
        + " (or pass the path of a .toml mapping file)"
    )


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("kind = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^mapping .*x\.toml is not valid TOML"):
        load_mapping(path)


@pytest.mark.parametrize(
    ("source", "kind", "expected"),
    [
        ("tmall", "orders", "tmall_orders"),
        ("tmall-flagship", "orders", "tmall_orders"),
        ("JD", "orders", "jd_orders"),
        ("pos-store-3", "orders", "pos_sales"),
        ("wechat", "customers", "wechat_followers"),
        ("members", "customers", "members"),
        ("web", "events", "segment_events"),
        ("service", "messages", "messages"),
        ("acme", "orders", None),
        ("tmall", "customers", None),
    ],
)
def test_default_mapping_by_source(source: str, kind: str, expected: str | None) -> None:
    assert default_mapping_name(source, kind) == expected


def test_column_types_follow_the_fact_schemas() -> None:
    assert column_type("orders", "quantity") == "int"
    assert column_type("orders", "paid_amount") == "decimal"
    assert column_type("orders", "created_at") == "timestamp"
    assert column_type("customers", "birthday") == "date"
    assert column_type("customers", "traits") == "json"
    assert column_type("messages", "text") == "string"
