"""Sources: one per channel ("tmall", "pos-store-3", "wechat-oa", "web" ...), each with a write key.

Write keys are shown once, when made, and stored only as sha256 hashes.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import insert, select, update

from omnicrm.errors import AuthError, Conflict, InputError, NotFound
from omnicrm.store.schema import sources
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "KINDS",
    "USER_ID_TYPES",
    "Source",
    "SourceKeys",
    "create_source",
    "list_sources",
    "rotate_key",
    "user_id_types",
]

USER_ID_TYPES = ("member_card", "phone", "email", "wechat_unionid")
KINDS = ("marketplace", "pos", "web", "app", "wechat", "sms", "email", "service", "import", "other")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Source:
    name: str
    kind: str
    write_key_hint: str
    disabled: bool
    user_id_type: str | None = None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key() -> str:
    return "wk_" + secrets.token_urlsafe(24)


def create_source(
    state: StateStore, name: str, kind: str = "other", write_key: str | None = None, *, user_id_type: str | None = None
) -> str:
    """Create a source and return its write key (the only time it is visible).

    ``user_id_type`` says what the source's Segment ``userId`` is when it is not an id of its own —
    e.g. ``member_card`` for a shop whose logins are membership numbers — so OneID can join on it.
    """
    if not _NAME.match(name):
        raise InputError(f"source name {name!r} must be lower-case letters, digits, '-' or '_' (at most 64)")
    if kind not in KINDS:
        raise InputError(f"source kind {kind!r} is not one of {', '.join(KINDS)}")
    if user_id_type is not None and user_id_type not in USER_ID_TYPES:
        raise InputError(f"user id type {user_id_type!r} is not one of {', '.join(USER_ID_TYPES)}")
    key = write_key or _new_key()
    with state.begin() as conn:
        if conn.execute(select(sources.c.name).where(sources.c.name == name)).first():
            raise Conflict(f"source {name!r} exists already; rotate its key with `omnicrm sources rotate {name}`")
        conn.execute(
            insert(sources).values(
                name=name,
                kind=kind,
                write_key_hash=_hash(key),
                write_key_hint=key[:7],
                disabled=False,
                created_at=utcnow(),
                user_id_type=user_id_type,
            )
        )
    return key


def rotate_key(state: StateStore, name: str) -> str:
    key = _new_key()
    with state.begin() as conn:
        done = conn.execute(
            update(sources).where(sources.c.name == name).values(write_key_hash=_hash(key), write_key_hint=key[:7])
        )
        if not done.rowcount:
            raise NotFound(f"no source named {name!r}")
    return key


def list_sources(state: StateStore) -> list[Source]:
    with state.connect() as conn:
        rows = conn.execute(select(sources).order_by(sources.c.name)).all()
    return [Source(r.name, r.kind, r.write_key_hint, bool(r.disabled), r.user_id_type) for r in rows]


def user_id_types(state: StateStore) -> dict[str, str]:
    """Sources whose userId is another identifier type (for OneID)."""
    return {s.name: s.user_id_type for s in list_sources(state) if s.user_id_type}


class SourceKeys:
    """Resolves write keys to source names, caching hits briefly so ingest skips a query per request."""

    def __init__(self, state: StateStore, ttl: float = 10.0) -> None:
        self.state = state
        self.ttl = ttl
        self._cache: dict[str, tuple[float, str]] = {}

    def resolve(self, write_key: str | None) -> str:
        if not write_key:
            raise AuthError(
                "no write key: send it as the HTTP Basic user name (empty password) or as 'writeKey' in the body"
            )
        digest = _hash(write_key)
        hit = self._cache.get(digest)
        now = time.monotonic()
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        with self.state.connect() as conn:
            row = conn.execute(
                select(sources.c.name, sources.c.disabled).where(sources.c.write_key_hash == digest)
            ).first()
        if row is None or row.disabled:
            hint = write_key[:7] + "…" if len(write_key) > 7 else write_key
            raise AuthError(
                f"unknown or disabled write key '{hint}'; list sources with `omnicrm sources list`, "
                "create one with `omnicrm sources add NAME --kind KIND`"
            )
        self._cache[digest] = (now, row.name)
        return str(row.name)
