"""The tag engine on a hand-made merchant whose every tag value can be worked out by hand: six customers
(loyal, one Double 11 order, only refunds, no orders, cross-channel with a search, a clerk's note)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from omnicrm.errors import Conflict, InputError
from omnicrm.identity.explain import lookup
from omnicrm.identity.refresh import refresh_identity
from omnicrm.portrait.explain import customer_tags
from omnicrm.portrait.inputs import PortraitInputs
from omnicrm.portrait.refresh import AREA, catalogue, known_types, refresh_portrait
from omnicrm.portrait.tags.catalogue import BUILTIN
from omnicrm.portrait.tags.compute import compute_tags
from omnicrm.portrait.tags.custom import define_tag, import_manual, set_manual
from omnicrm.portrait.tags.model import TagDefinition
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import SCHEMAS, FactsStore
from omnicrm.store.state import StateStore

AS_OF = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
INGESTED = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
# numbers that are empty by definition for some customers (never bought, no birthday, no model)
MAY_BE_EMPTY = {
    "recency_days", "tenure_days", "purchase_interval_days", "avg_order_value", "avg_unit_price", "birthday_month",
    "member_tenure_days", "r_score", "p_alive", "expected_purchases_30d", "expected_purchases_90d",
    "expected_purchases_365d", "expected_spend", "clv_365d", "repeat_propensity",
}  # fmt: skip


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def write(facts: FactsStore, kind: str, rows: list[dict[str, Any]], batch: str) -> None:
    base = {"source_key": None, "ingest_id": batch, "ingested_at": INGESTED, "source_file": None, "source_line": 1}
    table = pa.Table.from_pylist([base | r for r in rows], schema=SCHEMAS[kind])
    facts.stage_table(kind, table, batch)
    facts.publish(batch)


def line(order: str, phone: str | None, created: str, paid: float, **kw: Any) -> dict[str, Any]:
    money = {k: Decimal(str(kw.pop(k, 0.0))) for k in ("refunded", "discount")}
    return {
        "source": kw.pop("source", "tmall"), "order_id": order, "line_no": kw.pop("line_no", 1), "phone": phone,
        "marketplace_nick": kw.pop("nick", None), "member_card": kw.pop("card", None), "quantity": 1,
        "unit_price": Decimal(str(paid)), "paid_amount": Decimal(str(paid)), "refunded_amount": money["refunded"],
        "discount": money["discount"], "currency": "CNY", "status": "completed", "created_at": ts(created),
        "category": kw.pop("category", "连衣裙"), "brand": "言木", "size": kw.pop("size", "M"),
        "colour": kw.pop("colour", "黑色"), **kw,
    }  # fmt: skip


class Shop:
    def __init__(self, root: Path, state: StateStore) -> None:
        self.state = state
        self.facts = FactsStore(root / "facts")
        self.derived = DerivedStore(root / "derived")
        self.engine = Engine(self.facts)

    def refresh(self, **kw: Any) -> None:
        refresh_identity(self.state, self.engine, self.derived, probabilistic=False)
        refresh_portrait(self.state, self.engine, self.derived, as_of=AS_OF, **kw)

    def customer(self, id_type: str, value: str) -> int:
        ids = lookup(self.derived.current("identity"), id_type, value)
        assert len(ids) == 1, (id_type, value, ids)
        return ids[0]

    def tags(self, customer_id: int) -> dict[str, Any]:
        snap = self.derived.current(AREA)
        assert snap is not None
        cur = duckdb.execute(f"SELECT * FROM '{snap / 'tags.parquet'}' WHERE customer_id = {customer_id}")
        names = [d[0] for d in cur.description or ()]
        return dict(zip(names, cur.fetchall()[0], strict=True))


@pytest.fixture
def shop(tmp_path: Path, sqlite_state: StateStore) -> Shop:
    s = Shop(tmp_path, sqlite_state)
    write(s.facts, "order_line", [
        # A: four purchases this year, the last 36 days ago
        line("A1", "13900000001", "2026-01-10T03:00:00", 500.0),
        line("A2", "13900000001", "2026-04-10T03:00:00", 400.0),
        line("A3", "13900000001", "2026-07-10T03:00:00", 300.0, category="衬衫", size="L"),
        line("A4", "13900000001", "2026-10-20T03:00:00", 600.0, discount=60.0),
        # B: one Double 11 order
        line("B1", "13900000002", "2026-11-05T03:00:00", 250.0, promotion="双11", category="外套"),
        # C: bought and returned everything
        line("C1", "13900000003", "2026-06-01T03:00:00", 300.0, refunded=300.0),
        # E: a till purchase with a member card
        line("E1", None, "2026-09-01T08:00:00", 800.0, source="pos", card="M002", store_code="S001",
             category="外套"),
    ], "import-0000000001")  # fmt: skip
    write(s.facts, "person", [
        {"source": "crm", "source_key": "M001", "member_card": "M001", "name": "林晓", "gender": "女",
         "birthday": dt.date(1990, 5, 20), "province": "浙江省", "city": "杭州市", "observed_at": INGESTED,
         "traits": json.dumps({"joined_at": "2025-11-25T00:00:00Z"}, ensure_ascii=False)},
        {"source": "crm", "source_key": "M002", "member_card": "M002", "name": "周末", "gender": "男",
         "observed_at": INGESTED, "traits": json.dumps({"timezone": "America/Los_Angeles", "locale": "en-US"})},
        {"source": "app", "source_key": "M001", "member_card": "M001", "observed_at": INGESTED,
         "traits": json.dumps({"timezone": "not a zone; DROP TABLE tags"})},
        {"source": "crm", "source_key": "M003", "member_card": "M003", "name": "钱多", "observed_at": INGESTED},
    ], "import-0000000002")  # fmt: skip
    event = {"type": "track", "received_at": INGESTED, "anonymous_id": None, "traits": None, "context": None}
    write(s.facts, "event", [
        event | {"source": "web", "message_id": "e1", "type": "identify", "user_id": "u-e", "event": None,
                 "traits": json.dumps({"member_card": "M002"}, ensure_ascii=False), "timestamp": ts("2026-08-30T10:00:00")},
        event | {"source": "web", "message_id": "e2", "user_id": "u-e", "event": "Products Searched",
                 "properties": json.dumps({"query": "连衣裙 新款"}, ensure_ascii=False), "timestamp": ts("2026-11-22T10:00:00")},
        event | {"source": "web", "message_id": "e3", "user_id": "u-e", "event": "Order Completed",
                 "properties": json.dumps({"order_id": "W1", "revenue": 200.0, "discount": 20.0}, ensure_ascii=False),
                 "timestamp": ts("2026-10-01T10:00:00")},
    ], "loader-0000000003")  # fmt: skip
    msg = {"direction": "inbound", "conversation_key": None, "attachments": None, "store_code": None}
    write(s.facts, "message", [
        msg | {"source": "service", "message_id": "m1", "channel": "clerk_note", "member_card": "M003",
               "text": "喜欢钓鱼，周末常去水库", "sent_at": ts("2026-11-01T09:00:00")},
        msg | {"source": "service", "message_id": "m2", "channel": "wangwang", "marketplace_nick": None,
               "phone": "13900000003", "text": "质量太差了，我要投诉", "sent_at": ts("2026-06-05T09:00:00")},
    ], "import-0000000004")  # fmt: skip
    s.refresh()
    return s


def test_every_customer_has_a_defined_value_of_every_tag(shop: Shop) -> None:
    snap = shop.derived.current(AREA)
    assert snap is not None
    tags = duckdb.sql(f"SELECT * FROM '{snap / 'tags.parquet'}'").to_arrow_table()
    assert tags.num_rows == 6
    assert len(BUILTIN) >= 40
    for d in BUILTIN:
        column = tags[d.id]
        if d.value_type == "number" and d.id in MAY_BE_EMPTY:
            continue
        assert column.null_count == 0, f"{d.id} is empty for some customers"
        if d.values:
            assert set(column.to_pylist()) <= set(d.values), d.id


def test_tag_values_worked_out_by_hand(shop: Shop) -> None:
    a = shop.tags(shop.customer("phone", "13900000001"))
    assert (a["frequency"], a["monetary"], a["recency_days"]) == (4, 1800, 36)
    assert a["lifecycle_stage"] == "active"  # defaults 90/180/365: too few repeat purchases for quantiles
    assert a["preferred_category"] == "连衣裙" and a["top_categories"] == ["连衣裙", "衬衫"]
    assert a["preferred_size"] == "M" and a["repeat_buyer"] is True
    assert a["discount_rate"] == pytest.approx(60 / 1860)
    assert a["channels_used"] == ["marketplace"] and a["cross_channel"] is False

    b = shop.tags(shop.customer("phone", "13900000002"))
    assert b["lifecycle_stage"] == "new" and b["frequency"] == 1
    assert b["acquired_double11"] is True and b["promotion_only"] is True and b["discount_sensitivity"] == "high"

    c = shop.tags(shop.customer("phone", "13900000003"))  # only refunds
    assert (c["frequency"], c["monetary"], c["return_rate"]) == (0, 0, 1.0)
    assert c["lifecycle_stage"] == "prospect" and c["rfm_segment"] == "no_purchase"
    assert c["complaints_90d"] == 0 and c["complainer"] is True  # the complaint is 173 days old

    d = shop.tags(shop.customer("member_card", "M001"))  # no orders
    assert d["lifecycle_stage"] == "prospect" and d["frequency"] == 0 and d["recency_days"] is None
    assert (d["gender"], d["age_band"], d["city"], d["is_member"]) == ("female", "35_39", "杭州市", True)
    assert d["member_tenure_days"] == 365 and d["birthday_month"] == 5
    assert d["timezone"] == "unknown"  # what was declared is not a time zone

    e = shop.tags(shop.customer("member_card", "M002"))
    assert e["frequency"] == 2 and e["channels_used"] == ["store", "web"] and e["online_offline"] == "omni"
    assert e["needs_7d"] == ["连衣裙"] and e["gender"] == "male" and e["timezone"] == "America/Los_Angeles"
    assert e["language"] == "en" and d["language"] == "unknown"

    f = shop.tags(shop.customer("member_card", "M003"))
    assert f["hobbies"] == ["fishing"] and f["top_interest"] == "fishing"


def test_explanations_name_the_inputs(shop: Shop) -> None:
    cid = shop.customer("phone", "13900000001")
    explained = customer_tags(shop.derived.current(AREA), shop.derived.current("identity"), cid, shop.state)
    by_id = {t.id: t for t in explained.tags}
    assert by_id["lifecycle_stage"].inputs["recency_days"] == 36
    assert by_id["monetary"].inputs == {"spend": "1800.00"} or by_id["monetary"].inputs["spend"] == 1800
    assert explained.params["lifecycle_days"] == {"active": 90, "cooling": 180, "dormant": 365}
    assert all(t.computed_at for t in explained.tags)


def test_rule_and_manual_tags(shop: Shop) -> None:
    known = known_types(catalogue(shop.state))
    define_tag(
        shop.state, known, tag_id="vip", name_zh="贵宾", name_en="VIP", value_type="category", by="test",
        rule={"cases": [{"when": {"all": [{"tag": "monetary", "op": ">=", "value": 1000},
                                          {"tag": "lifecycle_stage", "op": "in", "value": ["active", "new"]}]},
                         "then": "gold"}], "else": "regular"},
    )  # fmt: skip
    define_tag(shop.state, known, tag_id="bakes", name_zh="爱烘焙", name_en="Bakes", value_type="bool", by="t")
    d = shop.customer("member_card", "M001")
    set_manual(shop.state, d, "bakes", True, by="clerk", note="asked about the baking class")
    shop.refresh()
    assert shop.tags(shop.customer("phone", "13900000001"))["vip"] == "gold"
    assert shop.tags(shop.customer("phone", "13900000002"))["vip"] == "regular"
    assert shop.tags(d)["bakes"] is True and shop.tags(shop.customer("phone", "13900000002"))["bakes"] is None
    explained = customer_tags(shop.derived.current(AREA), shop.derived.current("identity"), d, shop.state)
    bakes = next(t for t in explained.tags if t.id == "bakes")
    assert bakes.value is True and "clerk" in (bakes.note or "") and "baking class" in (bakes.note or "")
    vip = next(t for t in explained.tags if t.id == "vip")
    assert set(vip.inputs) == {"monetary", "lifecycle_stage"}


def test_bad_rules_are_refused_naming_the_place(shop: Shop) -> None:
    known = known_types(catalogue(shop.state))

    def refused(rule: Any, value_type: str = "bool") -> str:
        with pytest.raises(InputError) as err:
            define_tag(shop.state, known, tag_id="x_tag", name_zh="x", name_en="x", value_type=value_type,
                            rule=rule, by="t")  # fmt: skip
        return str(err.value.as_dict() if hasattr(err.value, "as_dict") else err.value) + repr(err.value.problems)

    assert "unknown tag 'monetry'" in refused({"when": {"tag": "monetry", "op": ">", "value": 1}})
    assert "rule.when.all[1].op" in refused(
        {"when": {"all": [{"tag": "is_member", "op": "is_true"}, {"tag": "gender", "op": ">", "value": "f"}]}}
    )
    assert "must be a number" in refused({"when": {"tag": "monetary", "op": ">", "value": "1000; DROP TABLE"}})
    assert "cases" in refused({"when": {"tag": "is_member", "op": "is_true"}}, "category")
    with pytest.raises(Conflict):
        define_tag(shop.state, known, tag_id="monetary", name_zh="x", name_en="x", value_type="bool",
                        rule={"when": {"tag": "is_member", "op": "is_true"}}, by="t")  # fmt: skip


def test_hostile_text_in_a_rule_is_a_value_not_sql(shop: Shop) -> None:
    known = known_types(catalogue(shop.state))
    hostile = "连衣裙'; DROP TABLE tags; --"
    define_tag(shop.state, known, tag_id="odd", name_zh="x", name_en="x", value_type="bool", by="t",
                    rule={"when": {"tag": "preferred_category", "op": "=", "value": hostile}})  # fmt: skip
    shop.refresh()
    assert shop.tags(shop.customer("phone", "13900000001"))["odd"] is False


def test_manual_import_is_all_or_nothing(shop: Shop, tmp_path: Path) -> None:
    define_tag(shop.state, known_types(catalogue(shop.state)), tag_id="tier", name_zh="等级", name_en="Tier",
                      value_type="number", by="t")  # fmt: skip
    a, b = shop.customer("phone", "13900000001"), shop.customer("phone", "13900000002")
    bad = tmp_path / "bad.csv"
    bad.write_text(f"customer_id,value\n{a},3\n{b},three\nx,1\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        import_manual(shop.state, bad, "tier", by="t")
    lines = sorted(p.line for p in err.value.problems if p.line)
    assert lines == [3, 4]
    good = tmp_path / "good.csv"
    good.write_text(f"customer_id,value,note\n{a},3,top buyer\n{b},1,\n", encoding="utf-8")
    assert import_manual(shop.state, good, "tier", by="t") == 2
    shop.refresh()
    assert (shop.tags(a)["tier"], shop.tags(b)["tier"]) == (3.0, 1.0)


def test_definitions_that_do_not_compile_are_refused(shop: Shop) -> None:
    inputs = PortraitInputs.from_snapshot(shop.engine, shop.derived.current("identity"), AS_OF)  # type: ignore[arg-type]
    unknown_input = TagDefinition("bad_one", "x", "x", "rfm", "number", ("no_such_field",), lambda b, _: b.purchases)
    with pytest.raises(InputError, match=r"bad_one.*no_such_field"):
        compute_tags(inputs, [*BUILTIN[:3], unknown_input])
    broken = TagDefinition("bad_two", "x", "x", "rfm", "number", ("purchases",), lambda b, _: b.no_such_column)
    with pytest.raises(InputError) as err:
        compute_tags(inputs, [broken])
    assert err.value.problems[0].field == "bad_two"
    with pytest.raises(ValueError, match="value type"):
        TagDefinition("bad_three", "x", "x", "rfm", "date", ("purchases",))  # type: ignore[arg-type]
