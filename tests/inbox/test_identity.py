"""Provisional customers meet OneID, on SQLite and PostgreSQL, with a real identity refresh: messages become facts
exactly once, the refresh places their identifiers in customers, contacts take those ids, and when OneID merges two
customers their contacts and open conversations follow the surviving id."""

from __future__ import annotations

from pathlib import Path

import duckdb
from sqlalchemy import select

from omnicrm.identity.links import join_customers
from omnicrm.identity.refresh import refresh_identity
from omnicrm.inbox.contacts import customers_of, follow_identity
from omnicrm.inbox.conversations import get_conversation
from omnicrm.inbox.facts import export_facts
from omnicrm.inbox.messages import list_messages, note, receive
from omnicrm.inbox.senders import Inbound
from omnicrm.ingest.importer import import_file
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import inbox_contacts, inbox_fact_exports
from omnicrm.store.state import StateStore
from tests.inbox.conftest import cn

MEMBERS = Path(__file__).resolve().parents[1] / "fixtures" / "imports" / "members.csv"


def message_facts(facts: FactsStore) -> list[dict[str, object]]:
    files = [str(p) for p in facts.files("message")]
    if not files:
        return []
    rel = duckdb.sql(f"SELECT message_id, channel, direction, phone, marketplace_nick, text FROM read_parquet({files}) "
                     "ORDER BY message_id")  # fmt: skip
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def test_provisional_contacts_join_customers_and_follow_merges(state: StateStore, tmp_path: Path) -> None:
    facts, derived = FactsStore(tmp_path / "facts"), DerivedStore(tmp_path / "derived")
    import_file(state, facts, source="crm", path=MEMBERS, kind="customers", mapping="members", progress=False)
    # before any refresh nobody is known: both senders are provisional
    nick = receive(state, Inbound("wangwang", {"nick": "tb_new_buyer_2026"}, "这件有M码吗"), now=cn(12, 9))
    phone = receive(state, Inbound("sms", {"phone": "13900001111"}, "会员卡积分不对"), now=cn(12, 9, 5))
    note(state, phone.conversation.id, "internal: check the points ledger", author="agent", now=cn(12, 9, 6))
    assert nick.conversation.customer_id is None and phone.conversation.customer_id is None

    first = export_facts(state, facts, now=cn(12, 9, 10))
    assert (first.messages, first.status) == (2, "imported")  # the internal note is not a fact
    assert export_facts(state, facts, now=cn(12, 9, 11)).status == "nothing"
    written = message_facts(facts)
    assert [(r["channel"], r["direction"], r["phone"], r["marketplace_nick"]) for r in written] == [
        ("wangwang", "inbound", None, "tb_new_buyer_2026"), ("sms", "inbound", "13900001111", None),
    ]  # fmt: skip

    refresh_identity(state, Engine(facts), derived, probabilistic=False)
    snap = derived.current("identity")
    ids = customers_of(snap, ["phone::+8613900001111", "marketplace_nick:taobao:tb_new_buyer_2026"])
    member, buyer = ids["phone::+8613900001111"], ids["marketplace_nick:taobao:tb_new_buyer_2026"]
    assert member != buyer
    followed = follow_identity(state, snap, now=cn(12, 10))
    assert (followed.joined, followed.merged) == (2, [])
    assert get_conversation(state, phone.conversation.id).customer_id == member  # 李娜, the member with that phone
    assert get_conversation(state, nick.conversation.id).customer_id == buyer
    assert follow_identity(state, snap, now=cn(12, 10, 1)).joined == 0  # nothing more to do

    # an operator says the buyer is the member: after the refresh one id survives and everything follows it
    join_customers(state, snap, member, buyer, reason="same person, confirmed by phone", by="test")
    refresh_identity(state, Engine(facts), derived, probabilistic=False)
    snap2 = derived.current("identity")
    survivor = customers_of(snap2, ["phone::+8613900001111"])["phone::+8613900001111"]
    assert survivor == min(member, buyer)
    followed = follow_identity(state, snap2, now=cn(12, 11))
    keep_contact = min(nick.conversation.contact_id, phone.conversation.contact_id)
    gone_contact = max(nick.conversation.contact_id, phone.conversation.contact_id)
    assert followed.merged == [(gone_contact, keep_contact)]
    kept = get_conversation(state, nick.conversation.id)
    merged = get_conversation(state, phone.conversation.id)
    assert (kept.customer_id, kept.status, kept.first_message_at, kept.awaiting_since) == (survivor, "open", cn(12, 9),
                                                                                         cn(12, 9))  # fmt: skip
    assert (merged.status, merged.merged_into) == ("closed", kept.id)
    assert [m.text for m in list_messages(state, kept.id)] == ["这件有M码吗", "会员卡积分不对",
                                                               "internal: check the points ledger"]  # fmt: skip
    with state.connect() as conn:
        contacts = {r.id: (r.customer_id, r.merged_into) for r in conn.execute(select(inbox_contacts))}
    assert contacts == {keep_contact: (survivor, None), gone_contact: (None, keep_contact)}
    # the next message from either identifier lands in the surviving conversation
    again = receive(state, Inbound("sms", {"phone": "13900001111"}, "查到了吗"), snapshot=snap2, now=cn(12, 12))
    assert (again.outcome, again.conversation.id) == ("open", kept.id)


def test_an_unfinished_export_is_written_again_once(state: StateStore, tmp_path: Path) -> None:
    facts = FactsStore(tmp_path / "facts")
    receive(state, Inbound("email", {"email": "li.na@qq.com"}, "发票开错了", external_id="<m1@qq.com>"), now=cn(12, 9))
    done = export_facts(state, facts, now=cn(12, 9, 1))
    with state.begin() as conn:  # as if the process died after the import, before marking the batch done
        conn.execute(inbox_fact_exports.update().values(done_at=None, import_id=None))
    again = export_facts(state, facts, now=cn(12, 9, 2))
    assert (again.batch, again.status) == (done.batch, "already_imported")
    rows = message_facts(facts)
    assert len(rows) == 1 and rows[0]["text"] == "发票开错了"
    with state.connect() as conn:
        assert conn.execute(select(inbox_fact_exports.c.done_at)).scalar_one() is not None
