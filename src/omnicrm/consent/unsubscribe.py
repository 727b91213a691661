"""Signed unsubscribe links: ``/u/{token}`` names a subject, channel and purpose; the signature is the authority.

The token is ``<payload>.<mac>``, both base64url without padding: the payload is the JSON list
``[subject, channel, purpose]``, the mac the first 16 bytes of HMAC-SHA256 over the payload with a
key derived from ``settings.secret_key``. Tokens do not expire: an unsubscribe link must keep
working for as long as the message that carries it can be read. Changing the secret key voids
every link already sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from omnicrm.consent.subjects import check_channel, check_purpose
from omnicrm.errors import InputError, Problem

__all__ = ["make_token", "read_token", "unsubscribe_url"]

_MAC_BYTES = 16
MAX_TOKEN_CHARS = 2048


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"omnicrm unsubscribe link v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: str, subject: str, channel: str, purpose: str) -> str:
    """The token of an unsubscribe link for a canonical ``subject`` key."""
    check_channel(channel)
    check_purpose(purpose)
    payload = json.dumps([subject, channel, purpose], ensure_ascii=False, separators=(",", ":")).encode()
    mac = hmac.new(_key(secret), payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{_b64(payload)}.{_b64(mac)}"


def unsubscribe_url(base_url: str, secret: str, subject: str, channel: str, purpose: str = "marketing") -> str:
    """The link (and the List-Unsubscribe target) for a message to ``subject``."""
    return f"{base_url.rstrip('/')}/u/{make_token(secret, subject, channel, purpose)}"


def _bad(reason: str) -> InputError:
    return InputError("this unsubscribe link is not valid", [Problem(reason, "token")])


def read_token(secret: str, token: str) -> tuple[str, str, str]:
    """(subject, channel, purpose) of a token this product signed, or InputError naming the token."""
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise _bad("not an unsubscribe token")
    payload_text, mac_text = token.split(".")
    try:
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except ValueError:
        raise _bad("not an unsubscribe token") from None
    expected = hmac.new(_key(secret), payload, hashlib.sha256).digest()[:_MAC_BYTES]
    if not hmac.compare_digest(mac, expected):
        raise _bad("the signature does not match: the link was altered or not issued here")
    try:
        subject, channel, purpose = json.loads(payload)
    except (ValueError, TypeError):
        raise _bad("the signed content is not readable") from None
    return str(subject), check_channel(str(channel)), check_purpose(str(purpose))
