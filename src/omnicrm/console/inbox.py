"""Console pages of the service inbox: the live queue and a conversation with the customer's 360 beside it.

The queue lists open and pending conversations by the risk of breaking an SLA (omnicrm.inbox.queue), each with the
time left on its most urgent clock ("due in 12 min", "overdue 3 min") and warnings highlighted; filters: mine, team,
channel, status (closed ones come newest first, without clocks). It refreshes itself every 30 s through HTMX.

A console user acts as the inbox agent whose ``username`` is theirs (omnicrm.inbox.agents); ``agent_for`` finds
that agent, and ``as_agent`` adds one (no team, so routing gives them nothing) the first time a user with
``inbox.work`` answers a customer or takes a conversation. The forms of a conversation are in
omnicrm.console.inbox_actions.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from omnicrm.api.inbox import customer_of
from omnicrm.console.campaigns import time_formatter
from omnicrm.console.customers import mask
from omnicrm.console.web import PREFIX, Page, need, render
from omnicrm.errors import Conflict, NotFound, OmnicrmError
from omnicrm.inbox import agents, quick_replies, sla
from omnicrm.inbox import conversations as convs
from omnicrm.inbox.config import inbox_config
from omnicrm.inbox.contacts import contact_name
from omnicrm.inbox.messages import list_messages
from omnicrm.inbox.queue import QueueItem, live_queue, sla_clocks
from omnicrm.inbox.senders import CHANNELS
from omnicrm.store.state import utcnow

__all__ = ["agent_for", "as_agent", "conversation_page", "due_text", "router"]

router = APIRouter(prefix=f"{PREFIX}/inbox")
T = TypeVar("T")
PAGE = 25
STATUSES = ("open", "pending", "closed")
KEY_TAGS = ("rfm_segment", "lifecycle_stage", "monetary", "frequency", "clv_365d", "preferred_channel")


def agent_for(page: Page) -> agents.Agent | None:
    """The inbox agent the signed-in user acts as (the one with their username), if any."""
    user = page.user
    if user is None:
        return None
    found = [a for a in agents.list_agents(page.request.app.state.state_store) if a.username == user.username]
    return found[0] if found else None


def as_agent(page: Page, act: Callable[[int], T]) -> T:
    """``act(agent_id)`` as the user's agent. A user without one gets one (their display name and username, no team,
    so routing gives them nothing) only when ``act`` would go through: it is first tried with agent id 0, which the
    domain checks after everything else, so a refusal for any other reason leaves no agent behind."""
    found = agent_for(page)
    if found is not None:
        return act(found.id)
    try:
        return act(0)
    except NotFound as exc:
        if not any(p.field == "agent_id" for p in exc.problems):
            raise
    user = page.user
    assert user is not None
    try:
        made = agents.create_agent(page.request.app.state.state_store, user.display_name[:128] or user.username,
                                   username=user.username)  # fmt: skip
    except Conflict:  # added by another request of the same user a moment ago
        again = agent_for(page)
        if again is None:
            raise
        made = again
    return act(made.id)


def due_text(page: Page, left_s: float) -> str:
    """Business time left on a clock as staff read it: "due in 12 min", "overdue 1 h 5 min"."""
    minutes = math.ceil(abs(left_s) / 60) if left_s >= 0 else math.floor(abs(left_s) / 60) or 1
    span = page.t("inbox.minutes", n=minutes) if minutes < 60 else page.t("inbox.hours", h=minutes // 60,
                                                                         m=minutes % 60)  # fmt: skip
    return page.t("inbox.due_in" if left_s >= 0 else "inbox.overdue", span=span)


def _row(page: Page, item: QueueItem, warn_at: float, names: dict[int, str]) -> dict[str, Any]:
    c = item.conversation
    top = max(item.clocks, key=lambda k: k.risk, default=None)
    state = page.request.app.state.state_store
    return {
        "c": c, "name": contact_name(state, c.contact_id), "agent": names.get(c.agent_id or 0),
        "level": top.level(warn_at) if top else "none", "clock": top.kind if top else None,
        "due": due_text(page, top.left_s) if top else None, "risk": top.risk if top else None,
    }  # fmt: skip


def _queue(page: Page, mine: bool, team: int | None, channel: str, status: str, p: int) -> dict[str, Any]:
    """The filtered queue's page ``p`` and what the filters offer."""
    app = page.request.app.state
    state = app.state_store
    warn_at = inbox_config(app.settings).warn_at
    me = agent_for(page)
    everyone = agents.list_agents(state)
    names = {a.id: a.name for a in everyone}
    items: list[QueueItem] = []
    if not (mine and me is None):
        if status == "closed":
            closed, _ = convs.list_conversations(state, status="closed", agent_id=me.id if mine and me else None,
                                                 limit=10_000)  # fmt: skip
            items = [QueueItem(c, ()) for c in closed if team is None or c.team_id == team]
        else:
            items = live_queue(state, team_id=team, agent_id=me.id if mine and me else None, limit=1_000_000)
            if status:
                items = [i for i in items if i.conversation.status == status]
    if channel:
        items = [i for i in items if channel in (i.conversation.channel, i.conversation.last_channel)]
    pages = max(1, math.ceil(len(items) / PAGE))
    p = min(p, pages)
    rows = [_row(page, i, warn_at, names) for i in items[(p - 1) * PAGE : p * PAGE]]
    return {"rows": rows, "total": len(items), "p": p, "pages": pages, "me": me, "teams": agents.list_teams(state),
            "channels": list(CHANNELS), "statuses": STATUSES, "mine": mine, "team": team, "channel": channel,
            "status": status}  # fmt: skip


@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def queue(
    page: Annotated[Page, Depends(need("inbox.work"))],
    mine: Annotated[bool, Query()] = False,
    team: Annotated[str, Query(max_length=20)] = "",
    channel: Annotated[str, Query(max_length=20)] = "",
    status: Annotated[str, Query(max_length=20)] = "",
    p: Annotated[int, Query(ge=1)] = 1,
) -> Response:
    """The live queue; an HTMX request (the 30-second refresh) gets only the table."""
    problems = []
    if team and not team.isdigit():
        problems.append(page.t("inbox.bad_team", value=team))
    if channel and channel not in CHANNELS:
        problems.append(page.t("inbox.bad_channel", value=channel))
    if status and status not in STATUSES:
        problems.append(page.t("inbox.bad_status", value=status))
    if problems:
        return render(page, "error.html", status_code=400, message=" ".join(problems))
    found = await run_in_threadpool(_queue, page, mine, int(team) if team else None, channel, status, p)
    when = time_formatter(page.request.app.state.settings)
    template = "inbox/queue_rows.html" if page.request.headers.get("hx-request") else "inbox/queue.html"
    return render(page, template, when=when, **found)


# --- a conversation --------------------------------------------------------------------------------------------


def _identifiers(page: Page, customer: dict[str, Any]) -> list[dict[str, str]]:
    """The customer's identifiers (of the 360, else of the inbox contact), masked unless the user sees them whole."""
    whole = page.may("customers.identifiers")
    view = customer.get("360")
    if view is not None:
        pairs = [(i["id_type"], i["value"]) for i in view["identity"]["identifiers"]]
    else:
        pairs = [(k.split(":", 1)[0], k.split(":", 2)[-1]) for k in customer["identifiers"]]
    return [{"id_type": kind, "value": value if whole else mask(kind, value)} for kind, value in pairs]


def _tags(view: dict[str, Any] | None) -> list[dict[str, Any]]:
    if view is None:
        return []
    by_id = {tag["id"]: tag for tag in view["tags"]["tags"]}
    return [by_id[k] for k in KEY_TAGS if k in by_id and by_id[k]["value"] not in (None, [], "")]


def conversation_page(
    page: Page, conversation_id: int, *, status_code: int = 200, error: OmnicrmError | None = None,
    text: str = "", sent: int | None = None,
) -> Response:  # fmt: skip
    """The conversation's page; ``error`` (with what was typed in ``text``) is shown above the reply box."""
    app = page.request.app.state
    state = app.state_store
    try:
        c = convs.get_conversation(state, conversation_id)
    except NotFound as exc:
        return render(page, "error.html", status_code=404, message=exc.message)
    customer = customer_of(app, c)
    language = "zh" if page.lang.startswith("zh") else "en"
    everyone = agents.list_agents(state)
    warn_at = inbox_config(app.settings).warn_at
    [clocks] = sla_clocks(state, [c], utcnow()) if c.status != "closed" else [()]
    messages = list_messages(state, conversation_id, limit=1000)
    return render(
        page, "inbox/conversation.html", status_code=status_code, c=c, name=contact_name(state, c.contact_id),
        messages=messages, activity=convs.activity(state, conversation_id), customer=customer,
        identifiers=_identifiers(page, customer), tags=_tags(customer.get("360")),
        orders=(customer.get("360") or {}).get("orders", []), quick=quick_replies.list_quick_replies(
            state, language=language), agents=everyone, names={a.id: a.name for a in everyone}, me=agent_for(page),
        clocks=[(k, k.level(warn_at), due_text(page, k.left_s)) for k in clocks], error=error, text=text,
        sent=next((m for m in messages if m.id == sent), None), key=secrets.token_urlsafe(16),
        when=time_formatter(app.settings), priorities=sla.PRIORITIES, statuses=STATUSES,
    )  # fmt: skip


@router.get("/{conversation_id}", response_class=HTMLResponse, include_in_schema=False)
async def conversation(
    page: Annotated[Page, Depends(need("inbox.work"))], conversation_id: int,
    sent: Annotated[int | None, Query(ge=1)] = None,
) -> Response:  # fmt: skip
    """A conversation: its messages across channels, the reply box, notes, controls and the customer's 360."""
    return await run_in_threadpool(conversation_page, page, conversation_id, sent=sent)
