"""WeChat subscription messages and WeCom customer messages against a local gateway."""

from __future__ import annotations

from decimal import Decimal

import pytest

from omnicrm.channels import ChannelSettings, Message, Outcome, build
from omnicrm.channels import wechat as wechat_module
from omnicrm.channels.wechat import WeChatSubscribeChannel
from omnicrm.channels.wecom import WeComCustomerChannel
from omnicrm.errors import ConfigError
from tests.channels.gateways import Gateway, Reply

SEND = "/cgi-bin/message/subscribe/send"
TOKEN = Reply(200, {"access_token": "tok-1", "expires_in": 7200})


def wechat(gateway: Gateway, sleeps: list[float], **options: object) -> WeChatSubscribeChannel:
    settings = ChannelSettings(
        kind="wechat",
        base_url=gateway.url,
        credentials={"app_id": "wx123", "app_secret": "sec"},
        cost_per_unit=Decimal(0),
        rate_per_second=0,
        backoff_base=0.01,
        options=dict(options),
    )
    return WeChatSubscribeChannel("wechat", settings, sleep=sleeps.append)


def message(**kw: object) -> Message:
    values: dict[str, object] = {
        "channel": "wechat",
        "address": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "campaign_id": "c1",
        "recipient": "cust-1",
        "template_id": "TPL-care",
        "params": {"thing1": "会员关怀", "time2": "2026-11-14"},
        "page": "pages/coupon/index?c=1",
        "language": "en",
    }
    values.update(kw)
    return Message(**values)


def test_request_shape_and_token_cached(gateway: Gateway, sleeps: list[float]) -> None:
    gateway.script("/cgi-bin/token", TOKEN)
    gateway.default(SEND, Reply(200, {"errcode": 0, "errmsg": "ok", "msgid": 294402298110051942}))
    ch = wechat(gateway, sleeps, miniprogram_state="trial")
    first = ch.send(message())
    second = ch.send(message(recipient="cust-2"))
    assert first.outcome is Outcome.SENT and first.provider_message_id == "294402298110051942" and second.ok
    (token_call,) = gateway.to("/cgi-bin/token")
    assert token_call.query == {"grant_type": ["client_credential"], "appid": ["wx123"], "secret": ["sec"]}
    sent = gateway.to(SEND)
    assert [r.q("access_token") for r in sent] == ["tok-1", "tok-1"]
    assert sent[0].method == "POST" and sent[0].json() == {
        "touser": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "template_id": "TPL-care",
        "page": "pages/coupon/index?c=1",
        "data": {"thing1": {"value": "会员关怀"}, "time2": {"value": "2026-11-14"}},
        "miniprogram_state": "trial",
        "lang": "en_US",
    }


def test_43101_is_refused_and_not_retried(gateway: Gateway, sleeps: list[float]) -> None:
    gateway.default("/cgi-bin/token", TOKEN)
    gateway.default(SEND, Reply(200, {"errcode": 43101, "errmsg": "user refuse to accept the msg"}))
    result = wechat(gateway, sleeps).send(message())
    assert result.outcome is Outcome.REFUSED and result.attempts == 1 and result.provider_code == "43101"
    assert len(gateway.to(SEND)) == 1 and sleeps == []


def test_expired_token_is_refreshed_once(gateway: Gateway, sleeps: list[float]) -> None:
    gateway.script("/cgi-bin/token", TOKEN, Reply(200, {"access_token": "tok-2", "expires_in": 7200}))
    gateway.script(SEND, Reply(200, {"errcode": 40001, "errmsg": "invalid credential"}), Reply(200, {"errcode": 0}))
    result = wechat(gateway, sleeps).send(message())
    assert result.ok and result.attempts == 1
    assert [r.q("access_token") for r in gateway.to(SEND)] == ["tok-1", "tok-2"]
    assert len(gateway.to("/cgi-bin/token")) == 2


def test_5xx_retried_4xx_not(gateway: Gateway, sleeps: list[float]) -> None:
    gateway.default("/cgi-bin/token", TOKEN)
    gateway.script(SEND, Reply(502), Reply(200, {"errcode": 0}))
    assert wechat(gateway, sleeps).send(message()).attempts == 2
    gateway.script(SEND, Reply(403, {"errmsg": "forbidden"}))
    result = wechat(gateway, sleeps).send(message())
    assert result.outcome is Outcome.FAILED_PERMANENT and result.attempts == 1 and "HTTP 403" in (result.error or "")


def test_bad_field_names_the_provider_code(gateway: Gateway, sleeps: list[float]) -> None:
    gateway.default("/cgi-bin/token", TOKEN)
    gateway.default(SEND, Reply(200, {"errcode": 47003, "errmsg": "argument invalid! data.thing1.value"}))
    result = wechat(gateway, sleeps).send(message())
    assert result.outcome is Outcome.FAILED_PERMANENT and "47003" in (result.error or "")
    assert "data.thing1.value" in (result.error or "")


def test_official_account_uses_bizsend(gateway: Gateway, sleeps: list[float]) -> None:
    gateway.default("/cgi-bin/token", TOKEN)
    gateway.default("/cgi-bin/message/subscribe/bizsend", Reply(200, {"errcode": 0}))
    assert wechat(gateway, sleeps, app="official_account").send(message(page="https://shop.example.com/d11")).ok
    body = gateway.to("/cgi-bin/message/subscribe/bizsend")[0].json()
    assert body["page"] == "https://shop.example.com/d11" and "miniprogram_state" not in body


def test_template_messages_cannot_be_offered() -> None:
    assert not any("template" in name.lower() for name in wechat_module.__all__)
    with pytest.raises(ConfigError, match="service notices only"):
        build("wx", {"kind": "wechat_template", "base_url": "http://127.0.0.1:1"})


WECOM_SEND = "/cgi-bin/externalcontact/add_msg_template"


def wecom(gateway: Gateway, sleeps: list[float]) -> WeComCustomerChannel:
    settings = ChannelSettings(
        kind="wecom",
        base_url=gateway.url,
        credentials={"corp_id": "ww1", "corp_secret": "cs"},
        rate_per_second=0,
        options={"sender": "zhangsan"},
    )
    return WeComCustomerChannel("wecom", settings, sleep=sleeps.append)


def test_wecom_request_shape_refresh_and_fail_list(gateway: Gateway, sleeps: list[float]) -> None:
    gateway.script(
        "/cgi-bin/gettoken",
        Reply(200, {"errcode": 0, "access_token": "w1", "expires_in": 7200}),
        Reply(200, {"errcode": 0, "access_token": "w2", "expires_in": 7200}),
    )
    gateway.script(
        WECOM_SEND,
        Reply(200, {"errcode": 42001, "errmsg": "access_token expired"}),
        Reply(200, {"errcode": 0, "errmsg": "ok", "fail_list": [], "msgid": "msgGCAAAXtWyujaWJHDDGi0mAAAA"}),
        Reply(200, {"errcode": 0, "errmsg": "ok", "fail_list": ["wmGONE"], "msgid": "m2"}),
    )
    link = {"msgtype": "link", "link": {"title": "双11", "url": "https://shop.example.com/d11"}}
    msg = Message(
        channel="wecom", address="wmXYZ", campaign_id="c9", recipient="cust-3", body="新品到店", attachments=(link,)
    )
    ch = wecom(gateway, sleeps)
    result = ch.send(msg)
    assert result.ok and result.provider_message_id == "msgGCAAAXtWyujaWJHDDGi0mAAAA"
    assert gateway.to("/cgi-bin/gettoken")[0].query == {"corpid": ["ww1"], "corpsecret": ["cs"]}
    sent = gateway.to(WECOM_SEND)
    assert [r.q("access_token") for r in sent] == ["w1", "w2"]
    assert sent[1].json() == {
        "chat_type": "single",
        "external_userid": ["wmXYZ"],
        "sender": "zhangsan",
        "text": {"content": "新品到店"},
        "attachments": [link],
    }
    gone = ch.send(Message(channel="wecom", address="wmGONE", campaign_id="c9", recipient="cust-4", body="x"))
    assert gone.outcome is Outcome.REFUSED and gone.attempts == 1
