"""Share links of content: ``{public_url}/c/{token}``, signed, one per item and channel, per customer, or per share.

- An **item link** (``customer_id`` 0) is for posting anywhere: a view through it is anonymous.
- A **person's link** carries the customer it was sent to (a campaign's message, a clerk's WeCom chat), like the
  campaigns' tracked links: a view through it is that customer's.
- A **share** is a customer passing an item on (``share``): it is stored with an idempotency key, and its link names
  the share, so a view through it credits the sharer as referrer.

The token is the campaigns' tracked-link token (``campaigns.links.make_token``: varints and a 10-byte HMAC-SHA256)
carrying (item id, channel, customer id, share id), signed with a key of its own derived from ``secret_key``: a
campaign link's token is not a content link, nor the other way round. The token names an item, never an address, so
the redirect cannot be pointed elsewhere. Changing the secret key voids every link already handed out.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from omnicrm.campaigns.links import make_token, read_token
from omnicrm.content.library import lock_item
from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.loyalty.locks import insert_or_nothing, transaction, utc
from omnicrm.store.schema import content_shares
from omnicrm.store.state import StateStore, utcnow

__all__ = ["CHANNELS", "ContentToken", "Share", "check_channel", "content_url", "get_share", "read_link", "share"]

CHANNELS = ("link", "qr", "wechat", "wecom", "weibo", "sms", "email", "push", "app", "store")
_CHANNEL = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
S = content_shares


@dataclass(frozen=True)
class ContentToken:
    """What a content link says: the item, the channel it was made for, and whose it is (None: nobody's)."""

    item_id: int
    channel: str
    customer_id: int | None
    share_id: int | None


@dataclass(frozen=True)
class Share:
    """A customer's share of an item, and the link that credits them."""

    id: int
    item_id: int
    customer_id: int
    channel: str
    at: datetime
    url: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "at": self.at.isoformat()}


def _secret(secret_key: str) -> str:
    """The key content links are signed with: not the one of campaign links."""
    return hmac.new(secret_key.encode(), b"omnicrm content link v1", hashlib.sha256).hexdigest()


def check_channel(channel: str, field: str = "channel") -> str:
    """``channel`` if it is one of ``CHANNELS``, else InputError naming ``field``."""
    if channel not in CHANNELS or not _CHANNEL.match(channel):
        raise InputError(f"unknown channel {channel!r}", [Problem(f"use one of {', '.join(CHANNELS)}", field)])
    return channel


def content_url(
    public_url: str, secret_key: str, item_id: int, *, channel: str = "link", customer_id: int | None = None,
    share_id: int | None = None,
) -> str:  # fmt: skip
    """The link of an item for ``channel``; with ``customer_id``, that customer's own (campaigns call this per
    recipient); with ``share_id``, the link of that share."""
    check_channel(channel)
    token = make_token(_secret(secret_key), item_id, channel, customer_id or 0, share_id or 0)
    return f"{public_url.rstrip('/')}/c/{token}"


def read_link(secret_key: str, token: str) -> ContentToken:
    """What a token this product signed says; InputError naming ``token`` when it is altered, foreign or unreadable."""
    said = read_token(_secret(secret_key), token)
    if said.step not in CHANNELS or said.campaign_id == 0:
        raise InputError("this link is not valid", [Problem("not a content link", "token")])
    return ContentToken(said.campaign_id, said.step, said.customer_id or None, said.link_no or None)


def _share(row: Any, public_url: str, secret_key: str) -> Share:
    url = content_url(public_url, secret_key, int(row.item_id), channel=row.channel, share_id=int(row.id))
    return Share(int(row.id), int(row.item_id), int(row.customer_id), row.channel, utc(row.at), url)


def share(
    state: StateStore, item_id: int, customer_id: int, *, channel: str, idempotency_key: str, public_url: str,
    secret_key: str, now: datetime | None = None,
) -> Share:  # fmt: skip
    """Record that ``customer_id`` shares the item on ``channel`` and return the link to pass on. Only a live item can
    be shared (Conflict otherwise). A repeat with the same key returns the first share; the key used for another
    item, customer or channel is a Conflict. Nothing is written when refused."""
    check_channel(channel)
    if not idempotency_key or len(idempotency_key) > 255:
        raise InputError("a share needs an idempotency key", [Problem("1 to 255 characters", "idempotency_key")])
    moment = utc(now) if now else utcnow()

    def work(conn: Connection) -> Any:
        item = lock_item(conn, item_id)
        found = conn.execute(select(S).where(S.c.idempotency_key == idempotency_key)).first()
        if found is None:
            if not item.live(moment):
                raise Conflict(
                    f"content item {item_id} is {item.status} and not live now; only a live item can be shared",
                    [Problem("publish it first, or pick a live item", "item_id")],
                )
            row = {"item_id": item_id, "customer_id": customer_id, "channel": channel,
                   "idempotency_key": idempotency_key, "at": moment}  # fmt: skip
            insert_or_nothing(conn, S, [row])
            found = conn.execute(select(S).where(S.c.idempotency_key == idempotency_key)).one()
        if (int(found.item_id), int(found.customer_id), found.channel) != (item_id, customer_id, channel):
            raise Conflict(
                f"the idempotency key {idempotency_key!r} was used for share {found.id} of content item "
                f"{found.item_id} by customer {found.customer_id} on {found.channel}",
                [Problem("use a new key for a new share", "idempotency_key")],
            )
        return found

    return _share(transaction(state, work), public_url, secret_key)


def get_share(state: StateStore, share_id: int, *, public_url: str, secret_key: str) -> Share:
    with state.connect() as conn:
        row = conn.execute(select(S).where(S.c.id == share_id)).first()
    if row is None:
        raise NotFound(f"no content share {share_id}", [Problem("no such share", "share_id")])
    return _share(row, public_url, secret_key)
