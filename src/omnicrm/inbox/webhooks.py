"""Messages from the channels' pushes, as ``Inbound`` messages: WeChat official-account messages (the XML the
account's server URL receives), Alibaba Cloud SmsUp replies, and a signed JSON webhook per channel.

The signed webhook (``POST /inbox/hooks/<channel>``) serves marketplace IM, Weibo and email (whatever relays them:
the merchant's IM gateway, a mail service's inbound hook). The body is one JSON object::

    {"message_id": "…", "account": "…", "sender": {"nick": "tb_buyer"}, "text": "…", "name": "…",
     "attachments": [{"name": "photo.jpg", "type": "image/jpeg", "size": 48213, "url": "https://…"}],
     "sent_at": "2026-11-11T09:00:00+08:00", "subject": "…", "language": "zh"}

signed in ``X-Omnicrm-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` with the channel's secret
(``[inbox] webhook_secrets.<channel>``). ``sender`` takes the fields omnicrm.inbox.senders lists for the channel.
"""

from __future__ import annotations

import hmac
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from omnicrm.consent.replies import CHINA, opt_out_word
from omnicrm.consent.wechat import BadSignature, parse_event
from omnicrm.errors import InputError, NotFound, Problem
from omnicrm.inbox.config import InboxConfig
from omnicrm.inbox.outbound import signature
from omnicrm.inbox.senders import CHANNELS, Inbound

__all__ = ["MAX_HOOK_BYTES", "from_hook", "from_sms_up", "from_wechat", "verify_hook"]

MAX_HOOK_BYTES = 256 * 1024
_WECHAT_MEDIA = {"image": "image", "voice": "voice", "video": "video", "shortvideo": "video"}


def verify_hook(config: InboxConfig, channel: str, body: bytes, header: str | None) -> None:
    """Raise unless ``body`` carries the signature of ``channel``'s webhook secret."""
    secret = config.webhook_secrets.get(channel)
    if channel not in CHANNELS or not secret:
        raise NotFound(f"no webhook is set up for {channel!r}",
                       [Problem("set [inbox] webhook_secrets for the channel", "channel")])  # fmt: skip
    if not header or not hmac.compare_digest(header.strip().lower(), signature(secret, body)):
        raise BadSignature(
            "the webhook signature does not match",
            [Problem("sign the raw body with the channel's secret: sha256=<hex>", "X-Omnicrm-Signature")],
        )


def _time(value: Any, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{name} is not a time", [Problem("use ISO 8601 with an offset", name)]) from None
    if parsed.tzinfo is None:
        raise InputError(f"{name} has no time zone", [Problem("give it with an offset, e.g. +08:00", name)])
    return parsed


def from_hook(channel: str, body: bytes) -> Inbound:
    """The message in a signed webhook's body (checked by ``receive`` afterwards)."""
    if len(body) > MAX_HOOK_BYTES:
        raise InputError("the webhook body is too large", [Problem(f"at most {MAX_HOOK_BYTES:,} bytes", "body")])
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InputError("the webhook body is not JSON", [Problem("send one JSON object", "body")]) from None
    if not isinstance(doc, dict):
        raise InputError("the webhook body is not a JSON object", [Problem("send one JSON object", "body")])
    sender = doc.get("sender")
    if not isinstance(sender, dict) or not all(isinstance(v, str | int) for v in sender.values()):
        raise InputError("the message has no sender", [Problem("give an object of the sender's identifiers", "sender")])
    attachments = doc.get("attachments") or []
    if not isinstance(attachments, list):
        raise InputError("attachments must be a list", [Problem("give a list of objects", "attachments")])
    text = doc.get("text") or ""
    if not isinstance(text, str):
        raise InputError("text must be a string", [Problem("give the message's text", "text")])
    return Inbound(
        channel=channel, sender={str(k): str(v) for k, v in sender.items()}, text=text, attachments=attachments,
        external_id=None if doc.get("message_id") is None else str(doc["message_id"]),
        account=str(doc.get("account") or ""), sent_at=_time(doc.get("sent_at"), "sent_at"),
        name=doc.get("name") if isinstance(doc.get("name"), str) else None,
        subject=doc.get("subject") if isinstance(doc.get("subject"), str) else None,
        language=doc.get("language") if isinstance(doc.get("language"), str) else None,
    )  # fmt: skip


def _field(root: ET.Element, name: str) -> str:
    node = root.find(name)
    return (node.text or "").strip() if node is not None else ""


def from_wechat(appid: str, body: bytes) -> Inbound | None:
    """A follower's message to an official account (text, image, voice, video, location, link); None for events.
    The XML is checked by ``consent.wechat.parse_event`` first (size, no declarations, required fields)."""
    event = parse_event(body)
    kind = event.msg_type.lower()
    if kind == "event":
        return None
    root = ET.fromstring(body)
    text, attachments = "", []
    if kind == "text":
        text = _field(root, "Content")
    elif kind in _WECHAT_MEDIA:
        media = _field(root, "MediaId")
        item = {"type": _WECHAT_MEDIA[kind], "media_id": media, "size": 0}
        if _field(root, "PicUrl"):
            item["url"] = _field(root, "PicUrl")
        attachments.append(item)
        text = _field(root, "Recognition")  # a voice message's transcript, when the account has it on
    elif kind == "location":
        text = f"[位置 location] {_field(root, 'Label')} ({_field(root, 'Location_X')}, {_field(root, 'Location_Y')})"
    elif kind == "link":
        text = f"{_field(root, 'Title')}\n{_field(root, 'Description')}\n{_field(root, 'Url')}".strip()
    else:
        text = f"[{kind}]"
    created = event.created or datetime.now(UTC)
    return Inbound(channel="wechat_oa", sender={"openid": event.openid}, text=text, attachments=attachments,
                   external_id=_field(root, "MsgId") or None, account=appid, sent_at=created)  # fmt: skip


def from_sms_up(items: object) -> list[Inbound]:
    """The replies of an SmsUp push that are messages for the inbox: well-formed, and not an opt-out (those are
    consent's business). Malformed items are reported by the consent handler of the same push."""
    if not isinstance(items, list):
        return []
    found = []
    for item in items:
        if not isinstance(item, dict):
            continue
        phone, text, sent = item.get("phone_number"), item.get("content"), item.get("send_time")
        if not isinstance(phone, str) or not phone.strip() or not isinstance(text, str) or opt_out_word(text):
            continue
        try:
            at = datetime.strptime(str(sent), "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA) if sent else None
        except ValueError:
            continue
        sequence = item.get("sequence_id")
        found.append(Inbound(channel="sms", sender={"phone": phone.strip()}, text=text, sent_at=at,
                             external_id=None if sequence is None else str(sequence),
                             account=str(item.get("dest_code") or "")))  # fmt: skip
    return found
