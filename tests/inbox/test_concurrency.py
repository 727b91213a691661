"""Messages arriving all at once, on SQLite and PostgreSQL: a new sender's first messages make one provisional
contact and one conversation, a person writing on two channels at once stays one conversation, and a message the
channel delivers several times at once is stored once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from omnicrm.inbox.messages import list_messages, receive
from omnicrm.inbox.senders import Inbound
from omnicrm.store.schema import inbox_contact_keys, inbox_contacts, inbox_conversations, inbox_messages
from omnicrm.store.state import StateStore
from tests.consent.conftest import publish_identity
from tests.inbox.conftest import cn
from tests.loyalty.checks import run

THREADS = 24


def rows(state: StateStore) -> tuple[int, int, int, int]:
    with state.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (inbox_contacts, inbox_contact_keys, inbox_conversations, inbox_messages)
        )


@pytest.mark.timeout(300)
def test_a_burst_from_a_new_sender_makes_one_contact_and_one_conversation(state: StateStore) -> None:
    def work(i: int) -> object:
        # half the threads repeat an earlier thread's message (the channel retrying its push)
        return receive(state, Inbound("wangwang", {"nick": "tb_burst_buyer"}, f"第{i % 12}条",
                                      external_id=f"ww-{i % 12}"), now=cn(12, 9))  # fmt: skip

    results = run(THREADS, work)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert rows(state) == (1, 1, 1, 12)
    outcomes = sorted(r.outcome for r in results)  # type: ignore[attr-defined]
    assert outcomes.count("duplicate") == 12 and outcomes.count("new") == 1
    [conversation_id] = {r.conversation.id for r in results}  # type: ignore[attr-defined]
    assert sorted(m.external_id or "" for m in list_messages(state, conversation_id)) == sorted(
        f"ww-{i}" for i in range(12)
    )


@pytest.mark.timeout(300)
def test_one_person_on_two_channels_at_once_stays_one_conversation(state: StateStore, tmp_path: Path) -> None:
    snap = publish_identity(tmp_path / "derived", [(5, "phone::+8613912345678"), (5, "email::li.na@qq.com")])

    def work(i: int) -> object:
        message = (Inbound("sms", {"phone": "13912345678"}, f"短信{i}") if i % 2
                   else Inbound("email", {"email": "li.na@qq.com"}, f"mail {i}"))  # fmt: skip
        return receive(state, message, snapshot=snap, now=cn(12, 9))

    results = run(THREADS, work)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert rows(state) == (1, 2, 1, THREADS)
    assert {r.conversation.customer_id for r in results} == {5}  # type: ignore[attr-defined]
