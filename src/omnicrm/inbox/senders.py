"""Who a message comes from: the inbox's channels, the sender fields each accepts, and their identifier keys.

Every channel names the sender field that replies go to (the address) and how it becomes a OneID identifier key,
exactly as an identity refresh spells it (``identity.explain.normalise_many``), so the inbox and OneID agree:

==========  ==========================  ==============================  ============================
channel     address field               key                             other sender fields
==========  ==========================  ==============================  ============================
wechat_oa   openid (account = app id)   wechat_openid:<app id>:<openid>  unionid, phone, email, member_card
wecom       external_userid             user_id:wecom:<id>              unionid, phone, email, member_card
weibo       uid                         marketplace_nick:weibo:<uid>    phone, email, member_card
wangwang    nick                        marketplace_nick:taobao:<nick>  phone, email, member_card
jd_im       pin                         marketplace_nick:jd:<pin>       phone, email, member_card
sms         phone                       phone::<+86…>                   email, member_card
email       email                       email::<address>                phone, member_card
clerk_note  (no replies)                member_card::<card>, phone      member_card, phone
==========  ==========================  ==============================  ============================
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from omnicrm.errors import InputError, PayloadTooLarge, Problem
from omnicrm.identity.explain import normalise_many
from omnicrm.inbox.config import InboxConfig

__all__ = ["CHANNELS", "ChannelSpec", "Inbound", "SenderKeys", "check_inbound", "sender_keys"]


@dataclass(frozen=True)
class ChannelSpec:
    """One inbox channel: where replies go and how its sender becomes an identifier key."""

    name: str
    address: str | None  # the sender field replies go to; None: nobody to reply to (notes)
    id_type: str | None
    scope: str  # the key's scope; "@account" takes the message's account (the WeChat app id)
    extra: tuple[str, ...] = ("phone", "email", "member_card")
    note: bool = False  # messages are notes about the customer: no reply, no SLA clock


CHANNELS: dict[str, ChannelSpec] = {
    s.name: s
    for s in (
        ChannelSpec("wechat_oa", "openid", "wechat_openid", "@account", ("unionid", "phone", "email", "member_card")),
        ChannelSpec("wecom", "external_userid", "user_id", "wecom", ("unionid", "phone", "email", "member_card")),
        ChannelSpec("weibo", "uid", "marketplace_nick", "weibo"),
        ChannelSpec("wangwang", "nick", "marketplace_nick", "taobao"),
        ChannelSpec("jd_im", "pin", "marketplace_nick", "jd"),
        ChannelSpec("sms", "phone", "phone", "", ("email", "member_card")),
        ChannelSpec("email", "email", "email", "", ("phone", "member_card")),
        ChannelSpec("clerk_note", None, None, "", ("member_card", "phone"), note=True),
    )
}
_EXTRA_TYPES = {"unionid": "wechat_unionid", "phone": "phone", "email": "email", "member_card": "member_card"}
_ATTACHMENT_FIELDS = {"name", "type", "size", "url", "media_id"}


@dataclass(frozen=True)
class Inbound:
    """One message as it arrives from a webhook or the API.

    ``sender`` holds the customer's identifiers as the channel gives them (see the module docstring); ``account``
    is the merchant's account it came to (the WeChat official account's app id). ``external_id`` is the channel's
    message id: the same id twice is one message. Attachments are ``{name, type, size, url | media_id}``.
    """

    channel: str
    sender: Mapping[str, str]
    text: str = ""
    attachments: Sequence[Mapping[str, Any]] = ()
    external_id: str | None = None
    account: str = ""
    sent_at: datetime | None = None
    name: str | None = None
    subject: str | None = None
    language: str | None = None
    store_code: str | None = None
    author: str | None = None  # who wrote a clerk note


@dataclass(frozen=True)
class SenderKeys:
    """A checked message's sender: the reply address and every identifier key it carries (address key first)."""

    address: str | None
    keys: tuple[str, ...]
    raw: dict[str, str] = field(default_factory=dict)  # sender field → value as given, for facts


def _attachments(message: Inbound, config: InboxConfig) -> list[dict[str, Any]]:
    items = list(message.attachments)
    if len(items) > config.max_attachments:
        raise InputError(
            f"the message has {len(items)} attachments, more than the {config.max_attachments} allowed",
            [Problem(f"send at most {config.max_attachments}", "attachments")],
        )
    checked = []
    for i, item in enumerate(items):
        where = f"attachments[{i}]"
        if not isinstance(item, Mapping):
            raise InputError("an attachment is not an object", [Problem("give {name, type, size, url}", where)])
        unknown = sorted(set(item) - _ATTACHMENT_FIELDS)
        if unknown:
            raise InputError(
                f"attachment {i} has unknown fields", [Problem(f"use {', '.join(sorted(_ATTACHMENT_FIELDS))}", where)]
            )
        name = str(item.get("name") or item.get("url") or item.get("media_id") or f"attachment {i}")
        size = item.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InputError(f"attachment {name!r} has no size", [Problem("give its size in bytes", f"{where}.size")])
        if size > config.max_attachment_bytes:
            raise PayloadTooLarge(
                f"attachment {name!r} is {size:,} bytes, over the limit of {config.max_attachment_bytes:,}",
                [Problem("send a smaller file or a link to it", f"{where}.size")],
            )
        if not item.get("url") and not item.get("media_id"):
            raise InputError(f"attachment {name!r} has nowhere to fetch it", [Problem("give url or media_id", where)])
        checked.append({k: item[k] for k in sorted(item)})
    return checked


def check_inbound(message: Inbound, config: InboxConfig) -> tuple[ChannelSpec, str, list[dict[str, Any]]]:
    """The channel, the stripped text and the checked attachments of ``message``, or an InputError naming the field
    (PayloadTooLarge for an attachment over the limit)."""
    spec = CHANNELS.get(message.channel)
    if spec is None:
        raise InputError(
            f"unknown channel {message.channel!r}", [Problem(f"use one of {', '.join(CHANNELS)}", "channel")]
        )
    text = (message.text or "").strip()
    if len(text) > config.max_text_chars:
        raise InputError(
            f"the message is {len(text):,} characters, over the limit of {config.max_text_chars:,}",
            [Problem("split it, or send it as an attachment", "text")],
        )
    attachments = _attachments(message, config)
    if not text and not attachments:
        raise InputError("the message is empty", [Problem("give text or at least one attachment", "text")])
    if spec.scope == "@account" and not message.account.strip():
        raise InputError(f"a {spec.name} message needs the account it came to", [Problem("give the app id", "account")])
    if len(json.dumps(attachments)) > 60_000:
        raise InputError("the attachments' details are too long", [Problem("shorten names and urls", "attachments")])
    return spec, text, attachments


@functools.lru_cache(maxsize=20_000)
def _normalised(id_type: str, value: str) -> tuple[str | None, str | None]:
    return normalise_many([(id_type, value)])[0]


def sender_keys(spec: ChannelSpec, message: Inbound) -> SenderKeys:
    """The sender's reply address and identifier keys; an InputError names a missing, unknown or unusable field."""
    allowed = ({spec.address} if spec.address else set()) | set(spec.extra)
    unknown = sorted(set(message.sender) - allowed)
    if unknown:
        raise InputError(
            f"unknown sender field {unknown[0]!r} for {spec.name}",
            [Problem(f"{spec.name} senders have {', '.join(sorted(allowed))}", f"sender.{unknown[0]}")],
        )
    raw = {k: str(v).strip() for k, v in message.sender.items() if v is not None and str(v).strip()}
    wanted: list[tuple[str, str, str, str]] = []  # (field, type, scope, value)
    if spec.address is not None:
        if spec.address not in raw:
            raise InputError(
                f"a {spec.name} message needs the sender's {spec.address}",
                [Problem("missing or empty", f"sender.{spec.address}")],
            )
        assert spec.id_type is not None
        scope = message.account.strip() if spec.scope == "@account" else spec.scope
        wanted.append((spec.address, spec.id_type, scope, raw[spec.address]))
    for name in spec.extra:
        if name in raw:
            wanted.append((name, _EXTRA_TYPES[name], "", raw[name]))
    if not wanted:
        raise InputError(
            f"a {spec.name} needs at least one of the customer's identifiers",
            [Problem(f"give one of {', '.join(spec.extra)}", "sender")],
        )
    keys: list[str] = []
    unusable: list[InputError] = []
    for name, id_type, scope, value in wanted:
        normalised, reason = _normalised(id_type, value)
        if normalised is None:
            problem = Problem(f"not usable as a {id_type}: {reason}", f"sender.{name}")
            unusable.append(InputError(f"the sender's {name} {value!r} cannot identify anyone: {reason}", [problem]))
            if name == spec.address:  # replies go there: it must identify the sender
                raise unusable[-1]
            continue  # a further identifier that cannot identify anyone is left out
        key = f"{id_type}:{scope}:{normalised}"
        if key not in keys:
            keys.append(key)
    if not keys:
        raise unusable[0]
    address = raw[spec.address] if spec.address is not None else None
    return SenderKeys(address, tuple(keys), raw)
