"""Consents through the API: record and read them, and the opt-out routes people and providers call.

- ``/api/consents…`` and ``/api/customers/{id}/consents``: API keys with ``consents:read`` / ``consents:write``.
- ``/api/consents/sms-replies``: an SMS provider forwarding inbound messages (``consents:write``).
- ``/u/{token}``: unsubscribe links; public, the signed token is the authority. GET shows a page with a
  button and changes nothing (mail scanners open links); POST withdraws (the button, and RFC 8058
  one-click ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``).
- ``/wechat/{appid}/events``: WeChat server messages; public, the signature is the authority.
- ``/sms/aliyun/{token}/up``: Alibaba Cloud's SmsUp push of SMS replies; public, the secret address is the
  authority (``omnicrm consents sms-up-url`` prints it).
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from omnicrm.api import inbox as inbox_api
from omnicrm.api.customers import Key
from omnicrm.consent import ledger, personalisation, replies, unsubscribe, wechat
from omnicrm.consent.overview import customer_consents, subject_consents
from omnicrm.consent.subjects import check_channel, customer_of, subject_key
from omnicrm.errors import InputError

__all__ = ["router"]

router = APIRouter(tags=["consents"])


class ConsentRecord(BaseModel):
    subject: str = Field(description="identifier key of the address: phone::+8613800138000, email::a@b.cn, "
                         "wechat_openid:<appid>:<openid>")  # fmt: skip
    channel: str = Field(description="email, sms, wechat_oa, wechat_mp, wecom or app_push")
    purpose: str = Field(description="marketing or service")
    status: Literal["granted", "withdrawn"]
    source: str = Field(description="signup_form, staff, import, api, preference_centre, …")
    wording: str | None = Field(default=None, description="version of the wording the person saw (needed to grant)")
    at: datetime | None = Field(default=None, description="when the person decided (default: now); with offset")
    note: str | None = Field(default=None, max_length=1000)


class PersonalisationChoice(BaseModel):
    subject: str = Field(description="identifier key of one of the person's addresses")
    non_personalised: bool = Field(description="true: only non-personalised marketing (PIPL art. 24)")
    source: str
    wording: str | None = None
    at: datetime | None = None
    note: str | None = Field(default=None, max_length=1000)


class SmsReply(BaseModel):
    phone: str = Field(description="the sender's mobile number, as the provider gives it")
    text: str = Field(description="the text of the reply")
    received_at: datetime | None = Field(default=None, description="when the provider received it (with offset)")


def _snapshot(request: Request) -> Any:
    return request.app.state.derived.current("identity")


@router.post("/api/consents", summary="Record a grant or a withdrawal (append-only; the latest record counts)")
def record_consent(request: Request, key: Key, body: ConsentRecord) -> dict[str, Any]:
    key.require("consents:write")
    check_channel(body.channel)
    subject = subject_key(body.subject, body.channel)
    done = ledger.record(
        request.app.state.state_store, subject=subject, channel=body.channel, purpose=body.purpose,
        granted=body.status == "granted", source=body.source, by=f"api:{key.name}", wording=body.wording,
        detail=body.note, customer_id=customer_of(_snapshot(request), subject), at=body.at,
    )  # fmt: skip
    assert done is not None
    return done.as_dict()


@router.get("/api/consents", summary="An address's current consents, its personalisation choice and its history")
def read_subject(
    request: Request, key: Key, subject: Annotated[str, Query(description="identifier key, e.g. email::a@b.cn")]
) -> dict[str, Any]:
    key.require("consents:read")
    return subject_consents(request.app.state.state_store, subject_key(subject))


@router.put("/api/consents/personalisation", summary="Ask for (or stop asking for) non-personalised marketing only")
def set_personalisation(request: Request, key: Key, body: PersonalisationChoice) -> dict[str, Any]:
    key.require("consents:write")
    subject = subject_key(body.subject)
    return personalisation.set_choice(
        request.app.state.state_store, subject=subject, non_personalised=body.non_personalised, source=body.source,
        by=f"api:{key.name}", wording=body.wording, detail=body.note,
        customer_id=customer_of(_snapshot(request), subject), at=body.at,
    ).as_dict()  # fmt: skip


@router.post("/api/consents/sms-replies", summary="An inbound SMS forwarded by the provider; opt-out replies withdraw")
def sms_reply(request: Request, key: Key, body: SmsReply) -> dict[str, Any]:
    key.require("consents:write")
    return replies.handle_sms_reply(
        request.app.state.state_store, _snapshot(request), phone=body.phone, text=body.text,
        by=f"api:{key.name}", received_at=body.received_at,
    ).as_dict()  # fmt: skip


@router.post("/sms/aliyun/{token}/up", summary="Alibaba Cloud SMS replies (SmsUp HTTP batch push); opt-outs withdraw")
async def aliyun_sms_up(request: Request, token: str) -> JSONResponse:
    app = request.app.state
    if not replies.check_sms_up_token(app.settings.secret_key, token):
        return JSONResponse({"code": 404, "msg": "unknown address"}, status_code=404)
    try:
        items = await request.json()
    except ValueError:
        return JSONResponse({"code": 400, "msg": "the body is not JSON"}, status_code=400)
    outcomes, problems = await run_in_threadpool(
        replies.handle_sms_up, app.state_store, app.derived.current("identity"), items, by="aliyun sms"
    )
    await run_in_threadpool(inbox_api.take_sms_replies, app, items)  # replies that are not opt-outs: the inbox
    if problems:  # a non-200 answer makes the provider push again; the good items are applied once either way
        detail = "; ".join(str(p) for p in problems)
        return JSONResponse({"code": 400, "msg": detail, "applied": len(outcomes)}, status_code=400)
    return JSONResponse({"code": 0, "msg": "接收成功", "opt_outs": sum(o.opt_out for o in outcomes)})


@router.get("/api/customers/{customer_id}/consents", summary="A customer's addresses and their current consents")
def customer(request: Request, key: Key, customer_id: int) -> dict[str, Any]:
    key.require("consents:read")
    return customer_consents(request.app.state.state_store, _snapshot(request), customer_id).as_dict()


# --- unsubscribe links -------------------------------------------------------------------------

_CHANNEL_WORDS = {
    "email": ("邮件", "emails"),
    "sms": ("短信", "text messages"),
    "wechat_oa": ("公众号消息", "WeChat official account messages"),
    "wechat_mp": ("小程序消息", "mini-program messages"),
    "wecom": ("企业微信消息", "WeCom messages"),
    "app_push": ("App 推送", "app notifications"),
}
_PURPOSE_WORDS = {"marketing": ("营销", "marketing"), "service": ("服务", "service")}


def _mask(subject: str) -> str:
    value = subject.split(":", 2)[2]
    if "@" in value:
        name, domain = value.split("@", 1)
        return f"{name[:1]}***@{domain}"
    return value[:4] + "****" + value[-4:] if len(value) > 8 else "****"


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">
<title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;line-height:1.6}}
button{{font-size:1rem;padding:.6rem 1.4rem;cursor:pointer}}</style></head>
<body>{body}</body></html>""",
        status_code=status,
    )


def _invalid(exc: InputError) -> HTMLResponse:
    reason = "; ".join(str(p) for p in exc.problems) or exc.message
    return _page(
        "退订链接无效 / Invalid link",
        f"<h1>退订链接无效</h1><p>This unsubscribe link is not valid.</p><p><small>{html.escape(reason)}</small></p>",
        status=exc.status,
    )


def _what(channel: str, purpose: str) -> tuple[str, str]:
    zh = _PURPOSE_WORDS[purpose][0] + _CHANNEL_WORDS[channel][0]
    en = f"{_PURPOSE_WORDS[purpose][1]} {_CHANNEL_WORDS[channel][1]}"
    return zh, en


@router.get("/u/{token}", summary="Unsubscribe page: confirms with a button (public; the token is the authority)")
def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    try:
        subject, channel, purpose = unsubscribe.read_token(request.app.state.settings.secret_key, token)
    except InputError as exc:
        return _invalid(exc)
    zh, en = _what(channel, purpose)
    address = html.escape(_mask(subject))
    return _page(
        "退订 / Unsubscribe",
        f"""<h1>退订{html.escape(zh)}</h1><p>不再向 {address} 发送{html.escape(zh)}。</p>
<p>Stop sending {html.escape(en)} to {address}.</p>
<form method="post" action="/u/{html.escape(token)}"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">确认退订 / Unsubscribe</button></form>""",
    )


@router.post("/u/{token}", summary="Unsubscribe at once (the page's button and RFC 8058 one-click; public)")
def unsubscribe_now(request: Request, token: str) -> HTMLResponse:
    try:
        subject, channel, purpose = unsubscribe.read_token(request.app.state.settings.secret_key, token)
    except InputError as exc:
        return _invalid(exc)
    ledger.record(
        request.app.state.state_store, subject=subject, channel=channel, purpose=purpose, granted=False,
        source="unsubscribe_link", by="unsubscribe link", customer_id=customer_of(_snapshot(request), subject),
        only_if_changed=True,
    )  # fmt: skip
    zh, en = _what(channel, purpose)
    return _page(
        "已退订 / Unsubscribed",
        f"<h1>已退订</h1><p>我们不会再向 {html.escape(_mask(subject))} 发送{html.escape(zh)}。</p>"
        f"<p>You will no longer receive {html.escape(en)}.</p>",
    )


# --- WeChat server messages ----------------------------------------------------------------------

Signed = Annotated[str, Query(min_length=1, max_length=128)]


@router.get("/wechat/{appid}/events", summary="WeChat server URL check: answers echostr when the signature holds")
def wechat_check(
    request: Request, appid: str, signature: Signed, timestamp: Signed, nonce: Signed, echostr: Signed
) -> PlainTextResponse:
    wechat.verify(request.app.state.state_store, appid, signature=signature, timestamp=timestamp, nonce=nonce)
    return PlainTextResponse(echostr)


@router.post("/wechat/{appid}/events", summary="WeChat server messages; an unsubscribe event withdraws marketing")
async def wechat_event(
    request: Request, appid: str, signature: Signed, timestamp: Signed, nonce: Signed
) -> PlainTextResponse:
    state = request.app.state.state_store
    await run_in_threadpool(wechat.verify, state, appid, signature=signature, timestamp=timestamp, nonce=nonce)
    body = await request.body()
    event = wechat.parse_event(body)
    await run_in_threadpool(wechat.handle_event, state, _snapshot(request), appid, event)
    await run_in_threadpool(inbox_api.take_wechat_message, request.app.state, appid, body)  # messages: the inbox
    return PlainTextResponse("success")
