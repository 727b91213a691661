"""The forms of an inbox conversation: reply, internal note, assign, status, priority, and quick replies.

A reply goes out through the channel the customer last wrote from (omnicrm.inbox.replies) with the idempotency key
the page was rendered with, so a form sent twice sends once; the page then shows how it went (sent, or why not).
A quick reply is filled in (customer, agent and shop names; other placeholders are left as ``{name}`` for the agent
to complete, and a reply still holding one is refused) and added to the reply box, in the user's language. Every
refusal re-renders the conversation with the message and what was typed, and changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from omnicrm.api.inbox import known_values, outbox_of
from omnicrm.console.inbox import agent_for, as_agent, conversation_page
from omnicrm.console.web import PREFIX, Page, need, render
from omnicrm.errors import InputError, NotFound, OmnicrmError, Problem
from omnicrm.inbox import assignment, quick_replies
from omnicrm.inbox import conversations as convs
from omnicrm.inbox.config import inbox_config
from omnicrm.inbox.messages import note
from omnicrm.inbox.replies import reply

__all__ = ["router", "unfilled"]

router = APIRouter(prefix=f"{PREFIX}/inbox")
Work = Annotated[Page, Depends(need("inbox.work"))]
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]{0,39})\}")


def unfilled(text: str) -> list[str]:
    """The ``{placeholders}`` a quick reply left in ``text`` for the agent to fill in."""
    return sorted(set(_PLACEHOLDER.findall(text)))


def _by(page: Page) -> str:
    user = page.user
    assert user is not None
    return f"console:{user.username}"


def _back(conversation_id: int, **query: int) -> Response:
    extra = "".join(f"?{k}={v}" for k, v in query.items())
    return RedirectResponse(f"{PREFIX}/inbox/{conversation_id}{extra}#reply", status_code=303)


@router.get("/{conversation_id}/quick-replies/{quick_reply_id}", response_class=HTMLResponse,
            include_in_schema=False)  # fmt: skip
async def quick_reply(
    page: Work, conversation_id: int, quick_reply_id: int, text: Annotated[str, Query(max_length=8000)] = ""
) -> Response:
    """The reply box with the quick reply added to what was typed (HTMX swaps it in)."""
    app = page.request.app.state

    def work() -> str:
        c = convs.get_conversation(app.state_store, conversation_id)
        picked = quick_replies.get_quick_reply(app.state_store, quick_reply_id)
        me = agent_for(page)
        known = known_values(app, c, me.id if me else None)
        left = {name: "{" + name + "}" for name in picked.placeholders if not known.get(name)}
        filled = quick_replies.render(picked, left, known)
        return f"{text.rstrip()}\n{filled}" if text.strip() else filled

    try:
        combined = await run_in_threadpool(work)
    except NotFound as exc:
        return render(page, "error.html", status_code=404, message=exc.message)
    return render(page, "inbox/reply_box.html", text=combined)


@router.post("/{conversation_id}/replies", response_class=HTMLResponse, include_in_schema=False)
async def send_reply(
    page: Work, conversation_id: int, text: Annotated[str, Form(max_length=8000)] = "",
    idempotency_key: Annotated[str, Form(max_length=200)] = "", then: Annotated[str, Form(max_length=20)] = "",
) -> Response:  # fmt: skip
    """Send the reply; the page shows the outcome (sent, refused, failed) or why it was not sent."""
    app = page.request.app.state

    def work() -> int:
        convs.get_conversation(app.state_store, conversation_id)
        left = unfilled(text)
        if left:
            names = ", ".join("{" + n + "}" for n in left)
            raise InputError(page.t("inbox.unfilled", names=names), [Problem(page.t("inbox.fill_in"), "text")])
        outbox, limit = outbox_of(app), inbox_config(app.settings).max_text_chars
        done = as_agent(page, lambda agent_id: reply(app.state_store, conversation_id, agent_id, text, outbox=outbox,
                                                     idempotency_key=idempotency_key, then=then or None,
                                                     max_chars=limit))  # fmt: skip
        return done.message.id

    try:
        sent = await run_in_threadpool(work)
    except OmnicrmError as exc:
        return await run_in_threadpool(conversation_page, page, conversation_id, status_code=exc.status, error=exc,
                                       text=text)  # fmt: skip
    return _back(conversation_id, sent=sent)


@router.post("/{conversation_id}/notes", response_class=HTMLResponse, include_in_schema=False)
async def add_note(page: Work, conversation_id: int, text: Annotated[str, Form(max_length=8000)] = "") -> Response:
    """An internal note: kept with the conversation for agents, never sent."""
    app = page.request.app.state

    def work() -> None:
        me = agent_for(page)
        note(app.state_store, conversation_id, text, agent_id=me.id if me else None, author=_by(page),
             max_chars=inbox_config(app.settings).max_text_chars)  # fmt: skip

    return await _change(page, conversation_id, work)


@router.post("/{conversation_id}/assign", response_class=HTMLResponse, include_in_schema=False)
async def assign(page: Work, conversation_id: int, agent: Annotated[str, Form(max_length=20)] = "") -> Response:
    """``me`` (the user's agent), ``queue`` (nobody), or an agent's id."""
    state = page.request.app.state.state_store

    def work() -> None:
        convs.get_conversation(state, conversation_id)
        if agent == "me":
            as_agent(page, lambda agent_id: assignment.assign(state, conversation_id, agent_id=agent_id, by=_by(page)))
            return
        target: int | None = None
        if agent == "queue":
            pass
        elif agent.isdigit():
            target = int(agent)
        else:
            raise InputError(page.t("inbox.bad_agent", value=agent), [Problem(page.t("inbox.pick_agent"), "agent")])
        assignment.assign(state, conversation_id, agent_id=target, by=_by(page))

    return await _change(page, conversation_id, work)


@router.post("/{conversation_id}/status", response_class=HTMLResponse, include_in_schema=False)
async def status(page: Work, conversation_id: int, status: Annotated[str, Form(max_length=20)] = "") -> Response:
    state = page.request.app.state.state_store
    return await _change(page, conversation_id, lambda: convs.set_status(state, conversation_id, status,
                                                                         by=_by(page)))  # fmt: skip


@router.post("/{conversation_id}/priority", response_class=HTMLResponse, include_in_schema=False)
async def priority(page: Work, conversation_id: int, priority: Annotated[str, Form(max_length=20)] = "") -> Response:
    state = page.request.app.state.state_store
    return await _change(page, conversation_id, lambda: convs.set_priority(state, conversation_id, priority,
                                                                           by=_by(page)))  # fmt: skip


async def _change(page: Page, conversation_id: int, work: Callable[[], object]) -> Response:
    """Run ``work`` (a domain change in its own transaction); back to the conversation, or it with the error."""
    try:
        await run_in_threadpool(work)
    except OmnicrmError as exc:
        return await run_in_threadpool(conversation_page, page, conversation_id, status_code=exc.status, error=exc)
    return _back(conversation_id)
