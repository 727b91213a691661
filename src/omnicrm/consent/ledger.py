"""The consent ledger: append-only grants and withdrawals; the latest record of each (subject, channel, purpose) wins.

"Latest" is the greatest ``(at, id)``: an import of an older consent never overrides a newer
withdrawal, and records are never dated in the future. Opt-outs that arrive from people
(``only_if_changed``) add a record only when they change the state, so a reply sent twice or a
mail client posting the one-click unsubscribe again leaves one record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, func, insert, select, true

from omnicrm.consent.subjects import check_channel, check_purpose, check_source
from omnicrm.errors import InputError, Problem
from omnicrm.store.schema import consents
from omnicrm.store.state import StateStore, utcnow

__all__ = ["Consent", "check_time", "history", "latest_query", "record", "states", "utc"]

_FUTURE_SLACK = timedelta(minutes=5)


@dataclass(frozen=True)
class Consent:
    """One record of the ledger (or the current state, when it is the latest)."""

    id: int
    subject: str
    channel: str
    purpose: str
    granted: bool
    source: str
    wording: str | None
    detail: str | None
    recorded_by: str
    customer_id: int | None
    at: datetime
    recorded_at: datetime

    @property
    def status(self) -> str:
        return "granted" if self.granted else "withdrawn"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


def utc(value: datetime) -> datetime:
    """A time read back from the store as an aware UTC time (SQLite gives naive UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check_time(at: datetime | None, now: datetime) -> datetime:
    """``at`` (default now) in UTC; refused without a time zone or in the future."""
    when = at or now
    if when.tzinfo is None:
        raise InputError("the time has no time zone", [Problem("give it with an offset, e.g. +08:00", "at")])
    if when > now + _FUTURE_SLACK:
        raise InputError(
            "consent cannot be recorded in the future", [Problem(f"{when.isoformat()} is later than now", "at")]
        )
    return when.astimezone(UTC)


def _row(r: Any) -> Consent:
    return Consent(
        r.id, r.subject, r.channel, r.purpose, bool(r.granted), r.source, r.wording, r.detail, r.recorded_by,
        r.customer_id, utc(r.at), utc(r.recorded_at),
    )  # fmt: skip


def latest_query(
    *, subjects: list[str] | None = None, channel: str | None = None, purpose: str | None = None
) -> Select:
    """SELECT of the latest record per (subject, channel, purpose), optionally narrowed (SQLite and PostgreSQL)."""
    conditions: list[ColumnElement[bool]] = []
    if subjects is not None:
        conditions.append(consents.c.subject.in_(subjects))
    if channel is not None:
        conditions.append(consents.c.channel == channel)
    if purpose is not None:
        conditions.append(consents.c.purpose == purpose)
    rank = (
        func.row_number()
        .over(
            partition_by=(consents.c.subject, consents.c.channel, consents.c.purpose),
            order_by=(consents.c.at.desc(), consents.c.id.desc()),
        )
        .label("rank")
    )
    ranked = select(consents, rank).where(and_(true(), *conditions)).subquery()
    return select(*(ranked.c[c.name] for c in consents.columns)).where(ranked.c.rank == 1)


def _latest(conn: Connection, subject: str, channel: str, purpose: str) -> Consent | None:
    row = conn.execute(
        select(consents)
        .where(consents.c.subject == subject, consents.c.channel == channel, consents.c.purpose == purpose)
        .order_by(consents.c.at.desc(), consents.c.id.desc())
        .limit(1)
    ).first()
    return _row(row) if row is not None else None


def record(
    state: StateStore,
    *,
    subject: str,
    channel: str,
    purpose: str,
    granted: bool,
    source: str,
    by: str,
    wording: str | None = None,
    detail: str | None = None,
    customer_id: int | None = None,
    at: datetime | None = None,
    only_if_changed: bool = False,
) -> Consent | None:
    """Append a grant or withdrawal for an already canonical ``subject`` key; None if unchanged and skipped."""
    check_channel(channel)
    check_purpose(purpose)
    check_source(source)
    now = utcnow()
    when = check_time(at, now)
    if granted and purpose == "marketing" and not wording:
        raise InputError(
            "a marketing consent needs the wording the person agreed to",
            [Problem("give the version of the wording they saw, e.g. signup-2026-01", "wording")],
        )
    values: dict[str, Any] = {
        "subject": subject, "channel": channel, "purpose": purpose, "granted": granted, "source": source,
        "wording": wording, "detail": detail, "recorded_by": by, "customer_id": customer_id, "at": when,
        "recorded_at": now,
    }  # fmt: skip
    with state.begin() as conn:
        if only_if_changed:
            current = _latest(conn, subject, channel, purpose)
            if current is not None and current.granted == granted:
                return None
        new_id = conn.execute(insert(consents).values(**values).returning(consents.c.id)).scalar_one()
    return Consent(id=int(new_id), **values)


def states(state: StateStore, subjects: list[str]) -> list[Consent]:
    """The current state of every (channel, purpose) recorded for these subject keys."""
    if not subjects:
        return []
    query = latest_query(subjects=subjects)
    with state.connect() as conn:
        rows = conn.execute(query).all()
    return sorted((_row(r) for r in rows), key=lambda c: (c.subject, c.channel, c.purpose))


def history(state: StateStore, subjects: list[str]) -> list[Consent]:
    """Every record for these subject keys, oldest first."""
    if not subjects:
        return []
    with state.connect() as conn:
        rows = conn.execute(
            select(consents).where(consents.c.subject.in_(subjects)).order_by(consents.c.at, consents.c.id)
        ).all()
    return [_row(r) for r in rows]
