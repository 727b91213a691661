"""From a customer's message to their portrait, on SQLite and PostgreSQL: attributes captured from a message are
manual tag values whose reason names the message, shown by GET /api/customers/{id}/tags and the 360 and kept by
the next portrait refresh; captures are idempotent, later messages update, pets add up, an agent can set a
value by hand, bad input changes nothing, and concurrent captures of one customer leave one value in force."""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import and_, func, select

from omnicrm.access.api_keys import create_api_key
from omnicrm.api.app import create_app
from omnicrm.customers.timeline import refresh_timeline
from omnicrm.errors import Conflict, InputError, NotFound
from omnicrm.identity.explain import lookup
from omnicrm.identity.refresh import refresh_identity
from omnicrm.inbox.capture import ATTRIBUTE_TAGS, Captured, capture, declare_attribute_tags, set_from_message
from omnicrm.portrait.explain import customer_tags
from omnicrm.portrait.refresh import AREA, catalogue, known_types, refresh_portrait
from omnicrm.portrait.tags.custom import define_tag, delete_tag
from omnicrm.settings import Settings, load_settings
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import manual_tags, tag_definitions
from omnicrm.store.state import StateStore
from tests.portrait.test_tags import AS_OF, line, ts, write

SAID = "亲，宝宝4个月了，我住在西湖区，这件有66码吗"


@dataclass
class Shop:
    settings: Settings
    state: StateStore
    engine: Engine
    derived: DerivedStore

    def customer(self, phone: str) -> int:
        (cid,) = lookup(self.derived.current("identity"), "phone", phone)
        return cid

    def snapshot_tags(self, customer_id: int) -> dict[str, Any]:
        cur = duckdb.execute(
            f"SELECT * FROM '{self.derived.current(AREA) / 'tags.parquet'}' WHERE customer_id = {customer_id}"
        )
        names = [d[0] for d in cur.description or ()]
        return dict(zip(names, cur.fetchall()[0], strict=True))


@pytest.fixture
def shop(tmp_path: Path, state: StateStore) -> Shop:
    """Two customers with an order each; the first wrote a chat message that tells a baby's age and a district."""
    settings = load_settings(data_dir=tmp_path / "data", state_url=state.url, loader_interval_seconds=0)
    facts = FactsStore(settings.facts_dir)
    engine, derived = Engine(facts), DerivedStore(settings.derived_dir)
    write(facts, "order_line", [
        line("A1", "13900000001", "2026-10-10T03:00:00", 300.0),
        line("B1", "13900000002", "2026-11-05T03:00:00", 250.0),
    ], "import-0000000001")  # fmt: skip
    message = {"direction": "inbound", "conversation_key": "ww:lin", "attachments": None, "store_code": None,
               "source": "service", "channel": "wangwang"}  # fmt: skip
    write(facts, "message", [
        message | {"message_id": "m-812", "phone": "13900000001", "text": SAID, "sent_at": ts("2026-11-20T09:00:00")},
    ], "import-0000000002")  # fmt: skip
    refresh_identity(state, engine, derived, probabilistic=False)
    refresh_portrait(state, engine, derived, as_of=AS_OF)
    refresh_timeline(engine, derived)
    return Shop(settings, state, engine, derived)


def _rows(state: StateStore, table: Any = manual_tags) -> int:
    with state.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _in_force(state: StateStore, customer_id: int) -> dict[str, list[Any]]:
    """Tag -> every value in force (more than one would be a lost update)."""
    m = manual_tags
    with state.connect() as conn:
        rows = conn.execute(
            select(m.c.tag_id, m.c.value).where(and_(m.c.customer_id == customer_id, m.c.cleared_at.is_(None)))
        ).all()
    out: dict[str, list[Any]] = {}
    for r in rows:
        out.setdefault(r.tag_id, []).append(json.loads(r.value))
    return out


def _statuses(found: list[Captured]) -> dict[str, tuple[Any, str]]:
    return {c.tag: (c.value, c.status) for c in found}


def test_a_captured_attribute_is_on_the_customer_tags_with_its_message(shop: Shop) -> None:
    lin, other = shop.customer("13900000001"), shop.customer("13900000002")
    found = capture(shop.state, lin, "m-812", SAID, "inbox:auto")
    assert _statuses(found) == {
        "child_age_band": ("0_1", "set"),
        "has_infant": (True, "set"),
        "district": ("杭州市西湖区", "set"),
        "home_city": ("杭州市", "set"),
    }
    why = "set by inbox:auto (message): message m-812 said “宝宝4个月” (chars 2–7, rule child_age_zh)"

    # read live from the state store, as the API and the 360 read them
    explained = {t.id: t for t in customer_tags(shop.derived.current(AREA), shop.derived.current("identity"), lin,
                                                shop.state).tags}  # fmt: skip
    assert (explained["child_age_band"].value, explained["child_age_band"].note) == ("0_1", why)
    assert explained["district"].value == "杭州市西湖区"
    assert explained["district"].note == (
        "set by inbox:auto (message): message m-812 said “住在西湖区” (chars 10–15, rule residence_zh)"
    )
    assert explained["has_infant"].origin == "manual" and explained["has_infant"].value is True

    with TestClient(create_app(shop.settings)) as client:
        key = create_api_key(client.app.state.state_store, "test", ["customers:read"])  # type: ignore[attr-defined]
        headers = {"Authorization": f"Bearer {key}"}
        res = client.get(f"/api/customers/{lin}/tags", headers=headers)
        assert res.status_code == 200, res.text
        tags = {t["id"]: t for t in res.json()["tags"]}
        assert (tags["child_age_band"]["value"], tags["child_age_band"]["note"]) == ("0_1", why)
        assert tags["home_city"]["value"] == "杭州市" and "message m-812" in tags["home_city"]["note"]
        res = client.get(f"/api/customers/{lin}/360", headers=headers)
        assert res.status_code == 200, res.text
        body = res.json()
        c360 = {t["id"]: t for t in body["tags"]["tags"]}
        assert (c360["district"]["value"], c360["district"]["note"]) == ("杭州市西湖区", explained["district"].note)
        said = [r for r in body["timeline"]["rows"] if r.get("kind") == "message"]
        assert said and SAID in json.dumps(said, ensure_ascii=False)  # the source message is on the same page
        res = client.get(f"/api/customers/{other}/tags", headers=headers)
        assert {t["id"]: t["value"] for t in res.json()["tags"]}["child_age_band"] is None

    # and the next refresh writes them into the portrait snapshot, where segments read them
    refresh_portrait(shop.state, shop.engine, shop.derived, as_of=AS_OF)
    assert {k: shop.snapshot_tags(lin)[k] for k in ("child_age_band", "has_infant", "district", "home_city")} == {
        "child_age_band": "0_1", "has_infant": True, "district": "杭州市西湖区", "home_city": "杭州市",
    }  # fmt: skip
    assert shop.snapshot_tags(other)["district"] is None


def test_capturing_a_message_again_changes_nothing(state: StateStore) -> None:
    text = "I'm 165 cm and 52 kg, and my birthday is on March 14th"
    first = capture(state, 7, "m-1", text, "inbox:auto")
    assert _statuses(first) == {
        "height_cm": (165.0, "set"), "weight_kg": (52.0, "set"), "stated_birthday": ("03-14", "set"),
    }  # fmt: skip
    again = capture(state, 7, "m-1", text, "inbox:auto")
    assert {c.status for c in again} == {"unchanged"}
    assert _rows(state) == 3
    assert {t.id for t in ATTRIBUTE_TAGS} <= set(known_types(catalogue(state)))


def test_later_messages_update_and_pets_add_up(state: StateStore) -> None:
    capture(state, 7, "m-1", "我住在西湖区，家里养了一只猫", "inbox:auto")
    found = capture(state, 7, "m-2", "搬到滨江区了，我们家还养了一条狗", "inbox:auto")
    assert _statuses(found) == {
        "district": ("杭州市滨江区", "set"),
        "home_city": ("杭州市", "unchanged"),
        "pet": (["cat", "dog"], "set"),
    }
    assert _in_force(state, 7) == {"district": ["杭州市滨江区"], "home_city": ["杭州市"], "pet": [["cat", "dog"]]}
    with state.connect() as conn:
        history = conn.execute(
            select(manual_tags.c.value, manual_tags.c.cleared_at.is_(None))
            .where(and_(manual_tags.c.customer_id == 7, manual_tags.c.tag_id == "district"))
            .order_by(manual_tags.c.id)
        ).all()
    assert [(json.loads(v), live) for v, live in history] == [("杭州市西湖区", False), ("杭州市滨江区", True)]
    # the same pet told again adds nothing
    assert _statuses(capture(state, 7, "m-3", "My cat loves this blanket", "inbox:auto")) == {
        "pet": (["cat", "dog"], "unchanged")
    }


def test_the_youngest_child_and_pregnancy_over_trying(state: StateStore) -> None:
    found = capture(state, 9, "m-5", "大宝5岁，二宝8个月。之前在备孕，现在我怀孕三个月了", "clerk:wang")
    assert _statuses(found) == {
        "child_age_band": ("0_1", "set"), "has_infant": (True, "set"), "pregnancy": ("pregnant", "set"),
    }  # fmt: skip
    assert "“二宝8个月”" in next(c.note for c in found if c.tag == "child_age_band")


def test_an_agent_sets_an_attribute_by_hand_with_the_message_as_source(state: StateStore) -> None:
    text = "最近瘦了不少，现在一百零五斤左右"
    done = set_from_message(state, 7, "m-9", "weight_kg", 52.5, text=text, quote="一百零五斤", by="agent:li")
    assert (done.status, done.note) == ("set", "message m-9 said “一百零五斤” (chars 9–14, set by hand)")
    assert _in_force(state, 7) == {"weight_kg": [52.5]}
    with pytest.raises(InputError) as err:
        set_from_message(state, 7, "m-9", "weight_kg", 50, text=text, quote="一百斤", by="agent:li")
    assert err.value.problems[0].field == "quote"
    with pytest.raises(InputError) as err:
        set_from_message(state, 7, "m-9", "weight_kg", "heavy", text=text, quote="一百零五斤", by="agent:li")
    assert err.value.problems[0].field == "value"
    with pytest.raises(NotFound):
        set_from_message(state, 7, "m-9", "shoe_width", "wide", text=text, quote="一百零五斤", by="agent:li")
    assert _in_force(state, 7) == {"weight_kg": [52.5]}


@pytest.mark.parametrize(
    ("customer_id", "message_id", "by", "field"),
    [
        (0, "m-1", "inbox:auto", "customer_id"),
        (-4, "m-1", "inbox:auto", "customer_id"),
        ("7", "m-1", "inbox:auto", "customer_id"),
        (True, "m-1", "inbox:auto", "customer_id"),
        (7, "", "inbox:auto", "message_id"),
        (7, "m 1", "inbox:auto", "message_id"),
        (7, "m" * 129, "inbox:auto", "message_id"),
        (7, None, "inbox:auto", "message_id"),
        (7, "m-1", "", "by"),
    ],
)
def test_bad_input_is_refused_by_field_and_changes_nothing(
    state: StateStore, customer_id: Any, message_id: Any, by: Any, field: str
) -> None:
    with pytest.raises(InputError) as err:
        capture(state, customer_id, message_id, SAID, by)
    assert [p.field for p in err.value.problems] == [field]
    assert (_rows(state), _rows(state, tag_definitions)) == (0, 0)


def test_a_message_without_attributes_declares_and_writes_nothing(state: StateStore) -> None:
    assert capture(state, 7, "m-1", "什么时候发货？", "inbox:auto") == []
    assert capture(state, 7, "m-2", "", "inbox:auto") == []
    with pytest.raises(InputError) as err:
        capture(state, 7, "m-3", None, "inbox:auto")  # type: ignore[arg-type]
    assert err.value.problems[0].field == "text"
    assert (_rows(state), _rows(state, tag_definitions)) == (0, 0)


def test_a_deleted_attribute_tag_is_not_captured_again(state: StateStore) -> None:
    capture(state, 7, "m-1", "我家有只猫", "inbox:auto")
    delete_tag(state, "pet")
    found = capture(state, 8, "m-2", "我家有只狗，我住在西湖区", "inbox:auto")
    assert _statuses(found)["pet"] == (["dog"], "skipped")
    assert _in_force(state, 8) == {"district": ["杭州市西湖区"], "home_city": ["杭州市"]}


def test_a_tag_id_taken_by_another_type_is_refused_by_name(state: StateStore) -> None:
    known = known_types(catalogue(state))
    define_tag(state, known, tag_id="district", name_zh="区号", name_en="Area code", value_type="number", by="staff")
    with pytest.raises(Conflict) as err:
        capture(state, 7, "m-1", "我住在西湖区", "inbox:auto")
    assert [p.field for p in err.value.problems] == ["district"]
    assert _rows(state) == 0


def test_concurrent_captures_of_one_customer_leave_one_value_in_force(state: StateStore) -> None:
    texts = ["我家有只猫", "我家有条狗", "我住在西湖区", "我住在滨江区", "I have two cats", "We have a puppy"] * 3

    def one(i: int) -> list[Captured]:
        return capture(state, 42, f"m-{i}", texts[i], "inbox:auto")

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(one, range(len(texts))))
    assert all(c.status in ("set", "unchanged") for r in results for c in r)
    live = _in_force(state, 42)
    assert live["pet"] == [["cat", "dog"]]
    assert len(live["district"]) == 1 and live["district"][0] in ("杭州市西湖区", "杭州市滨江区")
    assert live["home_city"] == ["杭州市"]
    assert _rows(state, tag_definitions) == len(ATTRIBUTE_TAGS)
    assert declare_attribute_tags(state, by="test") == {t.id for t in ATTRIBUTE_TAGS}


def test_times_are_utc(state: StateStore) -> None:
    capture(state, 7, "m-1", "我家有只猫", "inbox:auto")
    with state.connect() as conn:
        set_at = conn.execute(select(manual_tags.c.set_at)).scalar_one()
    set_at = set_at if set_at.tzinfo else set_at.replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - set_at).total_seconds()) < 120
