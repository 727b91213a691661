"""The service inbox through the API: messages in, the live queue, conversations, replies and notes, assignment,
status and priority, quick replies, SLA policies and calendars, reports, agents and teams.

- ``/api/inbox/…``: API keys with ``inbox:read`` / ``inbox:write``. Read routes take ``at`` (a time with offset) to
  see the queue, warnings and reports as of another moment.
- ``/inbox/hooks/{channel}``: a channel's signed JSON webhook (marketplace IM, Weibo, email relays); public, the
  HMAC signature with the channel's secret is the authority (omnicrm.inbox.webhooks).
- WeChat official-account messages arrive on ``/wechat/{appid}/events`` and SMS replies on the SmsUp push route
  (api/consents.py), which hand them to ``take_wechat_message`` and ``take_sms_replies`` here.

The router's lifespan starts the inbox worker (SLA warnings, OneID, facts) and keeps one set of reply channels.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

import duckdb
from fastapi import APIRouter, FastAPI, Header, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from omnicrm.api.customers import Key
from omnicrm.api.responses import JSONBody
from omnicrm.customers.view import customer_360
from omnicrm.errors import InputError, OmnicrmError
from omnicrm.inbox import agents, assignment, quick_replies, reports, sla, webhooks
from omnicrm.inbox import conversations as convs
from omnicrm.inbox.config import InboxConfig, inbox_config
from omnicrm.inbox.contacts import contact_keys, contact_name
from omnicrm.inbox.messages import list_messages, note, receive
from omnicrm.inbox.outbound import Outbox
from omnicrm.inbox.queue import live_queue, warnings
from omnicrm.inbox.replies import reply
from omnicrm.inbox.senders import Inbound
from omnicrm.inbox.worker import InboxWorker
from omnicrm.logs import get_logger

__all__ = ["customer_of", "known_values", "outbox_of", "router", "take_sms_replies", "take_wechat_message"]

log = get_logger(__name__)
_LOCK = threading.Lock()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    s = app.state
    config = inbox_config(s.settings)
    worker = None
    if config.worker_interval_seconds > 0:
        worker = InboxWorker(s.state_store, s.derived, s.facts, config,
                             write_facts=s.settings.loader_interval_seconds > 0)  # fmt: skip
        worker.start()
    yield
    if worker is not None:
        worker.stop()
    outbox = getattr(s, "inbox_outbox", None)
    if outbox is not None:
        outbox.close()


router = APIRouter(tags=["inbox"], lifespan=_lifespan)
READ, WRITE = "inbox:read", "inbox:write"
At = Annotated[datetime | None, Query(description="see it as of this time (with offset); default now")]


def _config(app: Any) -> InboxConfig:
    return inbox_config(app.settings)


def outbox_of(app: Any) -> Outbox:
    """The app's reply channels, built once (their access tokens and connections are shared)."""
    with _LOCK:
        if getattr(app, "inbox_outbox", None) is None:
            app.inbox_outbox = Outbox(app.settings.channels, _config(app))
        outbox: Outbox = app.inbox_outbox
        return outbox


def _take(app: Any, message: Inbound, by: str) -> dict[str, Any]:
    return receive(app.state_store, message, config=_config(app), snapshot=app.derived.current("identity"),
                   by=by).as_dict()  # fmt: skip


# --- messages in -------------------------------------------------------------------------------------------------


class MessageIn(BaseModel):
    channel: str = Field(description="wechat_oa, wecom, weibo, wangwang, jd_im, sms, email or clerk_note")
    sender: dict[str, str] = Field(description="the customer's identifiers: openid, nick, pin, uid, phone, email, ...")
    text: str = ""
    attachments: list[dict[str, Any]] = Field(default_factory=list, description="{name, type, size, url | media_id}")
    message_id: str | None = Field(None, description="the channel's message id: the same id twice is one message")
    account: str = Field("", description="the merchant's account it came to, e.g. the official account's app id")
    sent_at: datetime | None = None
    name: str | None = None
    subject: str | None = None
    language: Literal["zh", "en"] | None = None
    store_code: str | None = Field(None, description="clerk notes: the store")
    author: str | None = Field(None, description="clerk notes: who wrote it")


@router.post("/api/inbox/messages", status_code=201,
             summary="A customer's message (or a store clerk's note) lands in their conversation")  # fmt: skip
def post_message(request: Request, key: Key, body: MessageIn) -> dict[str, Any]:
    key.require(WRITE)
    message = Inbound(
        channel=body.channel, sender=body.sender, text=body.text, attachments=body.attachments,
        external_id=body.message_id, account=body.account, sent_at=body.sent_at, name=body.name,
        subject=body.subject, language=body.language, store_code=body.store_code,
        author=body.author or (f"api:{key.name}" if body.channel == "clerk_note" else None),
    )  # fmt: skip
    return _take(request.app.state, message, f"api:{key.name}")


@router.post("/inbox/hooks/{channel}", summary="A channel's signed JSON webhook (public; the HMAC is the authority)")
async def hook(
    request: Request, channel: str, signature: Annotated[str | None, Header(alias="X-Omnicrm-Signature")] = None
) -> dict[str, Any]:
    app = request.app.state
    body = await request.body()
    webhooks.verify_hook(_config(app), channel, body, signature)
    message = webhooks.from_hook(channel, body)
    return await run_in_threadpool(_take, app, message, f"hook:{channel}")


def take_wechat_message(app: Any, appid: str, body: bytes) -> dict[str, Any] | None:
    """A follower's message to an official account (already signature-checked) into the inbox; events are not
    messages. A message the inbox refuses is logged, not answered with an error: WeChat would only resend it."""
    try:
        message = webhooks.from_wechat(appid, body)
        return None if message is None else _take(app, message, f"wechat:{appid}")
    except InputError as exc:
        log.warning("a WeChat message was not taken into the inbox", appid=appid, error=str(exc))
        return None


def take_sms_replies(app: Any, items: object) -> int:
    """The replies of an SmsUp push that are not opt-outs into the inbox; returns how many were taken."""
    taken = 0
    for message in webhooks.from_sms_up(items):
        try:
            _take(app, message, "aliyun sms")
            taken += 1
        except InputError as exc:
            log.warning("an SMS reply was not taken into the inbox", error=str(exc))
    return taken


# --- the queue and conversations ---------------------------------------------------------------------------------


@router.get("/api/inbox/queue", summary="Open conversations, highest risk of breaking an SLA first")
def queue(request: Request, key: Key, at: At = None, team_id: int | None = None, agent_id: int | None = None,
          unassigned: bool = False, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:  # fmt: skip
    key.require(READ)
    config = _config(request.app.state)
    items = live_queue(request.app.state.state_store, now=at, team_id=team_id, agent_id=agent_id,
                       unassigned=unassigned, limit=limit)  # fmt: skip
    return {"warn_at": config.warn_at, "conversations": [i.as_dict(config.warn_at) for i in items]}


@router.get("/api/inbox/warnings", summary="SLA clocks close to (or past) their targets")
def sla_warnings(request: Request, key: Key, at: At = None) -> dict[str, Any]:
    key.require(READ)
    warn_at = _config(request.app.state).warn_at
    found = warnings(request.app.state.state_store, now=at, warn_at=warn_at)
    return {"warnings": [{"conversation_id": item.conversation.id, "agent_id": item.conversation.agent_id,
                          **clock.as_dict(warn_at)} for item, clock in found]}  # fmt: skip


@router.get("/api/inbox/conversations", summary="Conversations, latest activity first, a page at a time")
def conversations(request: Request, key: Key, status: str | None = None, agent_id: int | None = None,
                  customer_id: int | None = None, offset: int = Query(0, ge=0),
                  limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:  # fmt: skip
    key.require(READ)
    page, total = convs.list_conversations(request.app.state.state_store, status=status, agent_id=agent_id,
                                           customer_id=customer_id, limit=limit, offset=offset)  # fmt: skip
    return {"total": total, "offset": offset, "limit": limit, "conversations": [c.as_dict() for c in page]}


def customer_of(app: Any, c: convs.Conversation) -> dict[str, Any]:
    """The customer's 360 beside the conversation, or what the inbox knows of a provisional one."""
    keys = contact_keys(app.state_store, c.contact_id)
    if c.customer_id is None:
        return {"provisional": True, "contact_id": c.contact_id, "identifiers": keys}
    try:
        view = customer_360(app.derived, app.state_store, c.customer_id, limit=10, orders=5)
    except (OmnicrmError, duckdb.Error, OSError) as exc:  # the conversation is shown without it, saying why
        reason = exc.message if isinstance(exc, OmnicrmError) else "the customer's derived data cannot be read"
        log.warning("no 360 beside a conversation", conversation_id=c.id, error=repr(exc))
        return {"provisional": False, "customer_id": c.customer_id, "identifiers": keys, "unavailable": reason}
    return {"provisional": False, "customer_id": c.customer_id, "identifiers": keys, "360": view}


@router.get("/api/inbox/conversations/{conversation_id}", summary="A conversation, its messages and the customer")
def conversation(request: Request, key: Key, conversation_id: int) -> dict[str, Any]:
    key.require(READ)
    app = request.app.state
    c = convs.get_conversation(app.state_store, conversation_id)
    return {
        "conversation": c.as_dict(),
        "messages": [m.as_dict() for m in list_messages(app.state_store, conversation_id, limit=1000)],
        "activity": convs.activity(app.state_store, conversation_id),
        "customer": customer_of(app, c),
    }


class ReplyIn(BaseModel):
    agent_id: int
    idempotency_key: str = Field(min_length=1, max_length=200, description="the same key sends once")
    text: str | None = Field(None, description="the reply; or use a quick reply")
    quick_reply_id: int | None = None
    values: dict[str, str] = Field(default_factory=dict, description="values of the quick reply's placeholders")
    subject: str | None = Field(None, description="email: the subject (default: Re: the customer's)")
    then: Literal["pending", "closed"] | None = Field(None, description="status once the reply went out")


def known_values(app: Any, c: convs.Conversation, agent_id: int | None) -> dict[str, str | None]:
    """What fills a quick reply's automatic placeholders in this conversation."""
    with app.state_store.connect() as conn:
        agent = agents.get_agent(conn, agent_id).name if agent_id is not None else None
    return {"customer_name": contact_name(app.state_store, c.contact_id), "agent_name": agent,
            "shop_name": app.settings.shop_name or None}  # fmt: skip


@router.post("/api/inbox/conversations/{conversation_id}/replies", status_code=201,
             summary="Answer the customer on the channel they last wrote from (once per idempotency key)")  # fmt: skip
def post_reply(request: Request, key: Key, conversation_id: int, body: ReplyIn) -> Any:
    key.require(WRITE)
    app = request.app.state
    text = body.text
    if body.quick_reply_id is not None:
        c = convs.get_conversation(app.state_store, conversation_id)
        picked = quick_replies.get_quick_reply(app.state_store, body.quick_reply_id)
        text = quick_replies.render(picked, body.values, known_values(app, c, body.agent_id))
    done = reply(app.state_store, conversation_id, body.agent_id, text or "", outbox=outbox_of(app),
                 idempotency_key=body.idempotency_key, subject=body.subject, then=body.then,
                 max_chars=_config(app).max_text_chars)  # fmt: skip
    if not done.delivered and done.message.delivery != "sending":
        return JSONBody({"code": "not_delivered", "message": f"the reply was not delivered: {done.message.error}",
                         **done.as_dict()}, status_code=502)  # fmt: skip
    return done.as_dict()


class NoteIn(BaseModel):
    text: str
    agent_id: int | None = None


@router.post("/api/inbox/conversations/{conversation_id}/notes", status_code=201,
             summary="An internal note: for agents only, never sent")  # fmt: skip
def post_note(request: Request, key: Key, conversation_id: int, body: NoteIn) -> dict[str, Any]:
    key.require(WRITE)
    app = request.app.state
    return note(app.state_store, conversation_id, body.text, agent_id=body.agent_id, author=f"api:{key.name}",
                max_chars=_config(app).max_text_chars).as_dict()  # fmt: skip


class AssignIn(BaseModel):
    agent_id: int | None = Field(None, description="the agent; with neither agent nor auto: back to the queue")
    team_id: int | None = None
    auto: bool = Field(False, description="the team's round robin by skill and capacity")


@router.post("/api/inbox/conversations/{conversation_id}/assign", summary="Reassign to an agent, a team or the queue")
def post_assign(request: Request, key: Key, conversation_id: int, body: AssignIn) -> dict[str, Any]:
    key.require(WRITE)
    return assignment.assign(request.app.state.state_store, conversation_id, agent_id=body.agent_id,
                             team_id=body.team_id, auto=body.auto, by=f"api:{key.name}").as_dict()  # fmt: skip


class StatusIn(BaseModel):
    status: Literal["open", "pending", "closed"]


@router.post("/api/inbox/conversations/{conversation_id}/status", summary="Open, pending or closed")
def post_status(request: Request, key: Key, conversation_id: int, body: StatusIn) -> dict[str, Any]:
    key.require(WRITE)
    return convs.set_status(request.app.state.state_store, conversation_id, body.status, by=f"api:{key.name}").as_dict()


class PriorityIn(BaseModel):
    priority: Literal["low", "normal", "high", "urgent"]


@router.post("/api/inbox/conversations/{conversation_id}/priority", summary="Change the priority (SLA follows)")
def post_priority(request: Request, key: Key, conversation_id: int, body: PriorityIn) -> dict[str, Any]:
    key.require(WRITE)
    state = request.app.state.state_store
    return convs.set_priority(state, conversation_id, body.priority, by=f"api:{key.name}").as_dict()


# --- quick replies -----------------------------------------------------------------------------------------------


class QuickReplyIn(BaseModel):
    shortcut: str
    language: Literal["zh", "en"]
    title: str
    text: str


class RenderIn(BaseModel):
    conversation_id: int | None = None
    agent_id: int | None = None
    values: dict[str, str] = Field(default_factory=dict)


@router.get("/api/inbox/quick-replies", summary="Quick replies, by shortcut")
def list_quick(request: Request, key: Key, language: Literal["zh", "en"] | None = None) -> dict[str, Any]:
    key.require(READ)
    found = quick_replies.list_quick_replies(request.app.state.state_store, language=language)
    return {"quick_replies": [q.as_dict() for q in found]}


@router.put("/api/inbox/quick-replies", summary="Create or replace the quick reply of a shortcut and language")
def put_quick(request: Request, key: Key, body: QuickReplyIn) -> dict[str, Any]:
    key.require(WRITE)
    return quick_replies.put_quick_reply(request.app.state.state_store, shortcut=body.shortcut, language=body.language,
                                         title=body.title, text=body.text, by=f"api:{key.name}").as_dict()  # fmt: skip


@router.delete("/api/inbox/quick-replies/{quick_reply_id}", summary="Delete a quick reply")
def delete_quick(request: Request, key: Key, quick_reply_id: int) -> dict[str, Any]:
    key.require(WRITE)
    quick_replies.delete_quick_reply(request.app.state.state_store, quick_reply_id)
    return {"deleted": quick_reply_id}


@router.post("/api/inbox/quick-replies/{quick_reply_id}/render", summary="A quick reply's text, placeholders filled")
def render_quick(request: Request, key: Key, quick_reply_id: int, body: RenderIn) -> dict[str, Any]:
    key.require(READ)
    app = request.app.state
    picked = quick_replies.get_quick_reply(app.state_store, quick_reply_id)
    known: dict[str, str | None] = {"shop_name": app.settings.shop_name or None}
    if body.conversation_id is not None:
        known = known_values(app, convs.get_conversation(app.state_store, body.conversation_id), body.agent_id)
    return {"text": quick_replies.render(picked, body.values, known), "quick_reply": picked.as_dict()}


# --- SLA policies, calendars and reports -------------------------------------------------------------------------


class PolicyIn(BaseModel):
    channel: str = Field(description="a channel or *")
    priority: str = Field(description="low, normal, high, urgent or *")
    first_response_minutes: int
    resolution_minutes: int
    calendar: str | None = Field(None, description="business-hours calendar; none: round the clock")


class CalendarIn(BaseModel):
    timezone: str = "Asia/Shanghai"
    hours: dict[str, list[list[str]]] = Field(description='weekday (mon…sun) → [["09:00", "18:00"], ...]')
    exceptions: dict[str, list[list[str]]] = Field(default_factory=dict, description="date → hours; [] closed")


@router.get("/api/inbox/sla/policies", summary="SLA targets per channel and priority")
def get_policies(request: Request, key: Key) -> dict[str, Any]:
    key.require(READ)
    return {"policies": [p.as_dict() for p in sla.list_policies(request.app.state.state_store)]}


@router.put("/api/inbox/sla/policies", summary="Create or replace the SLA targets of a channel and priority")
def put_policy(request: Request, key: Key, body: PolicyIn) -> dict[str, Any]:
    key.require(WRITE)
    return sla.put_policy(request.app.state.state_store, **body.model_dump(), by=f"api:{key.name}").as_dict()


@router.get("/api/inbox/sla/calendars", summary="Business-hours calendars")
def get_calendars(request: Request, key: Key) -> dict[str, Any]:
    key.require(READ)
    return {"calendars": [c.as_dict() for c in sla.calendars(request.app.state.state_store)]}


@router.put("/api/inbox/sla/calendars/{calendar_name}", summary="Create or replace a business-hours calendar")
def put_calendar(request: Request, key: Key, calendar_name: str, body: CalendarIn) -> dict[str, Any]:
    key.require(WRITE)
    return sla.put_calendar(request.app.state.state_store, calendar_name, timezone=body.timezone, hours=body.hours,
                            exceptions=body.exceptions, by=f"api:{key.name}").as_dict()  # fmt: skip


@router.get("/api/inbox/reports", summary="First response, resolution and breaches by agent, channel or day")
def get_report(request: Request, key: Key, start: datetime, end: datetime,
               by: Literal["agent", "channel", "day"] = "agent", timezone: str | None = None,
               at: At = None) -> dict[str, Any]:  # fmt: skip
    key.require(READ)
    app = request.app.state
    rows = reports.sla_report(app.state_store, start=start, end=end, by=by, now=at,
                              timezone=timezone or app.settings.timezone)  # fmt: skip
    return {"by": by, "start": start.isoformat(), "end": end.isoformat(), "rows": [r.as_dict() for r in rows]}


# --- agents and teams --------------------------------------------------------------------------------------------


class AgentIn(BaseModel):
    name: str
    username: str | None = Field(None, description="the console user this agent signs in as")
    channels: list[str] = Field(default_factory=list, description="channels they answer; empty: all")
    languages: list[str] = Field(default_factory=list, description="zh, en; empty: all")
    max_open: int | None = None


class AgentChange(BaseModel):
    name: str | None = None
    channels: list[str] | None = None
    languages: list[str] | None = None
    max_open: int | None = None
    active: bool | None = None


class TeamIn(BaseModel):
    name: str
    channels: list[str] = Field(default_factory=list, description="channels routed to the team; empty: any other")
    members: list[int] = Field(default_factory=list)


class MembersIn(BaseModel):
    members: list[int]


@router.get("/api/inbox/agents", summary="Agents and their skills")
def get_agents(request: Request, key: Key) -> dict[str, Any]:
    key.require(READ)
    return {"agents": [a.as_dict() for a in agents.list_agents(request.app.state.state_store)]}


@router.post("/api/inbox/agents", status_code=201, summary="Add an agent")
def post_agent(request: Request, key: Key, body: AgentIn) -> dict[str, Any]:
    key.require(WRITE)
    return agents.create_agent(request.app.state.state_store, **body.model_dump()).as_dict()


@router.patch("/api/inbox/agents/{agent_id}", summary="Change an agent's skills, capacity or activity")
def patch_agent(request: Request, key: Key, agent_id: int, body: AgentChange) -> dict[str, Any]:
    key.require(WRITE)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    return agents.update_agent(request.app.state.state_store, agent_id, changes).as_dict()


@router.get("/api/inbox/teams", summary="Teams, their channels and members")
def get_teams(request: Request, key: Key) -> dict[str, Any]:
    key.require(READ)
    return {"teams": [t.as_dict() for t in agents.list_teams(request.app.state.state_store)]}


@router.post("/api/inbox/teams", status_code=201, summary="Add a team")
def post_team(request: Request, key: Key, body: TeamIn) -> dict[str, Any]:
    key.require(WRITE)
    return agents.create_team(request.app.state.state_store, body.name, channels=body.channels,
                              members=body.members).as_dict()  # fmt: skip


@router.put("/api/inbox/teams/{team_id}/members", summary="Replace a team's members")
def put_members(request: Request, key: Key, team_id: int, body: MembersIn) -> dict[str, Any]:
    key.require(WRITE)
    return agents.set_members(request.app.state.state_store, team_id, body.members).as_dict()
