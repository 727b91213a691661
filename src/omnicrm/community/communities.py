"""Interest communities (社群): groups built around interests of the portrait, and who belongs to them.

A community names one or more interests of the taxonomy (``portrait/data/interests.toml``: baking, hiking,
fishing, parenting …); ``suggest.suggest_members`` finds the customers whose portrait has them. Staff invite people
(``invite``, source ``invited``), people join themselves (``join``, ``joined``), and checking in at one of the
community's events makes a person a member too (``checked_in``). Leaving keeps the row with ``left_at`` set, so how
and when a person came stays known; joining again clears it. Adding someone who is already a member changes nothing.
An archived community takes no new members.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.loyalty.locks import chunks, insert_or_nothing, transaction, utc, when
from omnicrm.portrait.interests import Taxonomy, load_taxonomy
from omnicrm.store.schema import communities, community_members
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "SOURCES",
    "STATUSES",
    "Community",
    "Member",
    "Membership",
    "add_members",
    "create_community",
    "get_community",
    "invite",
    "join",
    "leave",
    "list_communities",
    "members",
    "set_status",
]

C, M = communities, community_members
SOURCES = ("invited", "joined", "checked_in")
STATUSES = ("active", "archived")
MAX_INVITE = 10_000


@dataclass(frozen=True)
class Community:
    """A community; ``members`` counts current members by how they came (invited, joined, checked_in)."""

    id: int
    name_zh: str
    name_en: str
    interests: tuple[str, ...]
    description: str | None
    status: str
    created_by: str
    created_at: datetime
    members: dict[str, int] = field(default_factory=dict)

    @property
    def member_count(self) -> int:
        return sum(self.members.values())

    def name(self, lang: str) -> str:
        return self.name_en if lang == "en" else self.name_zh

    def as_dict(self) -> dict[str, Any]:
        out = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}
        return out | {"interests": list(self.interests), "member_count": self.member_count}


@dataclass(frozen=True)
class Member:
    customer_id: int
    source: str
    joined_at: datetime
    left_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Membership:
    """What adding people did: ``added`` became members now, ``already`` were members before."""

    added: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)


def _community_of(row: Any, counts: dict[str, int] | None = None) -> Community:
    return Community(
        int(row.id), row.name_zh, row.name_en, tuple(i for i in row.interests.split(",") if i), row.description,
        row.status, row.created_by, utc(row.created_at), counts or {},
    )  # fmt: skip


def _interests(given: Iterable[str], taxonomy: Taxonomy) -> tuple[str, ...]:
    """The interest ids, checked against the taxonomy (every unknown one named, with the closest known one)."""
    known = sorted(it.id for it in taxonomy.interests)
    wanted = sorted({str(i).strip() for i in given if str(i).strip()})
    problems = []
    for interest in wanted:
        if interest not in known:
            close = difflib.get_close_matches(interest, known, n=1)
            hint = f" — did you mean '{close[0]}'?" if close else ""
            problems.append(Problem(f"unknown interest '{interest}'{hint}", "interests"))
    if not wanted:
        problems.append(Problem(f"name at least one interest of the taxonomy ({', '.join(known[:8])} …)", "interests"))
    if problems:
        raise InputError("the community's interests are not in the interest taxonomy", problems)
    return tuple(wanted)


def create_community(
    state: StateStore, *, name_zh: str, name_en: str, interests: Iterable[str], by: str,
    description: str | None = None, taxonomy: Taxonomy | None = None, now: datetime | None = None,
) -> Community:  # fmt: skip
    """A new active community; InputError names every bad field at once, Conflict a Chinese name already used."""
    now_ = when(now, utcnow(), "now")
    problems = []
    names = {"name_zh": (name_zh or "").strip(), "name_en": (name_en or "").strip()}
    for name, value in names.items():
        if not value or len(value) > 128:
            problems.append(Problem("1 to 128 characters", name))
    text = (description or "").strip() or None
    if text is not None and len(text) > 4000:
        problems.append(Problem("at most 4,000 characters", "description"))
    try:
        chosen = _interests(interests, taxonomy or load_taxonomy())
    except InputError as exc:
        problems.extend(exc.problems)
    if problems:
        raise InputError("the community cannot be created", problems)

    def work(conn: Connection) -> Community:
        if conn.execute(select(C.c.id).where(C.c.name_zh == names["name_zh"])).first() is not None:
            raise Conflict(f"a community named {names['name_zh']!r} exists already",
                           [Problem("choose another name", "name_zh")])  # fmt: skip
        new_id = conn.execute(
            insert(C).values(**names, interests=",".join(chosen), description=text, status="active", created_by=by,
                             created_at=now_, updated_at=now_)
        ).inserted_primary_key  # fmt: skip
        assert new_id is not None
        return _community_of(conn.execute(select(C).where(C.c.id == new_id[0])).one())

    try:
        return transaction(state, work)
    except IntegrityError:  # the same name created at the same moment by another request
        raise Conflict(f"a community named {names['name_zh']!r} exists already",
                       [Problem("choose another name", "name_zh")]) from None  # fmt: skip


def _counts(conn: Connection, ids: list[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {i: {} for i in ids}
    for part in chunks(ids):
        rows = conn.execute(
            select(M.c.community_id, M.c.source, func.count())
            .where(M.c.community_id.in_(part), M.c.left_at.is_(None))
            .group_by(M.c.community_id, M.c.source)
        ).all()
        for community_id, source, n in rows:
            out[int(community_id)][source] = int(n)
    return out


def get_community(state: StateStore, community_id: int) -> Community:
    with state.connect() as conn:
        row = conn.execute(select(C).where(C.c.id == community_id)).first()
        if row is None:
            raise NotFound(f"community {community_id} does not exist", [Problem("unknown", "community_id")])
        return _community_of(row, _counts(conn, [int(row.id)])[int(row.id)])


def list_communities(
    state: StateStore, *, status: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Community], int]:
    """Communities, the newest first, with their member counts, a page at a time, and how many there are."""
    where = [] if status is None else [C.c.status == status]
    with state.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(C).where(*where)).scalar_one())
        rows = conn.execute(select(C).where(*where).order_by(C.c.id.desc()).limit(limit).offset(offset)).all()
        counts = _counts(conn, [int(r.id) for r in rows])
    return [_community_of(r, counts[int(r.id)]) for r in rows], total


def set_status(state: StateStore, community_id: int, status: str, *, now: datetime | None = None) -> Community:
    """Archive a community (it keeps its members and events but takes no new members) or make it active again."""
    if status not in STATUSES:
        raise InputError(f"unknown community status {status!r}", [Problem(f"one of {', '.join(STATUSES)}", "status")])
    now_ = when(now, utcnow(), "now")
    with state.begin() as conn:
        done = conn.execute(update(C).where(C.c.id == community_id).values(status=status, updated_at=now_))
    if not done.rowcount:
        raise NotFound(f"community {community_id} does not exist", [Problem("unknown", "community_id")])
    return get_community(state, community_id)


def _ids(customer_ids: Iterable[int]) -> list[int]:
    ids = list(dict.fromkeys(customer_ids))
    bad = [c for c in ids if isinstance(c, bool) or not isinstance(c, int) or c < 1]
    if bad:
        problems = [Problem(f"{c!r} is not a whole number from 1", "customer_ids") for c in bad[:10]]
        raise InputError(f"{len(bad)} of the customer ids are not ids", problems)
    if not ids or len(ids) > MAX_INVITE:
        raise InputError(f"give 1 to {MAX_INVITE:,} customers at a time, not {len(ids):,}",
                         [Problem("one or more customer ids", "customer_ids")])  # fmt: skip
    return ids


def add_members(
    conn: Connection, community_id: int, customer_ids: list[int], source: str, now: datetime, by: str
) -> Membership:
    """Inside a transaction: make these customers members of an active community (Conflict if archived)."""
    status = conn.execute(select(C.c.status).where(C.c.id == community_id).with_for_update()).scalar()
    if status is None:
        raise NotFound(f"community {community_id} does not exist", [Problem("unknown", "community_id")])
    if status != "active":
        raise Conflict(f"community {community_id} is archived and takes no new members",
                       [Problem("archived", "community_id")])  # fmt: skip
    added: list[int] = []
    for part in chunks(customer_ids):
        current = {int(c) for c in conn.execute(select(M.c.customer_id).where(
            M.c.community_id == community_id, M.c.customer_id.in_(part), M.c.left_at.is_(None))).scalars()}  # fmt: skip
        back = [c for c in part if c not in current]
        if back:  # former members come back
            conn.execute(
                update(M)
                .where(M.c.community_id == community_id, M.c.customer_id.in_(back), M.c.left_at.is_not(None))
                .values(source=source, joined_at=now, left_at=None, recorded_by=by)
            )
        rows = [{"community_id": community_id, "customer_id": c, "source": source, "joined_at": now,
                 "left_at": None, "recorded_by": by} for c in back]  # fmt: skip
        insert_or_nothing(conn, M, rows)
        added += back
    new = set(added)
    return Membership(added, [c for c in customer_ids if c not in new])


def invite(
    state: StateStore, community_id: int, customer_ids: Iterable[int], *, by: str, now: datetime | None = None
) -> Membership:
    """Staff add these customers (e.g. suggested members); those already members are left as they are."""
    now_ = when(now, utcnow(), "now")
    ids = _ids(customer_ids)
    return transaction(state, lambda conn: add_members(conn, community_id, ids, "invited", now_, by))


def join(state: StateStore, community_id: int, customer_id: int, *, by: str, now: datetime | None = None) -> Membership:
    """The customer joins of their own accord (a member already stays as they came)."""
    now_ = when(now, utcnow(), "now")
    ids = _ids([customer_id])
    return transaction(state, lambda conn: add_members(conn, community_id, ids, "joined", now_, by))


def leave(state: StateStore, community_id: int, customer_id: int, *, by: str, now: datetime | None = None) -> Member:
    """The customer leaves; NotFound if they are not a member (leaving twice is refused the second time)."""
    now_ = when(now, utcnow(), "now")

    def work(conn: Connection) -> Member:
        done = conn.execute(
            update(M)
            .where(and_(M.c.community_id == community_id, M.c.customer_id == customer_id, M.c.left_at.is_(None)))
            .values(left_at=now_, recorded_by=by)
        )
        if not done.rowcount:
            raise NotFound(f"customer {customer_id} is not a member of community {community_id}",
                           [Problem("not a member", "customer_id")])  # fmt: skip
        row = conn.execute(select(M).where(M.c.community_id == community_id, M.c.customer_id == customer_id)).one()
        return Member(int(row.customer_id), row.source, utc(row.joined_at), now_)

    return transaction(state, work)


def members(state: StateStore, community_id: int, *, limit: int = 50, offset: int = 0) -> tuple[list[Member], int]:
    """Current members, the newest first, a page at a time, and how many there are."""
    where = [M.c.community_id == community_id, M.c.left_at.is_(None)]
    with state.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(M).where(*where)).scalar_one())
        rows = conn.execute(select(M).where(*where).order_by(M.c.joined_at.desc(), M.c.customer_id)
                            .limit(limit).offset(offset)).all()  # fmt: skip
    return [Member(int(r.customer_id), r.source, utc(r.joined_at), None) for r in rows], total
