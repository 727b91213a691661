"""Console users and their roles: who may see and do what in the web console.

Passwords are stored as scrypt hashes (standard library, memory-hard) with a per-user salt. Roles map to
permissions in one table, so the console's routes and the authorisation tests read the same truth.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import insert, select, update

from omnicrm.errors import Conflict, InputError, NotFound
from omnicrm.store.schema import users
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "PERMISSIONS",
    "ROLES",
    "User",
    "create_user",
    "disable_user",
    "get_user",
    "hash_password",
    "list_users",
    "set_password",
    "verify_password",
]

PERMISSIONS = {
    "dashboard": "see the analytics dashboard",
    "customers.search": "find a customer by phone, e-mail, member card, nick or id",
    "customers.view": "open a customer's 360 (tags, orders, timeline)",
    "customers.identifiers": "see identifiers in full (others see them masked)",
    "customers.tag": "set and clear manual tags on a customer",
    "tags.view": "read the tag catalogue",
    "segments.view": "read segments and count audiences",
    "segments.write": "save segments",
    "campaigns.view": "see campaigns, their send logs and results",
    "campaigns.write": "create, launch and cancel campaigns",
    "loyalty.view": "see members' points, tiers, coupons, referrals, draws, communities, content and stored value",
    "loyalty.write": "run the loyalty programme: adjust points, set up coupons, referrals, draws, events and content",
    "till": "at the till: check people in, redeem coupons, earn and spend points and stored value",
    "inbox.work": "answer customers' conversations in the inbox",
    "inbox.manage": "set up teams, assignment, SLAs and quick replies; read the SLA reports",
    "users.view": "see the console's users and their roles",
}

ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),
    "marketer": frozenset(
        {
            "dashboard",
            "customers.search",
            "customers.view",
            "customers.identifiers",
            "customers.tag",
            "tags.view",
            "segments.view",
            "segments.write",
            "campaigns.view",
            "campaigns.write",
            "loyalty.view",
            "loyalty.write",
        }
    ),
    "service_agent": frozenset(
        {
            "customers.search",
            "customers.view",
            "customers.identifiers",
            "customers.tag",
            "tags.view",
            "loyalty.view",
            "inbox.work",
        }
    ),
    "store_clerk": frozenset({"customers.search", "customers.view", "till"}),
}

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: str

    @property
    def permissions(self) -> frozenset[str]:
        return ROLES.get(self.role, frozenset())

    def may(self, permission: str) -> bool:
        return permission in self.permissions


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT, dklen=32)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    return hmac.compare_digest(got.hex(), digest)


def _check(username: str, role: str, password: str) -> None:
    if not _USERNAME.match(username):
        raise InputError(
            f"username {username!r}: use 2–64 lower-case letters, digits, '.', '_' or '-', starting with a letter"
            " or digit"
        )
    if role not in ROLES:
        raise InputError(f"role {role!r} is unknown; choose from {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise InputError(f"the password of {username!r} is too short: at least {MIN_PASSWORD} characters")


def create_user(state: StateStore, username: str, password: str, role: str, display_name: str = "") -> User:
    """Add a console user; the password is kept only as a hash."""
    _check(username, role, password)
    with state.begin() as conn:
        if conn.execute(select(users.c.id).where(users.c.username == username)).first():
            raise Conflict(f"a user named {username!r} exists already")
        new_id = conn.execute(
            insert(users).values(
                username=username, display_name=display_name or username, role=role,
                password_hash=hash_password(password), created_at=utcnow(),
            )
        ).inserted_primary_key  # fmt: skip
    return User(int(new_id[0]) if new_id else 0, username, display_name or username, role)


def _user(row: object) -> User:
    return User(int(row.id), row.username, row.display_name, row.role)  # type: ignore[attr-defined]


def get_user(state: StateStore, user_id: int) -> User | None:
    with state.connect() as conn:
        row = conn.execute(select(users).where(users.c.id == user_id, users.c.disabled_at.is_(None))).first()
    return _user(row) if row else None


def find_login(state: StateStore, username: str, password: str) -> User | None:
    """The active user with this name and password, or None (the same work either way, so timing tells little)."""
    with state.connect() as conn:
        row = conn.execute(select(users).where(users.c.username == username, users.c.disabled_at.is_(None))).first()
    stored = row.password_hash if row else hash_password("not a user")
    ok = verify_password(password, stored)
    return _user(row) if row and ok else None


def list_users(state: StateStore) -> list[User]:
    with state.connect() as conn:
        rows = conn.execute(select(users).where(users.c.disabled_at.is_(None)).order_by(users.c.username)).all()
    return [_user(r) for r in rows]


def set_password(state: StateStore, username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InputError(f"the password of {username!r} is too short: at least {MIN_PASSWORD} characters")
    with state.begin() as conn:
        done = conn.execute(
            update(users).where(users.c.username == username).values(password_hash=hash_password(password))
        )
    if not done.rowcount:
        raise NotFound(f"no user named {username!r}")


def disable_user(state: StateStore, username: str) -> None:
    with state.begin() as conn:
        done = conn.execute(
            update(users)
            .where(users.c.username == username, users.c.disabled_at.is_(None))
            .values(disabled_at=utcnow())
        )
    if not done.rowcount:
        raise NotFound(f"no active user named {username!r}")
