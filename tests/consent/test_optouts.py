"""Opt-outs that act at once: SMS reply words, signed unsubscribe tokens, WeChat signatures and events."""

from __future__ import annotations

import pytest

from omnicrm.consent import ledger, replies, unsubscribe, wechat
from omnicrm.errors import InputError, NotFound
from omnicrm.store.state import StateStore

PHONE = "phone::+8613912345678"


@pytest.mark.parametrize(
    "text", ["T", "t", " td ", "TD。", "ＴＤ", "ｔ", "N", "退订", "退订！", "退", "取消", "请帮我退订", "Stop", "QX"]
)
def test_opt_out_replies(text: str) -> None:
    assert replies.opt_out_word(text) is not None


@pytest.mark.parametrize("text", ["好的", "Thanks", "TDD", "No problem", "什么时候发货", "1", ""])
def test_other_replies_are_not_opt_outs(text: str) -> None:
    assert replies.opt_out_word(text) is None


def test_sms_reply_withdraws_once(sqlite_state: StateStore) -> None:
    ledger.record(sqlite_state, subject=PHONE, channel="sms", purpose="marketing", granted=True,
                  source="signup_form", by="t", wording="v1")  # fmt: skip
    out = replies.handle_sms_reply(sqlite_state, None, phone="+86 139 1234 5678", text="ＴＤ", by="t")
    assert (out.phone, out.opt_out, out.matched, out.recorded) == (PHONE, True, "TD", True)
    assert [c.status for c in ledger.states(sqlite_state, [PHONE])] == ["withdrawn"]
    again = replies.handle_sms_reply(sqlite_state, None, phone="13912345678", text="退订", by="t")
    assert again.opt_out and not again.recorded
    assert len(ledger.history(sqlite_state, [PHONE])) == 2


def test_ordinary_reply_records_nothing(sqlite_state: StateStore) -> None:
    out = replies.handle_sms_reply(sqlite_state, None, phone="13912345678", text="什么时候发货?", by="t")
    assert not out.opt_out
    assert ledger.history(sqlite_state, [PHONE]) == []


@pytest.mark.parametrize("phone", ["", "12", "abc"])
def test_sms_reply_from_a_bad_phone_names_the_field(sqlite_state: StateStore, phone: str) -> None:
    with pytest.raises(InputError) as err:
        replies.handle_sms_reply(sqlite_state, None, phone=phone, text="T", by="t")
    assert "phone" in str(err.value)
    assert ledger.history(sqlite_state, [PHONE]) == []


def test_unsubscribe_token_round_trip_and_forgeries() -> None:
    token = unsubscribe.make_token("secret-1", "email::a@shop.cn", "email", "marketing")
    assert unsubscribe.read_token("secret-1", token) == ("email::a@shop.cn", "email", "marketing")
    other = unsubscribe.make_token("secret-1", "email::b@shop.cn", "email", "marketing")
    forged = [
        token.split(".")[0] + "." + other.split(".")[1],  # someone else's mac
        other.split(".")[0] + "." + token.split(".")[1],
        unsubscribe.make_token("another-secret", "email::a@shop.cn", "email", "marketing"),
        "not-a-token",
        token + "x",
        "",
    ]
    for bad in forged:
        with pytest.raises(InputError) as err:
            unsubscribe.read_token("secret-1", bad)
        assert "token" in str(err.value)
    with pytest.raises(InputError, match="channel"):
        unsubscribe.make_token("secret-1", "email::a@shop.cn", "pigeon", "marketing")


def test_wechat_signature(sqlite_state: StateStore) -> None:
    wechat.set_server_token(sqlite_state, "wx0a1b2c3d", "tok3n")
    good = wechat.sign("tok3n", "1700000000", "42")
    assert good == __import__("hashlib").sha1(b"1700000000" + b"42" + b"tok3n").hexdigest()
    wechat.verify(sqlite_state, "wx0a1b2c3d", signature=good, timestamp="1700000000", nonce="42")
    with pytest.raises(wechat.BadSignature) as err:
        wechat.verify(sqlite_state, "wx0a1b2c3d", signature=good, timestamp="1700000001", nonce="42")
    assert "signature" in str(err.value)
    with pytest.raises(NotFound):
        wechat.verify(sqlite_state, "wxunknown", signature=good, timestamp="1700000000", nonce="42")
    wechat.set_server_token(sqlite_state, "wx0a1b2c3d", "n3wtoken")  # replaced
    with pytest.raises(wechat.BadSignature):
        wechat.verify(sqlite_state, "wx0a1b2c3d", signature=good, timestamp="1700000000", nonce="42")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"<xml><ToUserName>gh_1</ToUserName>", "body"),
        (b"not xml", "body"),
        (b"<xml><ToUserName>gh_1</ToUserName><MsgType>event</MsgType></xml>", "FromUserName"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><xml></xml>', "body"),
        (b"<root><a/></root>", "body"),
        (
            b"<xml><ToUserName>g</ToUserName><FromUserName>o</FromUserName><MsgType>event</MsgType>"
            b"<CreateTime>soon</CreateTime></xml>",
            "CreateTime",
        ),
    ],
)
def test_malformed_wechat_messages(body: bytes, field: str) -> None:
    with pytest.raises(InputError) as err:
        wechat.parse_event(body)
    assert field in str(err.value)
