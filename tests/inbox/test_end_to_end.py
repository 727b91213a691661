"""End to end through the running app, on SQLite and PostgreSQL: one person writes by SMS (Alibaba Cloud's SmsUp
push), on Weibo (the signed webhook) and to the WeChat official account (its server URL); all three land in one
conversation beside the customer; the agent's reply goes out as a WeChat customer-service message to a stand-in of
the WeChat API on 127.0.0.1 that records it, and after the next SMS as an SMS through a stand-in of Alibaba Cloud.
Bad requests get clear errors and change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from omnicrm.access.api_keys import create_api_key
from omnicrm.api.app import create_app
from omnicrm.consent.replies import sms_up_token
from omnicrm.consent.wechat import set_server_token, sign
from omnicrm.inbox.outbound import signature
from omnicrm.settings import load_settings
from omnicrm.store.state import StateStore
from tests.channels.gateways import Gateway, Reply
from tests.consent.conftest import publish_identity
from tests.inbox.conftest import counts

APPID, OPENID, SERVER_TOKEN = "wx_oa_demo", "oAbCdEfGhIjKlMnOpQrStUvWxYz0", "tok123"
WEIBO_SECRET = "weibo-hook-secret"


@pytest.fixture
def providers() -> Iterator[Gateway]:
    """One local server standing in for the WeChat API and Alibaba Cloud SMS."""
    with Gateway() as running:
        running.default("/cgi-bin/token", Reply(200, {"access_token": "ACCESS-1", "expires_in": 7200}))
        running.default("/cgi-bin/message/custom/send", Reply(200, {"errcode": 0, "errmsg": "ok", "msgid": 9001}))
        running.default("/", Reply(200, {"Code": "OK", "Message": "OK", "BizId": "biz-77", "RequestId": "r"}))
        yield running


@pytest.fixture
def app(state: StateStore, providers: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        data_dir=tmp_path / "data", state_url=state.url, loader_interval_seconds=0, campaign_interval_seconds=0,
        channels={
            "oa": {"kind": "wechat", "base_url": providers.url, "options": {"app": "official_account"},
                   "credentials": {"app_id": APPID, "app_secret": "app-secret"}, "backoff_base": 0},
            "aliyun": {"kind": "sms", "base_url": providers.url,
                       "credentials": {"access_key_id": "key-id", "access_key_secret": "key-secret"},
                       "options": {"sign_name": "言木", "text_template_code": "SMS_100"}},
        },
        inbox={"reply_channels": {"wechat_oa": "oa", "sms": "aliyun"}, "webhook_secrets": {"weibo": WEIBO_SECRET},
               "worker_interval_seconds": 0},
    )  # fmt: skip
    publish_identity(settings.derived_dir, [
        (42, f"wechat_openid:{APPID}:{OPENID}"), (42, "phone::+8613912345678"), (42, "marketplace_nick:weibo:1850012345"),
    ])  # fmt: skip
    set_server_token(state, APPID, SERVER_TOKEN)
    key = create_api_key(state, "service desk", ["inbox:read", "inbox:write"])
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        client.secret = settings.secret_key  # type: ignore[attr-defined]
        yield client


def sms_push(app: TestClient, *items: dict[str, Any]) -> Any:
    return app.post(f"/sms/aliyun/{sms_up_token(app.secret)}/up", json=list(items))  # type: ignore[attr-defined]


def wechat_push(app: TestClient, msg_id: str, text: str) -> Any:
    xml = (f"<xml><ToUserName><![CDATA[gh_yanmu]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName>"
           f"<CreateTime>1794283200</CreateTime><MsgType><![CDATA[text]]></MsgType>"
           f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>")  # fmt: skip
    query = {"signature": sign(SERVER_TOKEN, "1794283200", "n0nce"), "timestamp": "1794283200", "nonce": "n0nce"}
    return app.post(f"/wechat/{APPID}/events", params=query, content=xml.encode())


def weibo_hook(app: TestClient, doc: dict[str, Any], secret: str = WEIBO_SECRET) -> Any:
    body = json.dumps(doc, ensure_ascii=False).encode()
    return app.post("/inbox/hooks/weibo", content=body, headers={"X-Omnicrm-Signature": signature(secret, body)})


def test_three_channels_one_conversation_and_replies_through_the_right_gateway(
    app: TestClient, state: StateStore, providers: Gateway
) -> None:
    agent = app.post("/api/inbox/agents", json={"name": "小美", "languages": ["zh"]}).json()
    assert app.post("/api/inbox/teams", json={"name": "service", "members": [agent["id"]]}).status_code == 201

    first = sms_push(app, {"phone_number": "13912345678", "content": "我的快递到哪了", "send_time": "2026-11-12 10:00:00",
                           "sequence_id": 1001, "dest_code": "1069"},
                     {"phone_number": "13800001234", "content": "TD", "send_time": "2026-11-12 10:00:01"})  # fmt: skip
    assert first.status_code == 200 and first.json()["opt_outs"] == 1  # the opt-out is consent's, not the inbox's
    wb = weibo_hook(app, {"message_id": "wb-1", "sender": {"uid": "1850012345"}, "text": "@言木 私信你了，看一下"})
    assert wb.status_code == 200 and wb.json()["outcome"] == "open"
    assert wechat_push(app, "5001", "公众号也问一下：快递到哪了？").text == "success"
    assert wechat_push(app, "5001", "公众号也问一下：快递到哪了？").text == "success"  # WeChat retries: one message

    [item] = app.get("/api/inbox/queue").json()["conversations"]
    conversation_id = item["conversation"]["id"]
    assert (item["conversation"]["agent_id"], item["conversation"]["customer_id"]) == (agent["id"], 42)
    shown = app.get(f"/api/inbox/conversations/{conversation_id}").json()
    assert [(m["channel"], m["text"]) for m in shown["messages"]] == [
        ("sms", "我的快递到哪了"), ("weibo", "@言木 私信你了，看一下"), ("wechat_oa", "公众号也问一下：快递到哪了？")
    ]  # fmt: skip
    assert shown["customer"]["customer_id"] == 42 and shown["customer"]["provisional"] is False
    assert shown["conversation"]["last_channel"] == "wechat_oa"

    answer = {"agent_id": agent["id"], "text": "亲，包裹已到杭州转运中心，明天送达", "idempotency_key": "reply-1"}
    sent = app.post(f"/api/inbox/conversations/{conversation_id}/replies", json=answer)
    assert sent.status_code == 201 and sent.json()["delivered"] is True
    [call] = providers.to("/cgi-bin/message/custom/send")
    assert call.q("access_token") == "ACCESS-1"
    assert call.json() == {
        "touser": OPENID,
        "msgtype": "text",
        "text": {"content": "亲，包裹已到杭州转运中心，明天送达"},
    }
    repeat = app.post(f"/api/inbox/conversations/{conversation_id}/replies", json=answer)
    assert repeat.json()["repeated"] is True and len(providers.to("/cgi-bin/message/custom/send")) == 1
    assert providers.to("/") == []  # nothing went by SMS

    sms_push(app, {"phone_number": "13912345678", "content": "好的，谢谢", "send_time": "2026-11-12 10:20:00",
                   "sequence_id": 1002})  # fmt: skip
    by_sms = app.post(
        f"/api/inbox/conversations/{conversation_id}/replies",
        json={**answer, "text": "不客气，有问题随时找我们", "idempotency_key": "reply-2", "then": "closed"},
    )
    assert by_sms.status_code == 201 and by_sms.json()["conversation"]["status"] == "closed"
    [sms] = providers.to("/")
    assert (sms.q("PhoneNumbers"), sms.q("TemplateCode"), sms.q("SignName")) == ("13912345678", "SMS_100", "言木")
    assert json.loads(sms.q("TemplateParam")) == {
        "content": "不客气，有问题随时找我们"
    }  # a service text: no opt-out line

    before = counts(state)
    closed = app.post(f"/api/inbox/conversations/{conversation_id}/replies",
                      json={**answer, "text": "还有别的问题吗", "idempotency_key": "reply-3"})  # fmt: skip
    assert closed.status_code == 409
    assert closed.json() == {"code": "conflict", "message": f"conversation {conversation_id} is closed: a reply cannot "
                             "be sent", "problems": [{"reason": "reopen it first", "field": "status"}]}  # fmt: skip
    assert counts(state) == before and len(providers.requests) == 3


def test_bad_requests_get_clear_errors_and_change_nothing(app: TestClient, state: StateStore) -> None:
    before = counts(state)
    empty = app.post("/api/inbox/messages", json={"channel": "sms", "sender": {"phone": "13912345678"}, "text": " "})
    assert (empty.status_code, empty.json()["message"], empty.json()["problems"][0]["field"]) == (
        400, "the message is empty", "text")  # fmt: skip
    huge = app.post("/api/inbox/messages", json={
        "channel": "email", "sender": {"email": "li.na@qq.com"}, "text": "see the video",
        "attachments": [{"name": "unboxing.mov", "type": "video/quicktime", "size": 52_428_800, "url": "https://x.cn/v"}],
    })  # fmt: skip
    assert huge.status_code == 413 and huge.json() == {
        "code": "payload_too_large", "message": "attachment 'unboxing.mov' is 52,428,800 bytes, over the limit of "
        "20,971,520", "problems": [{"reason": "send a smaller file or a link to it", "field": "attachments[0].size"}],
    }  # fmt: skip
    forged = weibo_hook(app, {"message_id": "wb-2", "sender": {"uid": "1850012345"}, "text": "hi"}, secret="guessed")
    assert forged.status_code == 403 and forged.json()["code"] == "bad_signature"
    unknown = weibo_hook(app, {"sender": {"uid": "1850012345"}, "text": "hi"})
    assert unknown.status_code == 200  # the right secret: accepted
    assert app.post("/inbox/hooks/wangwang", content=b"{}").status_code == 404  # no webhook set up for it
    assert app.get("/api/inbox/conversations/999").status_code == 404
    assert counts(state)[3] == before[3] + 1  # only the signed Weibo message was stored

    note = app.post("/api/inbox/messages", json={"channel": "clerk_note", "text": "顾客想要黑色M码，到货通知她",
                                                   "sender": {"member_card": "M0001234567", "phone": "13912345678"},
                                                   "store_code": "S001"})  # fmt: skip
    assert note.status_code == 201
    assert (note.json()["message"]["direction"], note.json()["message"]["author"]) == ("note", "api:service desk")
    assert app.get("/api/inbox/quick-replies").json() == {"quick_replies": []}
