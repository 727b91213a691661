"""The vocabulary of consent: channels, purposes, sources, and the addresses (identifier keys) of each channel."""

from __future__ import annotations

from pathlib import Path

import duckdb

from omnicrm.errors import InputError, Problem
from omnicrm.identity.explain import normalise_one
from omnicrm.identity.identifiers import IDENTIFIER_TYPES

__all__ = [
    "CHANNELS",
    "PURPOSES",
    "SOURCES",
    "check_channel",
    "check_purpose",
    "check_source",
    "customer_of",
    "subject_key",
]

# channel → identifier types a message on it is addressed to
CHANNELS: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "sms": ("phone",),
    "wechat_oa": ("wechat_openid",),  # openid scoped by the official account's app id
    "wechat_mp": ("wechat_openid",),  # openid scoped by the mini-program's app id
    "wecom": ("wechat_unionid", "user_id"),  # unionid, or a WeCom external user id (user_id:wecom:<id>)
    "app_push": ("anonymous_id", "user_id"),  # a device id, or a logged-in app user
}

PURPOSES = {
    "marketing": "promotions, coupons, new products, events",
    "service": "order, delivery, membership and service notices",
}

SOURCES = {
    "signup_form": "a member sign-up or checkout form",
    "sms_reply": "an SMS reply (T, TD, 退订, ...)",
    "unsubscribe_link": "an unsubscribe link or one-click List-Unsubscribe",
    "wechat_event": "a WeChat event (e.g. unfollowing the official account)",
    "staff": "staff, on the person's request",
    "import": "an import of an earlier consent record",
    "api": "the merchant's own systems through the API",
    "preference_centre": "the person's own preference page",
}


def _check(value: str, known: dict[str, object] | set[str], field: str) -> str:
    if value not in known:
        raise InputError(f"unknown {field} {value!r}", [Problem(f"use one of {', '.join(sorted(known))}", field=field)])
    return value


def check_channel(channel: str) -> str:
    return _check(channel, set(CHANNELS), "channel")


def check_purpose(purpose: str) -> str:
    return _check(purpose, set(PURPOSES), "purpose")


def check_source(source: str) -> str:
    return _check(source, set(SOURCES), "source")


def subject_key(subject: str, channel: str | None = None, *, field: str = "subject") -> str:
    """The canonical identifier key for ``subject`` (``type:scope:value``), checked against ``channel``.

    ``phone::13800138001`` becomes ``phone::+8613800138001``; a key of a type the channel cannot
    deliver to (an email for SMS) or without the scope its type needs is refused.
    """
    parts = subject.split(":", 2)
    if len(parts) != 3:
        raise InputError(
            f"subject {subject!r} is not an identifier key",
            [Problem("write it as type:scope:value, e.g. phone::+8613800138000 or wechat_openid:wx123:o6_bm", field)],
        )
    id_type, scope, value = (p.strip() for p in parts)
    if channel is not None and id_type not in CHANNELS[channel]:
        raise InputError(
            f"a {channel} message cannot go to a {id_type}",
            [Problem(f"{channel} addresses are {', '.join(CHANNELS[channel])}", field)],
        )
    known = IDENTIFIER_TYPES.get(id_type)
    if known is not None and known.scoped and not scope:
        raise InputError(
            f"{id_type} needs a scope", [Problem(f"write it as {id_type}:<app id or source>:value", field)]
        )
    try:
        return normalise_one(id_type, value, scope if known is None or known.scoped else "")
    except InputError as exc:
        raise InputError(exc.message, [Problem(exc.message, field)]) from None


def customer_of(snapshot: Path | None, key: str) -> int | None:
    """The customer holding ``key`` in the identity snapshot (the smallest id if shared), for display."""
    if snapshot is None or not (snapshot / "identifiers.parquet").exists():
        return None
    row = (
        duckdb.connect()
        .execute(
            f"SELECT min(customer_id) FROM read_parquet('{snapshot / 'identifiers.parquet'}') WHERE key = $key",
            {"key": key},
        )
        .fetchone()
    )
    return int(row[0]) if row and row[0] is not None else None
