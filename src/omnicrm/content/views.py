"""Views of content: opening ``/c/{token}`` records the view, writes it to the facts and sends the browser on.

A view names the item, the customer when the link was theirs, the browser (a random id kept in a cookie, so unique
viewers can be counted), the channel the link was made for, the time and, through a share link, the customer who
shared it (the referrer). The destination is the item's stored address, never anything in the request.

Each view is also a fact: a Segment ``track`` event ``Content Viewed`` from the internal source ``omnicrm-content``
with the item's titles, kind and topics as properties, so that the portrait's interests count what people read
(``portrait.texts`` takes the titles of these events as interest texts). OneID needs an identifier to put the event
with its customer: the event's traits carry the customer's most trusted identifier that traits can hold (member card,
WeChat unionid, phone, e-mail, or openid with its app id) from the identity snapshot in force. A customer known only
by identifiers traits cannot carry (a site's own user id) gets the view recorded, but its event stays apart. The
view's row and the event's buffer row are written in one transaction: the event is loaded into the facts with the
other buffered events.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import Connection, insert, select

from omnicrm.content.library import get_item
from omnicrm.content.links import read_link
from omnicrm.errors import NotFound, Problem
from omnicrm.identity.explain import resolve_id
from omnicrm.identity.identifiers import IDENTIFIER_TYPES
from omnicrm.ingest.segment import Message, normalise
from omnicrm.loyalty.locks import utc
from omnicrm.store.schema import content_shares, content_views, ingest_buffer
from omnicrm.store.state import StateStore, utcnow

__all__ = ["EVENT", "SOURCE", "View", "new_visitor", "record_view", "valid_visitor", "view_traits"]

EVENT = "Content Viewed"
SOURCE = "omnicrm-content"
_TRAITS = ("member_card", "wechat_unionid", "phone", "email", "wechat_openid")  # identifiers an event's traits carry
_VISITOR = re.compile(r"^[0-9a-f]{32}$")
_MAX_EVENT_BYTES = 32 * 1024


@dataclass(frozen=True)
class View:
    """One recorded view and where the browser goes."""

    id: int
    item_id: int
    customer_id: int | None
    visitor: str | None
    channel: str
    referrer_id: int | None
    share_id: int | None
    message_id: str
    at: datetime
    url: str


def new_visitor() -> str:
    """A fresh random browser id (32 hex characters)."""
    return uuid.uuid4().hex


def valid_visitor(value: str | None) -> str | None:
    """``value`` if it is a browser id this product made, else None (a cookie can hold anything)."""
    return value if value and _VISITOR.match(value) else None


def view_traits(identity: Path | None, customer_id: int) -> tuple[int, dict[str, str]]:
    """The customer's id in force (following merges) and the event traits that let OneID join a view to them: their
    most trusted identifier that traits can carry, held by nobody else. No snapshot or no such identifier: no
    traits."""
    if identity is None:
        return customer_id, {}
    try:
        current = resolve_id(identity, customer_id)
    except NotFound:
        return customer_id, {}
    rows = (
        duckdb.connect()
        .execute(
            f"""SELECT id_type, scope, value FROM read_parquet('{identity / "identifiers.parquet"}')
            WHERE customer_id = $id AND refusal IS NULL AND merge_stage >= 0 AND holders = 1
              AND id_type IN ({", ".join(f"'{t}'" for t in _TRAITS)})""",
            {"id": current},
        )
        .fetchall()
    )
    if not rows:
        return current, {}
    id_type, scope, value = min(rows, key=lambda r: (IDENTIFIER_TYPES[r[0]].priority, r[0], r[2]))
    traits = {id_type: value}
    if id_type == "wechat_openid":
        traits["wechat_appid"] = scope
    return current, traits


def _event(view: dict[str, Any], item: Any, traits: dict[str, str]) -> Message:
    """The Content Viewed event of a view, checked as any ingested message is."""
    customer = view["customer_id"]
    properties = {
        "item_id": item.id, "title": item.title_zh, "title_en": item.title_en, "kind": item.kind,
        "topics": list(item.topics), "channel": view["channel"], "url": item.url, "customer_id": customer,
        "referrer_customer_id": view["referrer_id"], "share_id": view["share_id"],
    }  # fmt: skip
    raw = {
        "type": "track",
        "event": EVENT,
        "messageId": view["message_id"],
        # a customer's views share one id (a browser may be anyone's: a forwarded link is opened by a friend)
        "anonymousId": f"content-customer-{customer}" if customer else (view["visitor"] or view["message_id"]),
        "traits": traits or None,
        "properties": properties,
        "timestamp": view["at"].isoformat(),
    }
    message = normalise(raw, index=None, received_at=view["at"], max_bytes=_MAX_EVENT_BYTES)
    if not isinstance(message, Message):  # our own event: a failure here is a bug, not bad input
        raise AssertionError(f"the Content Viewed event is not valid: {message}")
    return message


def record_view(
    state: StateStore, *, secret_key: str, token: str, visitor: str | None = None, identity: Path | None = None,
    now: datetime | None = None,
) -> View:  # fmt: skip
    """Verify ``token``, record the view and its event (one transaction), and return it with the item's address.

    InputError (field ``token``) for a token that is not ours or was altered; NotFound for an item or share that
    does not exist, or an item not live now (a draft, archived, or outside its dates). Nothing is written then.
    """
    said = read_link(secret_key, token)
    moment = utc(now) if now else utcnow()
    item = get_item(state, said.item_id)
    if not item.live(moment):
        raise NotFound(f"content item {item.id} is {item.status} and not live now", [Problem("not live", "token")])
    referrer = None
    if said.share_id is not None:
        with state.connect() as conn:
            shared = conn.execute(select(content_shares).where(content_shares.c.id == said.share_id)).first()
        if shared is None or int(shared.item_id) != item.id:
            raise NotFound(f"no share {said.share_id} of content item {item.id}", [Problem("no such share", "token")])
        referrer = int(shared.customer_id)
    customer, traits = (None, {}) if said.customer_id is None else view_traits(identity, said.customer_id)
    browser, message_id = valid_visitor(visitor), f"content-view-{uuid.uuid4().hex}"
    row = {
        "item_id": item.id, "customer_id": customer, "visitor": browser, "channel": said.channel,
        "referrer_id": referrer, "share_id": said.share_id, "message_id": message_id, "at": moment,
    }  # fmt: skip
    message = _event(row, item, traits)
    buffered = {"source": SOURCE, "message_id": message.message_id, "type": message.type, "received_at": moment,
                "payload": message.json}  # fmt: skip

    def work(conn: Connection) -> int:
        made = conn.execute(insert(content_views).values(**row)).inserted_primary_key
        conn.execute(insert(ingest_buffer).values(**buffered))
        assert made is not None
        return int(made[0])

    made = state.group_commit(work)  # views come in bursts: one commit serves many
    return View(made, item.id, customer, browser, said.channel, referrer, said.share_id, message_id, moment, item.url)
