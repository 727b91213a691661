"""A known customer's message goes onto their portrait as it arrives: the extraction rules' attributes become manual
tag values whose reason names the message; a provisional sender's message, and a repeat, capture nothing. An agent
can set one by hand from a message's words (the API's inbox attributes route)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from omnicrm.api.inbox_attributes import AttributeIn, set_attribute
from omnicrm.errors import Conflict, InputError, NotFound
from omnicrm.identity.refresh import refresh_identity
from omnicrm.inbox.messages import receive
from omnicrm.inbox.senders import Inbound
from omnicrm.ingest.importer import import_file
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import manual_tags
from omnicrm.store.state import StateStore
from tests.inbox.conftest import cn

MEMBERS = Path(__file__).resolve().parents[1] / "fixtures" / "imports" / "members.csv"


def _values(state: StateStore) -> dict[tuple[int, str], tuple[object, str]]:
    m = manual_tags
    with state.connect() as conn:
        rows = conn.execute(select(m.c.customer_id, m.c.tag_id, m.c.value, m.c.note).where(m.c.cleared_at.is_(None)))
        return {(int(r.customer_id), r.tag_id): (json.loads(r.value), r.note) for r in rows}


def test_a_known_customers_message_is_captured_as_it_arrives(state: StateStore, tmp_path: Path) -> None:
    facts, derived = FactsStore(tmp_path / "facts"), DerivedStore(tmp_path / "derived")
    import_file(state, facts, source="crm", path=MEMBERS, kind="customers", mapping="members", progress=False)
    refresh_identity(state, Engine(facts), derived, probabilistic=False)
    snap = derived.current("identity")

    said = "我家宝宝4个月了，最近住在杭州西湖区"
    got = receive(state, Inbound("sms", {"phone": "13900001111"}, said), snapshot=snap, now=cn(12, 9))
    member = got.conversation.customer_id
    assert member is not None
    values = _values(state)
    assert values[(member, "has_infant")][0] is True
    assert values[(member, "district")][0] == "杭州市西湖区"
    reason = values[(member, "has_infant")][1]
    assert f"message {got.message.id}" in reason and "宝宝4个月" in reason

    again = receive(state, Inbound("sms", {"phone": "13900001111"}, said), snapshot=snap, now=cn(12, 9, 1))
    assert again.outcome != "duplicate" or again.message.id == got.message.id
    assert _values(state) == values  # the same words again change nothing

    stranger = receive(state, Inbound("sms", {"phone": "13912340000"}, "宝宝三岁了"), snapshot=snap, now=cn(12, 9, 2))
    assert stranger.conversation.customer_id is None
    assert _values(state) == values  # nobody to put it on yet


def test_an_agent_sets_an_attribute_from_a_message_by_hand(state: StateStore, tmp_path: Path) -> None:
    facts, derived = FactsStore(tmp_path / "facts"), DerivedStore(tmp_path / "derived")
    import_file(state, facts, source="crm", path=MEMBERS, kind="customers", mapping="members", progress=False)
    refresh_identity(state, Engine(facts), derived, probabilistic=False)
    snap = derived.current("identity")
    said = "家里那只橘猫最近不爱吃饭"  # no rule reads a cat here: the agent does
    got = receive(state, Inbound("sms", {"phone": "13900001111"}, said), snapshot=snap, now=cn(12, 9))
    member, conversation, message = got.conversation.customer_id, got.conversation.id, got.message.id
    assert member is not None and (member, "pet") not in _values(state)

    done = set_attribute(state, conversation, message, AttributeIn(tag_id="pet", value=["cat"], quote="橘猫"), "agent")
    assert (done["customer_id"], done["status"], done["value"]) == (member, "set", ["cat"])
    value, note = _values(state)[(member, "pet")]
    assert value == ["cat"] and f"message {message}" in note and "橘猫" in note

    before = _values(state)
    with pytest.raises(InputError) as bad:
        set_attribute(state, conversation, message, AttributeIn(tag_id="pet", value=["dog"], quote="小狗"), "agent")
    assert bad.value.problems[0].field == "quote"
    with pytest.raises(NotFound):
        set_attribute(state, conversation, message + 99, AttributeIn(tag_id="pet", value=["dog"], quote="橘猫"), "a")
    stranger = receive(state, Inbound("sms", {"phone": "13912340000"}, "我养了猫"), snapshot=snap, now=cn(12, 9, 2))
    with pytest.raises(Conflict) as unknown:
        set_attribute(state, stranger.conversation.id, stranger.message.id,
                      AttributeIn(tag_id="pet", value=["cat"], quote="猫"), "agent")  # fmt: skip
    assert unknown.value.problems[0].field == "conversation_id"
    assert _values(state) == before
