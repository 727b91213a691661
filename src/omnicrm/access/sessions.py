"""Console sessions, their CSRF tokens, and the log-in rate limit — all in the state store.

The cookie carries a random token; the store keeps only its sha256, so a copy of the database does not
let anyone in. Each session has its own CSRF token, which every form and HTMX request sends back.
Failed log-ins are counted per user name and per client address, so guessing is slow across server
processes too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, insert, select, update

from omnicrm.access.users import User, find_login, get_user
from omnicrm.errors import AuthError
from omnicrm.store.schema import console_sessions, login_attempts
from omnicrm.store.state import StateStore, utcnow

__all__ = ["LoginThrottled", "Session", "end_session", "log_in", "session_for"]

SESSION_HOURS = 12
WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_ADDRESS = 20


class LoginThrottled(AuthError):
    status = 429
    code = "too_many_attempts"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Session:
    token: str  # only known right after log-in (the cookie's value); empty when read back
    user: User
    csrf_token: str
    expires_at: dt.datetime

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(self.csrf_token, sent or "")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _failures_since(state: StateStore, column: str, value: str, since: dt.datetime) -> tuple[int, dt.datetime | None]:
    col = login_attempts.c[column]
    with state.connect() as conn:
        row = conn.execute(
            select(func.count(), func.min(login_attempts.c.at)).where(
                and_(col == value, login_attempts.c.at >= since, login_attempts.c.succeeded.is_(False))
            )
        ).one()
    return int(row[0]), row[1]


def _throttle(state: StateStore, username: str, address: str, now: dt.datetime) -> None:
    for column, value, limit in (
        ("username", username, MAX_FAILURES_PER_USER),
        ("address", address, MAX_FAILURES_PER_ADDRESS),
    ):
        failures, first = _failures_since(state, column, value, now - WINDOW)
        if failures >= limit:
            first = first if first is None or first.tzinfo else first.replace(tzinfo=dt.UTC)
            wait = int(((first or now) + WINDOW - now).total_seconds()) + 1
            raise LoginThrottled(
                f"too many failed log-ins for this {'user' if column == 'username' else 'address'}; "
                f"try again in {max(1, wait // 60)} minute(s)",
                retry_after=max(1, wait),
            )


def log_in(state: StateStore, username: str, password: str, address: str) -> Session:
    """A new session for the right name and password; AuthError otherwise (LoginThrottled after many misses)."""
    now = utcnow()
    username = username.strip().lower()[:64]
    _throttle(state, username, address, now)
    user = find_login(state, username, password)
    with state.begin() as conn:  # the attempt is kept whatever happens next
        conn.execute(
            insert(login_attempts).values(username=username, address=address, succeeded=user is not None, at=now)
        )
        conn.execute(delete(login_attempts).where(login_attempts.c.at < now - dt.timedelta(days=30)))
    if user is None:
        raise AuthError("wrong user name or password")
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + dt.timedelta(hours=SESSION_HOURS)
    with state.begin() as conn:
        conn.execute(
            insert(console_sessions).values(
                token_hash=_hash(token), user_id=user.id, csrf_token=csrf, created_at=now, expires_at=expires
            )
        )
    return Session(token, user, csrf, expires)


def session_for(state: StateStore, token: str | None) -> Session | None:
    """The live session of a cookie's token (None when absent, unknown, ended, expired or the user disabled)."""
    if not token:
        return None
    with state.connect() as conn:
        row = conn.execute(
            select(console_sessions).where(
                console_sessions.c.token_hash == _hash(token), console_sessions.c.ended_at.is_(None)
            )
        ).first()
    if row is None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=dt.UTC)
    if expires <= utcnow():
        return None
    user = get_user(state, int(row.user_id))
    return Session("", user, row.csrf_token, expires) if user else None


def end_session(state: StateStore, token: str | None) -> None:
    if not token:
        return
    with state.begin() as conn:
        conn.execute(
            update(console_sessions)
            .where(console_sessions.c.token_hash == _hash(token), console_sessions.c.ended_at.is_(None))
            .values(ended_at=utcnow())
        )
