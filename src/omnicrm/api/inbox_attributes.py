"""An agent turns what a customer said into a portrait attribute by hand, with the message as its source.

``POST /api/inbox/conversations/{conversation_id}/messages/{message_id}/attributes`` with ``{tag_id, value, quote}``:
the quote must be words of that message, the conversation's sender must be a customer OneID knows, and the value is
checked against the tag's type. The value is a manual tag value whose note names the message and the words (see
``omnicrm.inbox.capture``); the extraction rules do the same by themselves when a message arrives.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from omnicrm.api.customers import Key
from omnicrm.errors import Conflict, NotFound, Problem
from omnicrm.inbox import conversations as convs
from omnicrm.inbox.capture import set_from_message
from omnicrm.store.schema import inbox_messages
from omnicrm.store.state import StateStore

__all__ = ["router"]

router = APIRouter(tags=["inbox"])


class AttributeIn(BaseModel):
    tag_id: str = Field(min_length=1, max_length=64, description="e.g. has_infant, child_age_band, district, pet")
    value: Any = Field(description="in the tag's type: true, '0-1', '杭州市西湖区', ['cat'] ...")
    quote: str = Field(min_length=1, max_length=500, description="the words of the message that tell the value")


def set_attribute(
    state: StateStore, conversation_id: int, message_id: int, body: AttributeIn, by: str
) -> dict[str, Any]:
    c = convs.get_conversation(state, conversation_id)
    with state.connect() as conn:
        text = conn.execute(
            select(inbox_messages.c.text).where(
                inbox_messages.c.id == message_id, inbox_messages.c.conversation_id == conversation_id
            )
        ).scalar_one_or_none()
    if text is None:
        raise NotFound(f"conversation {conversation_id} has no message {message_id}")
    if c.customer_id is None:
        raise Conflict(
            f"conversation {conversation_id}: the sender is not yet a customer OneID knows",
            [Problem("set it after the next identity refresh has joined the sender", "conversation_id")],
        )
    done = set_from_message(state, c.customer_id, message_id, body.tag_id, body.value, text=text, quote=body.quote,
                            by=by)  # fmt: skip
    return {"customer_id": c.customer_id, "tag_id": done.tag, "value": done.value, "status": done.status,
            "reason": done.note}  # fmt: skip


@router.post("/api/inbox/conversations/{conversation_id}/messages/{message_id}/attributes", status_code=201,
             summary="Set a portrait attribute from what the customer said in a message (by hand)")  # fmt: skip
async def post_attribute(
    request: Request, key: Key, conversation_id: int, message_id: int, body: AttributeIn
) -> dict[str, Any]:
    key.require("inbox:write")
    state = request.app.state.state_store
    return await run_in_threadpool(set_attribute, state, conversation_id, message_id, body, f"api:{key.name}")
