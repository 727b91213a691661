"""WeChat server messages: the signature check, the server tokens, and unsubscribe (unfollow) events.

WeChat calls the account's server URL (here ``/wechat/{appid}/events``) with ``signature``,
``timestamp`` and ``nonce`` in the query, where ``signature = sha1(''.join(sorted([token,
timestamp, nonce])))`` and ``token`` is the server token set in the WeChat admin console. The
tokens live in the state store, one per app id (``omnicrm consents wechat-token APPID TOKEN``), so
several accounts can share one omnicrm. A GET with ``echostr`` is the URL check made when the
server is configured; a POST carries an XML message. Only plaintext mode is supported (the
account's message encryption mode set to 明文模式).

An ``unsubscribe`` event withdraws wechat_oa marketing for ``wechat_openid:<appid>:<openid>``.
Following (``subscribe``) does not grant marketing consent; other messages are acknowledged and
ignored here.
"""

from __future__ import annotations

import hashlib
import hmac
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select, update

from omnicrm.consent import ledger
from omnicrm.consent.subjects import customer_of, subject_key
from omnicrm.errors import InputError, NotFound, Problem
from omnicrm.store.schema import wechat_server_tokens
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "BadSignature",
    "WechatEvent",
    "handle_event",
    "parse_event",
    "set_server_token",
    "sign",
    "verify",
]

MAX_BODY_BYTES = 64 * 1024


class BadSignature(InputError):
    status = 403
    code = "bad_signature"


@dataclass(frozen=True)
class WechatEvent:
    to_user: str
    openid: str
    created: datetime | None
    msg_type: str
    event: str | None


def set_server_token(state: StateStore, appid: str, token: str) -> None:
    """Store (or replace) the server token of an official account or mini-program."""
    if not appid.strip():
        raise InputError("no app id", [Problem("give the app id, e.g. wx1234567890abcdef", "appid")])
    if not (3 <= len(token) <= 32 and token.isalnum()):
        raise InputError("WeChat server tokens are 3 to 32 letters or digits", [Problem("not a valid token", "token")])
    with state.begin() as conn:
        changed = conn.execute(
            update(wechat_server_tokens)
            .where(wechat_server_tokens.c.appid == appid)
            .values(token=token, updated_at=utcnow())
        ).rowcount
        if not changed:
            conn.execute(insert(wechat_server_tokens).values(appid=appid, token=token, updated_at=utcnow()))


def _token(state: StateStore, appid: str) -> str:
    with state.connect() as conn:
        token = conn.execute(
            select(wechat_server_tokens.c.token).where(wechat_server_tokens.c.appid == appid)
        ).scalar_one_or_none()
    if token is None:
        raise NotFound(f"no WeChat server token for app {appid!r}; set one with `omnicrm consents wechat-token`")
    return str(token)


def sign(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def verify(state: StateStore, appid: str, *, signature: str, timestamp: str, nonce: str) -> None:
    """Raise BadSignature unless the request was signed with this app's server token."""
    expected = sign(_token(state, appid), timestamp, nonce)
    if not hmac.compare_digest(signature.lower().encode(), expected.encode()):
        raise BadSignature(
            "the WeChat signature does not match", [Problem("not signed with this account's server token", "signature")]
        )


def _text(root: ET.Element, name: str, *, required: bool) -> str | None:
    node = root.find(name)
    value = (node.text or "").strip() if node is not None else ""
    if required and not value:
        raise InputError("the WeChat message is incomplete", [Problem(f"<{name}> is missing or empty", name)])
    return value or None


def parse_event(body: bytes) -> WechatEvent:
    """The fields of a plaintext WeChat message, or InputError naming what is wrong."""
    if len(body) > MAX_BODY_BYTES:
        raise InputError("the WeChat message is too large", [Problem(f"at most {MAX_BODY_BYTES} bytes", "body")])
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise InputError("the WeChat message is not valid", [Problem("declarations are not accepted", "body")])
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise InputError("the WeChat message is not XML", [Problem(str(exc), "body")]) from None
    if root.tag != "xml":
        raise InputError("the WeChat message is not valid", [Problem("the root element must be <xml>", "body")])
    created_text = _text(root, "CreateTime", required=False)
    created = None
    if created_text is not None:
        if not created_text.isdigit():
            raise InputError("the WeChat message is not valid", [Problem("not a Unix time", "CreateTime")])
        created = datetime.fromtimestamp(int(created_text), UTC)
    return WechatEvent(
        to_user=_text(root, "ToUserName", required=True) or "",
        openid=_text(root, "FromUserName", required=True) or "",
        created=created,
        msg_type=_text(root, "MsgType", required=True) or "",
        event=_text(root, "Event", required=False),
    )


def handle_event(state: StateStore, snapshot: Path | None, appid: str, event: WechatEvent) -> bool:
    """Apply an event; True when it withdrew consent (an unsubscribe of someone who had not already)."""
    if event.msg_type != "event" or (event.event or "").lower() != "unsubscribe":
        return False
    key = subject_key(f"wechat_openid:{appid}:{event.openid}", "wechat_oa", field="FromUserName")
    # the time we received it: a CreateTime from a skewed clock must not reorder the ledger
    done = ledger.record(
        state, subject=key, channel="wechat_oa", purpose="marketing", granted=False, source="wechat_event",
        by=f"wechat:{appid}", detail=f"unsubscribe event to {event.to_user}", customer_id=customer_of(snapshot, key),
        only_if_changed=True,
    )  # fmt: skip
    return done is not None
