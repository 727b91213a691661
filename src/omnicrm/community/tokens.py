"""Signed tokens of events, and their QR codes: a ticket per confirmed sign-up, a venue token per event.

A token is base64url of a payload (``t:<sign-up id>`` for a ticket, ``e:<event id>`` for a venue) followed by the
first 16 bytes of HMAC-SHA256 over it, keyed with a key derived from ``settings.secret_key`` under its own label.
So a token cannot be guessed (128 bits of MAC), altered into another sign-up's, taken for the other kind, or taken
for a tracked link or an unsubscribe link (other labels). Tokens do not expire: whether a ticket still works is the
state's business (cancelled, already used, outside the check-in window). Changing the secret key voids them all.

The ticket's QR code carries the ticket itself, which the clerk's scanner types into the check-in field; the venue's
QR code carries the public URL ``{public_url}/e/{token}`` a walk-in opens with their phone. QR codes are SVG (segno).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re

import segno

from omnicrm.errors import InputError, Problem

__all__ = ["event_token", "qr_data_uri", "qr_svg", "read_event_token", "read_ticket", "ticket_token", "venue_url"]

_MAC_BYTES = 16
_MAX_CHARS = 64
_CHARS = re.compile(r"^[A-Za-z0-9_-]+$")
_PAYLOAD = re.compile(rb"([te]):([1-9][0-9]{0,17})")


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"omnicrm community token v1", hashlib.sha256).digest()


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(_key(secret), payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _make(secret: str, kind: str, number: int) -> str:
    if number < 1:
        raise ValueError(f"a token names a record id from 1, not {number}")
    payload = f"{kind}:{number}".encode()
    return base64.urlsafe_b64encode(payload + _mac(secret, payload)).rstrip(b"=").decode()


def _read(secret: str, token: str, kind: str, field: str, what: str) -> int:
    """The id a token of ``kind`` names, or InputError naming ``field`` (not a token, altered, the wrong kind)."""
    token = token.strip()

    def bad(reason: str) -> InputError:
        return InputError(f"this {what} is not valid", [Problem(reason, field)])

    if not token or len(token) > _MAX_CHARS or not _CHARS.match(token):
        raise bad(f"not a {what}: check that it was scanned or copied in full")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        raise bad(f"not a {what}: check that it was scanned or copied in full") from None
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, _mac(secret, payload)):
        raise bad(f"the signature does not match: the {what} was altered or not issued here")
    found = _PAYLOAD.fullmatch(payload)
    if found is None or found.group(1).decode() != kind:
        raise bad(f"this is not a {what}")
    return int(found.group(2))


def ticket_token(secret: str, signup_id: int) -> str:
    """The ticket of a sign-up (what its QR code carries)."""
    return _make(secret, "t", signup_id)


def read_ticket(secret: str, ticket: str) -> int:
    """The sign-up id a ticket names; InputError on the field ``ticket`` otherwise."""
    return _read(secret, ticket, "t", "ticket", "ticket")


def event_token(secret: str, event_id: int) -> str:
    """The venue token of an event (the last part of its check-in URL)."""
    return _make(secret, "e", event_id)


def read_event_token(secret: str, token: str) -> int:
    """The event id a venue token names; InputError on the field ``token`` otherwise."""
    return _read(secret, token, "e", "token", "check-in code")


def venue_url(public_url: str, secret: str, event_id: int) -> str:
    """The URL a walk-in's phone opens from the venue's QR code."""
    return f"{public_url.rstrip('/')}/e/{event_token(secret, event_id)}"


def qr_svg(text: str, scale: int = 4) -> str:
    """An SVG document of the QR code of ``text`` (error correction M, 4-module quiet zone)."""
    buffer = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buffer, kind="svg", scale=scale, xmldecl=True)
    return buffer.getvalue().decode()


def qr_data_uri(text: str, scale: int = 4) -> str:
    """The QR code of ``text`` as a ``data:image/svg+xml`` URI, for an ``<img>`` on a page."""
    out: str = segno.make(text, error="m", micro=False).svg_data_uri(scale=scale)
    return out
