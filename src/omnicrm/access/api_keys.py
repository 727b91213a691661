"""API keys for the REST API: shown once, stored as sha256 hashes, each with a set of scopes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import insert, select, update

from omnicrm.errors import AuthError, InputError, NotFound
from omnicrm.store.schema import api_keys
from omnicrm.store.state import StateStore, utcnow

__all__ = ["SCOPES", "ApiKey", "Forbidden", "authenticate", "create_api_key", "list_api_keys", "revoke_api_key"]

SCOPES = {
    "customers:read": "look customers up and read their identifiers and portraits",
    "customers:write": "join and split customers (OneID operator actions), set manual tags",
    "segments:read": "count audiences, read segments, their snapshots and members",
    "segments:write": "save, change and delete segments; take snapshots",
    "analytics:read": "read the analytics reports (repeat purchase, cohorts, RFM, value, channels, OneID)",
    "consents:read": "read consents and non-personalised marketing choices of addresses and customers",
    "consents:write": "record grants and withdrawals of consent, personalisation choices and SMS opt-out replies",
    "campaigns:read": "read campaigns, their send logs and results",
    "campaigns:write": "create, launch, cancel campaigns and settle sends left in doubt",
    "coupons:write": "issue coupons (the coupon channel of campaigns calls this)",
    "loyalty:read": "read members' points, tiers, coupons, referrals, draws, communities, content and stored value",
    "loyalty:write": "run the loyalty programme: earn and adjust points, issue coupons, set up referrals and draws",
    "till": "what a till does: redeem coupons, check people in, earn and spend points and stored value",
    "inbox:read": "read conversations, queues and SLA reports",
    "inbox:write": "post messages and replies, assign and close conversations",
    "admin": "everything",
}


class Forbidden(AuthError):
    status = 403
    code = "forbidden"


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    hint: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes and "admin" not in self.scopes:
            raise Forbidden(f"this API key ({self.name}) lacks the scope '{scope}'; ask an admin for a key that has it")


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(state: StateStore, name: str, scopes: list[str]) -> str:
    """Create a key and return it (the only time it is visible)."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise InputError(f"unknown or missing scopes {unknown}; choose from {', '.join(SCOPES)}")
    key = "ak_" + secrets.token_urlsafe(32)
    with state.begin() as conn:
        conn.execute(
            insert(api_keys).values(
                name=name,
                key_hash=_hash(key),
                key_hint=key[:7],
                scopes=" ".join(sorted(set(scopes))),
                created_at=utcnow(),
            )
        )
    return key


def list_api_keys(state: StateStore) -> list[ApiKey]:
    with state.connect() as conn:
        rows = conn.execute(select(api_keys).where(api_keys.c.revoked_at.is_(None)).order_by(api_keys.c.id)).all()
    return [ApiKey(r.id, r.name, r.key_hint, frozenset(r.scopes.split())) for r in rows]


def revoke_api_key(state: StateStore, key_id: int) -> None:
    with state.begin() as conn:
        done = conn.execute(
            update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=utcnow())
        )
    if not done.rowcount:
        raise NotFound(f"no active API key with id {key_id}")


def authenticate(state: StateStore, key: str | None) -> ApiKey:
    """The key's record, or AuthError naming what to send."""
    if not key:
        raise AuthError("send an API key as 'Authorization: Bearer ak_…'; create one with `omnicrm apikeys add`")
    with state.connect() as conn:
        row = conn.execute(
            select(api_keys).where(api_keys.c.key_hash == _hash(key), api_keys.c.revoked_at.is_(None))
        ).first()
    if row is None:
        raise AuthError("unknown or revoked API key; list keys with `omnicrm apikeys list`")
    return ApiKey(row.id, row.name, row.key_hint, frozenset(row.scopes.split()))
