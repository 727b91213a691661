"""Points from orders: every earn rule by hand, replays award once, refunds in later exports reverse."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from omnicrm.errors import InputError
from omnicrm.loyalty.earning import award_orders, order_facts
from omnicrm.loyalty.ledger import balance, earn, lots
from omnicrm.loyalty.rules import LoyaltyRules, load_rules, save_rules
from omnicrm.loyalty.tiers import Tier, TierProgram, evaluate_tiers
from omnicrm.portrait.inputs import PortraitInputs
from omnicrm.store.engine import Engine
from omnicrm.store.facts import ORDER_LINE, FactsStore
from omnicrm.store.state import StateStore
from tests.loyalty.checks import award, check_ledger

CHINA = dt.timezone(dt.timedelta(hours=8))
MARCH = dt.datetime(2026, 3, 10, 12, tzinfo=CHINA)
JUNE = dt.datetime(2026, 6, 5, 12, tzinfo=CHINA)
NOW = dt.datetime(2026, 7, 1, tzinfo=CHINA)

RULES = LoyaltyRules(
    channels={"store": Decimal(2), "marketplace": Decimal(1)},
    categories={"shoes": Decimal("1.5"), "gift-card": Decimal(0)},
    birthday={"multiplier": Decimal(2), "scope": "month"},  # type: ignore[arg-type]
    campaigns=[{  # type: ignore[list-item]
        "name": "618", "starts_at": dt.datetime(2026, 6, 1, tzinfo=CHINA),
        "ends_at": dt.datetime(2026, 6, 19, tzinfo=CHINA), "multiplier": Decimal(2), "bonus_points": 10,
        "channels": ["marketplace"],
    }],
    return_window_days=15,
    expire_after_months=12,
    tiers=TierProgram(tiers=[Tier(name="member", threshold=0), Tier(name="gold", threshold=1000, earn_multiplier=Decimal("1.5"))]),
)  # fmt: skip


def orders(rows: list[dict[str, Any]]) -> pa.Table:
    """Order rows with every optional column; money as decimals, times in UTC."""
    base = {"refunded": Decimal(0), "category": None, "birthday": None}
    rows = [{**base, **r} for r in rows]
    return pa.table({
        "customer_id": pa.array([r["customer_id"] for r in rows], pa.int64()),
        "source": [r["source"] for r in rows],
        "order_id": [r["order_id"] for r in rows],
        "paid_at": pa.array([r["paid_at"].astimezone(dt.UTC) for r in rows], pa.timestamp("us", tz="UTC")),
        "paid": pa.array([Decimal(r["paid"]) for r in rows], pa.decimal128(18, 2)),
        "refunded": pa.array([Decimal(r["refunded"]) for r in rows], pa.decimal128(18, 2)),
        "channel": [r["channel"] for r in rows],
        "category": pa.array([r["category"] for r in rows], pa.string()),
        "birthday": pa.array([r["birthday"] for r in rows], pa.date32()),
    })  # fmt: skip


SHOP = [
    # 100.50 shoes x1.5 + 20 bags = 170.75 -> 170
    dict(customer_id=1, source="tmall", order_id="O1", paid_at=MARCH, paid="100.50", channel="marketplace", category="shoes"),
    dict(customer_id=1, source="tmall", order_id="O1", paid_at=MARCH, paid="20", channel="marketplace", category="bags"),
    # in store x2: 66.66 -> 66
    dict(customer_id=2, source="pos-1", order_id="O2", paid_at=MARCH, paid="33.33", channel="store"),
    # 618 on a marketplace x2, birthday month x2, +10: 200 * 4 + 10
    dict(customer_id=3, source="tmall", order_id="O3", paid_at=JUNE, paid="200", channel="marketplace", birthday=dt.date(1990, 6, 30)),
    # 618 does not run in stores; the birthday is another month
    dict(customer_id=3, source="pos-1", order_id="O3b", paid_at=JUNE, paid="10", channel="store", birthday=dt.date(1990, 7, 1)),
    # gift cards earn nothing; a wholly refunded order earns nothing
    dict(customer_id=1, source="tmall", order_id="O4", paid_at=MARCH, paid="500", channel="marketplace", category="gift-card"),
    dict(customer_id=5, source="jd", order_id="O6", paid_at=MARCH, paid="80", refunded="80", channel="marketplace"),
    # paid after now: left for a later run
    dict(customer_id=5, source="jd", order_id="O7", paid_at=NOW + dt.timedelta(days=1), paid="80", channel="marketplace"),
]  # fmt: skip


def test_each_rule_by_hand_and_a_replay_awards_once(state: StateStore) -> None:
    first = award_orders(state, orders(SHOP), RULES, now=NOW)
    assert (first.orders, first.awarded, first.points, first.nothing, first.already) == (
        6,
        4,
        170 + 66 + 810 + 20,
        2,
        0,
    )
    by_order = {lot.order_id: lot for c in (1, 2, 3) for lot in lots(state, c)}
    assert {k: v.points for k, v in by_order.items()} == {"O1": 170, "O2": 66, "O3": 810, "O3b": 20}
    o1 = by_order["O1"]
    assert o1.activates_at == MARCH.astimezone(dt.UTC) + dt.timedelta(days=15) and o1.status == "active"
    assert o1.expires_at == dt.datetime(2027, 4, 1, tzinfo=CHINA)  # the end of March 2027, China time
    assert o1.spend_cents == 12_050 and o1.rule_version == 0
    assert by_order["O3"].status == "active" and by_order["O3"].activates_at > JUNE

    again = award_orders(state, orders(SHOP), RULES, now=NOW)
    assert (again.awarded, again.points, again.already, again.reversed_orders) == (0, 0, 4, 0)
    doubled = RULES.model_copy(update={"points_per_unit": Decimal(2), "version": 2})
    assert award_orders(state, orders(SHOP), doubled, now=NOW).awarded == 0  # an order earns once, whatever the rules
    assert balance(state, 1, NOW).balance == 170
    for c in (1, 2, 3):
        check_ledger(state, c, NOW)


def test_the_tier_multiplier_applies_to_gold_members(state: StateStore) -> None:
    earn(state, award(4, 1200, "big", at=MARCH.astimezone(dt.UTC)), now=NOW)
    assert RULES.tiers is not None
    assert [c.to_tier for c in evaluate_tiers(state, RULES.tiers, NOW)] == ["gold"]
    done = award_orders(state, orders([dict(customer_id=4, source="web", order_id="W1", paid_at=JUNE, paid="100", channel="web")]), RULES, now=NOW)  # fmt: skip
    assert done.points == 150


def test_a_refund_in_a_later_export_reverses_in_proportion_once(state: StateStore) -> None:
    award_orders(state, orders(SHOP[:2]), RULES, now=NOW)
    refunded = [dict(SHOP[0], refunded="60.25"), SHOP[1]]  # half of the order's net
    done = award_orders(state, orders(refunded), RULES, now=NOW)
    assert (done.reversed_orders, done.reversed_points, done.written_off) == (1, 85, 0)
    assert award_orders(state, orders(refunded), RULES, now=NOW).reversed_points == 0
    whole = [dict(SHOP[0], refunded="100.50"), dict(SHOP[1], refunded="20")]
    assert award_orders(state, orders(whole), RULES, now=NOW).reversed_points == 85
    assert balance(state, 1, NOW).balance == 0 and lots(state, 1)[0].status == "reversed"
    check_ledger(state, 1, NOW)


def test_rules_are_versioned_data(state: StateStore) -> None:
    one = save_rules(state, RULES, by="alice", note="launch")
    two = save_rules(state, RULES.model_copy(update={"return_window_days": 7}), by="alice")
    assert (one.version, two.version) == (1, 2)
    assert load_rules(state) == two and load_rules(state, 1) == one
    with pytest.raises(InputError) as e:
        save_rules(state, {"channels": {"store": "1.255"}}, by="alice")
    assert e.value.problems[0].field == "channels.store"
    with pytest.raises(InputError) as missing:
        award_orders(state, pa.table({"customer_id": [1]}), RULES)
    assert {p.field for p in missing.value.problems} == {"source", "order_id", "paid_at", "paid"}


def _line(order_id: str, line_no: int, category: str, paid: str, refunded: str, batch: int, source: str = "tmall") -> dict[str, Any]:  # fmt: skip
    created = MARCH.astimezone(dt.UTC)
    return {
        "order_id": order_id, "line_no": line_no, "phone": "13800000001", "category": category, "quantity": 1,
        "paid_amount": Decimal(paid), "refunded_amount": Decimal(refunded), "currency": "CNY", "status": "paid",
        "created_at": created, "source": source, "source_key": f"{order_id}/{line_no}", "ingest_id": f"b{batch}",
        "ingested_at": created + dt.timedelta(days=batch), "source_file": "orders.csv", "source_line": line_no,
        "store_code": "S1" if source.startswith("pos") else None,
    }  # fmt: skip


def test_award_from_the_portrait_inputs(state: StateStore, tmp_path: Path) -> None:
    """Order lines from facts, joined to their OneID customers: the latest version of each line wins."""
    lines = [
        _line("T1", 1, "shoes", "100.50", "0", 1), _line("T1", 2, "bags", "20", "0", 1),
        _line("P1", 1, "bags", "50", "0", 1, source="pos-1"),
        _line("T1", 2, "bags", "20", "20", 2),  # a later export: the bag was returned
    ]  # fmt: skip
    folder = tmp_path / "facts" / "order_line" / "date=2026-03-10"
    folder.mkdir(parents=True)
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in ORDER_LINE} for r in lines], schema=ORDER_LINE)
    pq.write_table(table, folder / "batch.parquet")
    engine = Engine(FactsStore(tmp_path / "facts"))
    records = pa.table({"record_key": ["o:tmall:T1", "o:pos-1:P1"], "customer_id": pa.array([61, 62], pa.int64())})
    inputs = PortraitInputs(engine, engine.table_from_arrow(records, "records"), NOW.astimezone(dt.UTC))
    done = award_orders(state, order_facts(inputs), RULES, now=NOW)
    assert (done.awarded, done.points) == (2, 150 + 100)  # 100.50 x 1.5; the store doubles 50
    assert [lot.spend_cents for lot in lots(state, 61)] == [10_050]
