"""Communities on SQLite and PostgreSQL: interests checked against the taxonomy, members invited, joining and leaving
(each way of coming kept), an archived community closed to newcomers; and the suggested members, worked out by hand
on a small portrait snapshot: exactly the customers whose interests match, by city or store, members left out."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from omnicrm.community.communities import (
    create_community,
    get_community,
    invite,
    join,
    leave,
    list_communities,
    members,
    set_status,
)
from omnicrm.community.suggest import suggest_members
from omnicrm.errors import Conflict, InputError, NotFound
from omnicrm.identity.explain import lookup
from omnicrm.identity.refresh import refresh_identity
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore
from tests.community.checks import NOW, counts
from tests.portrait.test_tags import line, write

PHONES = {"a": "13900000101", "b": "13900000102", "c": "13900000103", "d": "13900000104", "e": "13900000105"}


def test_members_come_and_go(state: StateStore) -> None:
    club = create_community(state, name_zh="钓鱼社", name_en="Anglers", interests=["fishing", "camping", "fishing"],
                            description="周末水库钓鱼", by="console:amy", now=NOW)  # fmt: skip
    assert (club.interests, club.status, club.members) == (("camping", "fishing"), "active", {})
    assert invite(state, club.id, [5, 6, 7, 5], by="t", now=NOW).added == [5, 6, 7]
    assert join(state, club.id, 6, by="t", now=NOW).already == [6]  # a member already stays as they came
    assert join(state, club.id, 8, by="t", now=NOW).added == [8]
    left = leave(state, club.id, 5, by="t", now=NOW)
    assert (left.customer_id, left.source, left.left_at) == (5, "invited", NOW)
    with pytest.raises(NotFound) as twice:
        leave(state, club.id, 5, by="t", now=NOW)
    assert twice.value.problems[0].field == "customer_id"
    assert join(state, club.id, 5, by="t", now=NOW).added == [5]  # back, now of their own accord
    assert get_community(state, club.id).members == {"invited": 2, "joined": 2}
    page, total = members(state, club.id, limit=3)
    assert total == 4 and len(page) == 3
    shown, count = list_communities(state)
    assert count == 1 and shown[0].member_count == 4

    set_status(state, club.id, "archived", now=NOW)
    before = counts(state)
    with pytest.raises(Conflict) as closed:
        invite(state, club.id, [9], by="t", now=NOW)
    assert closed.value.problems[0].field == "community_id" and counts(state) == before


def test_community_input_problems(state: StateStore) -> None:
    with pytest.raises(InputError) as caught:
        create_community(state, name_zh="", name_en="Bakers", interests=["bakng", "cooking"], by="t")
    assert [(p.field, p.reason) for p in caught.value.problems] == [
        ("name_zh", "1 to 128 characters"),
        ("interests", "unknown interest 'bakng' — did you mean 'baking'?"),
    ]
    create_community(state, name_zh="烘焙社", name_en="Bakers", interests=["baking"], by="t")
    with pytest.raises(Conflict) as taken:
        create_community(state, name_zh="烘焙社", name_en="Bakers 2", interests=["baking"], by="t")
    assert taken.value.problems[0].field == "name_zh"
    with pytest.raises(InputError) as bad:
        invite(state, 1, [0, True], by="t")  # type: ignore[list-item]
    assert [p.field for p in bad.value.problems] == ["customer_ids", "customer_ids"]
    assert counts(state)["communities"] == 1 and counts(state)["community_members"] == 0


def _portrait(derived: DerivedStore, ids: dict[str, int]) -> None:
    """A portrait snapshot by hand: who has which interests, in which city (one customer OneID does not know)."""
    snapshot = derived.new_snapshot("portrait")
    wide = [("a", ["baking", "tea"], "上海"), ("b", ["hiking"], "北京"), ("c", ["baking"], "北京"),
            ("d", ["fishing", "hiking", "baking"], "上海"), ("e", ["tea"], "上海")]  # fmt: skip
    table = pa.table({
        "customer_id": pa.array([ids[k] for k, _, _ in wide] + [99_999], pa.int64()),
        "interests": pa.array([i for _, i, _ in wide] + [[]], pa.list_(pa.string())),
        "city": pa.array([c for _, _, c in wide] + ["上海"], pa.string()),
    })  # fmt: skip
    pq.write_table(table, snapshot / "tags.parquet")
    derived.publish("portrait", snapshot)


def test_suggested_members_are_exactly_those_with_the_interest(state: StateStore, tmp_path: Path) -> None:
    facts, derived = FactsStore(tmp_path / "facts"), DerivedStore(tmp_path / "derived")
    engine = Engine(facts)
    lines = [line(f"o-{k}", phone, "2026-04-01", 88.0, source="pos", store_code="SH01" if k in "ad" else "BJ02")
             for k, phone in PHONES.items()]  # fmt: skip
    write(facts, "order_line", lines, "pos-1")
    refresh_identity(state, engine, derived, probabilistic=False)
    ids = {k: lookup(derived.current("identity"), "phone", p)[0] for k, p in PHONES.items()}
    club = create_community(state, name_zh="烘焙徒步", name_en="Bake and hike", interests=["baking", "hiking"], by="t")
    with pytest.raises(NotFound):
        suggest_members(engine, derived, club)  # no portrait yet
    _portrait(derived, ids)

    found = suggest_members(engine, derived, club)
    assert found.total == 4
    assert found.rows == sorted([
        {"customer_id": ids["a"], "city": "上海", "interests": ["baking"]},
        {"customer_id": ids["b"], "city": "北京", "interests": ["hiking"]},
        {"customer_id": ids["c"], "city": "北京", "interests": ["baking"]},
        {"customer_id": ids["d"], "city": "上海", "interests": ["hiking", "baking"]},
    ], key=lambda r: r["customer_id"])  # fmt: skip
    assert suggest_members(engine, derived, club, city="上海").customer_ids == sorted([ids["a"], ids["d"]])
    assert suggest_members(engine, derived, club, store="BJ02").customer_ids == sorted([ids["b"], ids["c"]])
    paged = suggest_members(engine, derived, club, limit=2, offset=2)
    assert (paged.total, paged.customer_ids) == (4, found.customer_ids[2:])
    invite(state, club.id, [ids["a"], ids["b"]], by="t")
    rest = suggest_members(engine, derived, club, state=state)
    assert (rest.total, rest.customer_ids) == (2, sorted([ids["c"], ids["d"]]))
