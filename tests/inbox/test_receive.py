"""Messages in, on SQLite and PostgreSQL: one conversation per person across channels, provisional customers for
unknown identifiers, dedupe by external id, reopening, clerk notes, complaints — and bad input refused by name with
nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from omnicrm.errors import InputError, PayloadTooLarge
from omnicrm.inbox import sla
from omnicrm.inbox.config import inbox_config
from omnicrm.inbox.contacts import contact_keys
from omnicrm.inbox.conversations import get_conversation, set_status
from omnicrm.inbox.messages import list_messages, receive
from omnicrm.inbox.senders import Inbound
from omnicrm.store.state import StateStore
from tests.consent.conftest import publish_identity
from tests.inbox.conftest import cn, counts, set_up_sla

APPID = "wx_oa_demo"
OPENID = "oAbCdEfGhIjKlMnOpQrStUvWxYz0"


def wechat(text: str, msg_id: str | None = None, openid: str = OPENID) -> Inbound:
    return Inbound("wechat_oa", {"openid": openid}, text, external_id=msg_id, account=APPID)


def test_three_channels_for_one_person_land_in_one_conversation(state: StateStore, tmp_path: Path) -> None:
    snap = publish_identity(tmp_path / "derived", [
        (42, f"wechat_openid:{APPID}:{OPENID}"), (42, "phone::+8613912345678"), (42, "marketplace_nick:weibo:1850012345"),
        (7, "phone::+8613800001111"),
    ])  # fmt: skip
    set_up_sla(state)
    first = receive(state, wechat("会员积分怎么查", "wx-1"), snapshot=snap, now=cn(12, 10, 0))
    second = receive(state, Inbound("sms", {"phone": "139 1234 5678"}, "我刚才在公众号问过了"), snapshot=snap,
                     now=cn(12, 10, 5))  # fmt: skip
    third = receive(state, Inbound("weibo", {"uid": "1850012345"}, "@言木 还没人回复吗？", external_id="wb-9"),
                    snapshot=snap, now=cn(12, 10, 9))  # fmt: skip
    assert [first.outcome, second.outcome, third.outcome] == ["new", "open", "open"]
    assert first.conversation.id == second.conversation.id == third.conversation.id
    c = get_conversation(state, first.conversation.id)
    assert (c.customer_id, c.channel, c.last_channel, c.status) == (42, "wechat_oa", "weibo", "open")
    assert [m.channel for m in list_messages(state, c.id)] == ["wechat_oa", "sms", "weibo"]
    assert contact_keys(state, c.contact_id) == sorted(
        [f"wechat_openid:{APPID}:{OPENID}", "phone::+8613912345678", "marketplace_nick:weibo:1850012345"]
    )
    # the clocks started at the first message and did not restart: 10:00 + 30 business minutes
    assert (c.first_message_at, c.awaiting_since, c.response_due_at) == (cn(12, 10), cn(12, 10), cn(12, 10, 30))
    assert c.resolution_due_at == cn(13, 10, 0)  # 480 business minutes: 10-12, 13-18 today, 9-10 tomorrow
    other = receive(state, Inbound("sms", {"phone": "13800001111"}, "另一个人"), snapshot=snap, now=cn(12, 11))
    assert other.conversation.id != c.id and other.conversation.customer_id == 7


def test_an_unknown_identifier_makes_a_provisional_customer(state: StateStore) -> None:
    got = receive(state, Inbound("wangwang", {"nick": "tb8371920454"}, "双11的连衣裙什么时候发货？"), now=cn(12, 9))
    assert got.outcome == "new"
    assert got.conversation.customer_id is None  # provisional until OneID joins it
    assert contact_keys(state, got.conversation.contact_id) == ["marketplace_nick:taobao:tb8371920454"]
    again = receive(state, Inbound("wangwang", {"nick": "tb8371920454"}, "在吗"), now=cn(12, 9, 1))
    assert (again.outcome, again.conversation.id) == ("open", got.conversation.id)
    assert counts(state)[:4] == (1, 1, 1, 2)


def test_the_same_external_id_twice_is_one_message(state: StateStore) -> None:
    first = receive(state, wechat("你好", "6942021"), now=cn(12, 9))
    before = counts(state)
    repeat = receive(state, wechat("你好", "6942021"), now=cn(12, 9, 5))
    assert repeat.outcome == "duplicate" and repeat.message.id == first.message.id
    assert counts(state) == before
    other_account = receive(state, Inbound("wechat_oa", {"openid": OPENID}, "你好", external_id="6942021",
                                           account="wx_other_account"), now=cn(12, 9, 6))  # fmt: skip
    assert other_account.outcome == "new" and other_account.message.id != first.message.id


def _refused(state: StateStore, message: Inbound, error: type[Exception] = InputError, **kw: Any) -> Any:
    before = counts(state)
    with pytest.raises(error) as err:
        receive(state, message, now=cn(12, 9), **kw)
    assert counts(state) == before  # nothing was written
    return err.value


def test_bad_messages_are_refused_by_name_and_change_nothing(state: StateStore) -> None:
    receive(state, Inbound("sms", {"phone": "13912345678"}, "先有一条"), now=cn(12, 8))
    empty = _refused(state, Inbound("sms", {"phone": "13912345678"}, "  \n "))
    assert (empty.message, empty.problems[0].field, empty.status) == ("the message is empty", "text", 400)
    files = [
        {"name": "photo.jpg", "type": "image/jpeg", "size": 48_213, "url": "https://img.example.cn/a.jpg"},
        {"name": "unboxing.mp4", "type": "video/mp4", "size": 31_457_280, "url": "https://v.example.cn/b.mp4"},
    ]
    big = _refused(state, Inbound("weibo", {"uid": "1850012345"}, "看视频", attachments=files), PayloadTooLarge)
    assert big.status == 413
    assert big.message == "attachment 'unboxing.mp4' is 31,457,280 bytes, over the limit of 20,971,520"
    assert big.problems[0].field == "attachments[1].size"
    unknown = _refused(state, Inbound("sms", {"phone": "13912345678", "qq": "12345"}, "hi"))
    assert unknown.problems[0].field == "sender.qq"
    placeholder = _refused(state, Inbound("sms", {"phone": "13800000000"}, "hi"))
    assert placeholder.problems[0].field == "sender.phone" and "placeholder phone" in placeholder.message
    no_app = _refused(state, Inbound("wechat_oa", {"openid": OPENID}, "hi"))
    assert no_app.problems[0].field == "account"
    channel = _refused(state, Inbound("qq", {"phone": "13912345678"}, "hi"))
    assert channel.problems[0].field == "channel"
    late = _refused(state, Inbound("sms", {"phone": "13912345678"}, "x" * 4001))
    assert late.problems[0].field == "text"
    naive = _refused(state, Inbound("sms", {"phone": "13912345678"}, "hi", sent_at=cn(12, 9).replace(tzinfo=None)))
    assert naive.problems[0].field == "sent_at"


def test_a_smaller_limit_from_the_settings_applies(state: StateStore) -> None:
    config = inbox_config({"max_attachment_bytes": 1000})
    photo = {"name": "photo.jpg", "size": 1001, "url": "https://img.example.cn/a.jpg"}
    err = _refused(state, Inbound("email", {"email": "li@example.cn"}, "", attachments=[photo]), PayloadTooLarge,
                   config=config)  # fmt: skip
    assert err.message == "attachment 'photo.jpg' is 1,001 bytes, over the limit of 1,000"
    ok = receive(state, Inbound("email", {"email": "li@qq.com"}, "", attachments=[{**photo, "size": 1000}]),
                 config=config, now=cn(12, 9))  # fmt: skip
    assert ok.message.attachments == [{"name": "photo.jpg", "size": 1000, "url": "https://img.example.cn/a.jpg"}]


def test_closed_conversations_reopen_within_the_window_and_not_after(state: StateStore) -> None:
    set_up_sla(state)
    first = receive(state, Inbound("sms", {"phone": "13912345678"}, "订单怎么还没到"), now=cn(12, 9))
    set_status(state, first.conversation.id, "closed", by="test", now=cn(12, 10))
    back = receive(state, Inbound("sms", {"phone": "13912345678"}, "还是没到"), now=cn(13, 9))
    assert (back.outcome, back.conversation.id, back.conversation.status) == ("reopened", first.conversation.id, "open")
    assert back.conversation.reopened == 1 and back.conversation.closed_at is None
    set_status(state, first.conversation.id, "closed", by="test", now=cn(13, 10))
    later = receive(state, Inbound("sms", {"phone": "13912345678"}, "新的问题"), now=cn(17, 9))  # 4 days later
    assert later.outcome == "new" and later.conversation.id != first.conversation.id
    set_status(state, later.conversation.id, "pending", by="test", now=cn(17, 9, 30))
    answer = receive(state, Inbound("sms", {"phone": "13912345678"}, "好的"), now=cn(17, 9, 40))
    assert (answer.outcome, answer.conversation.status) == ("open", "open")


def test_clerk_notes_join_the_conversation_and_start_no_clock(state: StateStore) -> None:
    set_up_sla(state)
    alone = receive(state, Inbound("clerk_note", {"member_card": "M0001234567", "phone": "13812345678"},
                                   "顾客喜欢黑色，M码", store_code="S001", author="店员 小王"), now=cn(12, 15))  # fmt: skip
    assert alone.message.direction == "note" and alone.conversation.status == "closed"
    assert alone.conversation.first_message_at is None and alone.conversation.response_due_at is None
    asks = receive(state, Inbound("sms", {"phone": "13812345678"}, "黑色M码还有货吗"), now=cn(13, 9))
    assert (asks.outcome, asks.conversation.id) == ("reopened", alone.conversation.id)
    assert asks.conversation.first_message_at == cn(13, 9)
    note = receive(state, Inbound("clerk_note", {"member_card": "M0001234567"}, "已到店试穿"), now=cn(13, 11))
    assert (note.outcome, note.conversation.id, note.conversation.awaiting_since) == ("open", asks.conversation.id,
                                                                                       cn(13, 9))  # fmt: skip


def test_a_complaint_raises_the_priority_and_its_sla(state: StateStore, understanding: Any) -> None:
    set_up_sla(state)
    sla.put_policy(state, channel="*", priority="high", first_response_minutes=10, resolution_minutes=120,
                   calendar="office", by="test")  # fmt: skip
    calm = receive(state, Inbound("jd_im", {"pin": "jd_4f7a9b2c1d3e"}, "围巾可以开发票吗"), now=cn(12, 9))
    assert (calm.conversation.priority, calm.conversation.complaint) == ("normal", False)
    assert calm.conversation.response_due_at == cn(12, 9, 30) and calm.message.intent == "question"
    angry = receive(state, Inbound("jd_im", {"pin": "jd_4f7a9b2c1d3e"}, "我要投诉，东西是坏的"), now=cn(12, 9, 5))
    c = angry.conversation
    assert (c.priority, c.complaint, c.intent) == ("high", True, "complaint")
    assert angry.message.complaint_score == 0.95
    # the response clock still runs from the first unanswered message, now against the 10-minute target
    assert (c.response_target_s, c.response_due_at, c.resolution_due_at) == (600, cn(12, 9, 10), cn(12, 11, 0))


def test_a_further_identifier_that_identifies_nobody_is_left_out(state: StateStore) -> None:
    got = receive(state, Inbound("sms", {"phone": "13912345678", "email": "test@test.com"}, "你好"), now=cn(12, 9))
    assert contact_keys(state, got.conversation.contact_id) == ["phone::+8613912345678"]
    card = receive(state, Inbound("clerk_note", {"member_card": "M0007654321", "phone": "13800000000"}, "喜欢白色"),
                   now=cn(12, 9, 1))  # fmt: skip
    assert contact_keys(state, card.conversation.contact_id) == ["member_card::M0007654321"]
    nobody = _refused(state, Inbound("clerk_note", {"phone": "13800000000"}, "喜欢白色"))
    assert nobody.problems[0].field == "sender.phone"
