"""Agents and teams: who answers, on which channels and in which languages, and how many conversations at once.

An agent's skills are the channels they answer and the languages they write (empty: all); ``max_open`` caps the
open and pending conversations they hold. A team takes the conversations of its channels (a team with none takes
any channel no other team names); assignment (omnicrm.inbox.assignment) picks among its members.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.inbox.senders import CHANNELS
from omnicrm.loyalty.locks import transaction, when
from omnicrm.store.schema import inbox_agents, inbox_team_members, inbox_teams
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "LANGUAGES",
    "Agent",
    "Team",
    "agent_of",
    "create_agent",
    "create_team",
    "get_agent",
    "get_team",
    "list_agents",
    "list_teams",
    "set_members",
    "update_agent",
]

AG, TM, MB = inbox_agents, inbox_teams, inbox_team_members
LANGUAGES = ("zh", "en")
REPLYABLE = tuple(c for c, spec in CHANNELS.items() if not spec.note)


@dataclass(frozen=True)
class Agent:
    id: int
    name: str
    username: str | None
    channels: tuple[str, ...]
    languages: tuple[str, ...]
    max_open: int | None
    active: bool

    def answers(self, channel: str, language: str | None) -> bool:
        """Whether the agent's skills cover a conversation on ``channel`` in ``language``."""
        return (not self.channels or channel in self.channels) and (
            not self.languages or language is None or language in self.languages
        )

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "channels": list(self.channels), "languages": list(self.languages)}


@dataclass(frozen=True)
class Team:
    id: int
    name: str
    channels: tuple[str, ...]
    members: tuple[int, ...]
    last_agent_id: int | None

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "channels": list(self.channels), "members": list(self.members)}


def _split(text: str) -> tuple[str, ...]:
    return tuple(x for x in text.split(",") if x)


def agent_of(row: Any) -> Agent:
    return Agent(int(row.id), row.name, row.username, _split(row.channels), _split(row.languages), row.max_open,
                 bool(row.active))  # fmt: skip


def _checked_list(values: Iterable[str], known: tuple[str, ...], name: str) -> str:
    items = sorted(set(values))
    bad = [v for v in items if v not in known]
    if bad:
        raise InputError(f"unknown {name} {bad[0]!r}", [Problem(f"use some of {', '.join(known)}", name)])
    return ",".join(items)


def _checked_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 128:
        raise InputError(f"the {what} needs a name", [Problem("1-128 characters", "name")])
    return name.strip()


def _checked_max(max_open: int | None) -> int | None:
    if max_open is not None and (not isinstance(max_open, int) or isinstance(max_open, bool) or max_open < 1):
        raise InputError("max_open must be a whole number above zero", [Problem(f"got {max_open!r}", "max_open")])
    return max_open


def create_agent(
    state: StateStore, name: str, *, username: str | None = None, channels: Iterable[str] = (),
    languages: Iterable[str] = (), max_open: int | None = None, now: datetime | None = None,
) -> Agent:  # fmt: skip
    """Add an agent (active)."""
    at = when(now, utcnow(), "now")
    values = {
        "name": _checked_name(name, "agent"), "username": username or None,
        "channels": _checked_list(channels, REPLYABLE, "channels"),
        "languages": _checked_list(languages, LANGUAGES, "languages"), "max_open": _checked_max(max_open),
        "active": True, "created_at": at, "updated_at": at,
    }  # fmt: skip

    def work(conn: Connection) -> Agent:
        if username and conn.execute(select(AG.c.id).where(AG.c.username == username)).first() is not None:
            raise Conflict(f"an agent already signs in as {username!r}", [Problem("one agent per user", "username")])
        new_id = conn.execute(insert(AG).values(**values).returning(AG.c.id)).scalar_one()
        return agent_of(conn.execute(select(AG).where(AG.c.id == new_id)).one())

    return transaction(state, work)


def update_agent(state: StateStore, agent_id: int, changes: Mapping[str, Any], *, now: datetime | None = None) -> Agent:
    """Change an agent: ``changes`` holds any of name, channels, languages, max_open (None lifts the cap), active."""
    unknown = sorted(set(changes) - {"name", "channels", "languages", "max_open", "active"})
    if unknown:
        raise InputError(f"an agent has no field {unknown[0]!r}", [Problem("not a field of an agent", unknown[0])])
    values: dict[str, Any] = {"updated_at": when(now, utcnow(), "now")}
    if "name" in changes:
        values["name"] = _checked_name(changes["name"], "agent")
    if "channels" in changes:
        values["channels"] = _checked_list(changes["channels"] or (), REPLYABLE, "channels")
    if "languages" in changes:
        values["languages"] = _checked_list(changes["languages"] or (), LANGUAGES, "languages")
    if "max_open" in changes:
        values["max_open"] = _checked_max(changes["max_open"])
    if "active" in changes:
        values["active"] = bool(changes["active"])

    def work(conn: Connection) -> Agent:
        get_agent(conn, agent_id)
        conn.execute(update(AG).where(AG.c.id == agent_id).values(**values))
        return get_agent(conn, agent_id)

    return transaction(state, work)


def get_agent(conn: Connection, agent_id: int) -> Agent:
    row = conn.execute(select(AG).where(AG.c.id == agent_id)).first()
    if row is None:
        raise NotFound(f"agent {agent_id} does not exist", [Problem("unknown agent", "agent_id")])
    return agent_of(row)


def list_agents(state: StateStore) -> list[Agent]:
    with state.connect() as conn:
        return [agent_of(r) for r in conn.execute(select(AG).order_by(AG.c.id))]


def _team(conn: Connection, row: Any) -> Team:
    members = tuple(int(a) for a in conn.execute(select(MB.c.agent_id).where(MB.c.team_id == row.id)
                                                 .order_by(MB.c.agent_id)).scalars())  # fmt: skip
    return Team(int(row.id), row.name, _split(row.channels), members, row.last_agent_id)


def get_team(conn: Connection, team_id: int) -> Team:
    row = conn.execute(select(TM).where(TM.c.id == team_id)).first()
    if row is None:
        raise NotFound(f"team {team_id} does not exist", [Problem("unknown team", "team_id")])
    return _team(conn, row)


def list_teams(state: StateStore) -> list[Team]:
    with state.connect() as conn:
        return [_team(conn, r) for r in conn.execute(select(TM).order_by(TM.c.id)).all()]


def _put_members(conn: Connection, team_id: int, members: Iterable[int]) -> None:
    ids = sorted(set(int(m) for m in members))
    for agent_id in ids:
        get_agent(conn, agent_id)
    conn.execute(delete(MB).where(MB.c.team_id == team_id))
    if ids:
        conn.execute(insert(MB), [{"team_id": team_id, "agent_id": a} for a in ids])


def create_team(
    state: StateStore, name: str, *, channels: Iterable[str] = (), members: Iterable[int] = (),
    now: datetime | None = None,
) -> Team:  # fmt: skip
    """Add a team taking ``channels`` (none: any channel no other team names) with ``members``."""
    at = when(now, utcnow(), "now")
    values = {"name": _checked_name(name, "team"), "channels": _checked_list(channels, REPLYABLE, "channels"),
              "created_at": at, "updated_at": at}  # fmt: skip

    def work(conn: Connection) -> Team:
        if conn.execute(select(TM.c.id).where(TM.c.name == values["name"])).first() is not None:
            raise Conflict(f"a team named {values['name']!r} exists", [Problem("choose another name", "name")])
        try:
            team_id = int(conn.execute(insert(TM).values(**values).returning(TM.c.id)).scalar_one())
        except IntegrityError:
            raise Conflict(
                f"a team named {values['name']!r} exists", [Problem("choose another name", "name")]
            ) from None
        _put_members(conn, team_id, members)
        return get_team(conn, team_id)

    return transaction(state, work)


def set_members(state: StateStore, team_id: int, members: Iterable[int], *, now: datetime | None = None) -> Team:
    """Replace a team's members (the round robin carries on from where it was)."""
    at = when(now, utcnow(), "now")

    def work(conn: Connection) -> Team:
        conn.execute(select(TM.c.id).where(TM.c.id == team_id).with_for_update())
        get_team(conn, team_id)
        _put_members(conn, team_id, members)
        conn.execute(update(TM).where(TM.c.id == team_id).values(updated_at=at))
        return get_team(conn, team_id)

    return transaction(state, work)
