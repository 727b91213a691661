"""Assignment: which team and which agent get a conversation — round robin within a team, by skill and capacity —
and manual reassignment.

A new conversation goes to the team that names its channel (the lowest id when several do; else a team that names
no channel). Within the team the next agent after the last one served, in id order and wrapping around, who is
active, answers the conversation's channel and language, and holds fewer than ``max_open`` open or pending
conversations, gets it; when nobody qualifies it waits unassigned in the queue (``assign_waiting`` tries again).
The team's row is locked while its cursor moves, so two conversations arriving together go to two agents.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, select, update

from omnicrm.errors import Conflict, NotFound, Problem
from omnicrm.inbox import conversations as convs
from omnicrm.inbox.agents import agent_of, get_agent, get_team
from omnicrm.loyalty.locks import transaction, when
from omnicrm.store.schema import inbox_agents, inbox_conversations, inbox_team_members, inbox_teams
from omnicrm.store.state import StateStore, utcnow

__all__ = ["assign", "assign_waiting", "auto_assign", "route_team"]

AG, TM, MB, C = inbox_agents, inbox_teams, inbox_team_members, inbox_conversations


def route_team(conn: Connection, channel: str) -> int | None:
    """The team that takes conversations on ``channel``."""
    teams = conn.execute(select(TM.c.id, TM.c.channels).order_by(TM.c.id)).all()
    named = [int(t.id) for t in teams if channel in t.channels.split(",")]
    if named:
        return named[0]
    catch_all = [int(t.id) for t in teams if not t.channels]
    return catch_all[0] if catch_all else None


def _load(conn: Connection, agent_ids: list[int]) -> dict[int, int]:
    """Open and pending conversations held by each agent."""
    if not agent_ids:
        return {}
    rows = conn.execute(
        select(C.c.agent_id, func.count()).where(C.c.agent_id.in_(agent_ids), C.c.status != "closed")
        .group_by(C.c.agent_id)
    ).all()  # fmt: skip
    return {int(a): int(n) for a, n in rows}


def _next_agent(conn: Connection, team_id: int, channel: str, language: str | None) -> int | None:
    """Round robin within the team (its row locked by the caller) by skill and capacity; moves the cursor."""
    team = get_team(conn, team_id)
    if not team.members:
        return None
    agents = [agent_of(r) for r in conn.execute(select(AG).where(AG.c.id.in_(team.members)).order_by(AG.c.id))]
    held = _load(conn, [a.id for a in agents])
    fit = [a for a in agents if a.active and a.answers(channel, language)
           and (a.max_open is None or held.get(a.id, 0) < a.max_open)]  # fmt: skip
    if not fit:
        return None
    last = team.last_agent_id or 0
    chosen = next((a for a in fit if a.id > last), fit[0])
    conn.execute(update(TM).where(TM.c.id == team_id).values(last_agent_id=chosen.id))
    return chosen.id


def auto_assign(conn: Connection, c: convs.Conversation, *, by: str, now: datetime) -> convs.Conversation:
    """Route the (locked) conversation to its team and the team's next agent; unassigned when none fits."""
    team_id = c.team_id or route_team(conn, c.channel)
    if team_id is None:
        return c
    conn.execute(select(TM.c.id).where(TM.c.id == team_id).with_for_update())
    agent_id = _next_agent(conn, team_id, c.last_channel, c.language)
    if (team_id, agent_id) == (c.team_id, c.agent_id):
        return c
    conn.execute(update(C).where(C.c.id == c.id).values(team_id=team_id, agent_id=agent_id, updated_at=now,
                                                        version=C.c.version + 1))  # fmt: skip
    convs.log(conn, c.id, "assigned", f"team {team_id}, agent {agent_id}" if agent_id else f"team {team_id}", by, now)
    return convs.lock_conversation(conn, c.id)


def assign(
    state: StateStore, conversation_id: int, *, agent_id: int | None = None, team_id: int | None = None,
    auto: bool = False, by: str, now: datetime | None = None,
) -> convs.Conversation:  # fmt: skip
    """Reassign by hand: to ``agent_id`` (an active agent; a manager may go beyond skills and capacity), to a team's
    round robin (``auto``), or back to the queue (neither)."""
    at = when(now, utcnow(), "now")

    def work(conn: Connection) -> convs.Conversation:
        c = convs.lock_conversation(conn, conversation_id)
        if c.status == "closed":
            raise Conflict(f"conversation {c.id} is closed", [Problem("reopen it before assigning it", "status")])
        if team_id is not None:
            get_team(conn, team_id)
        if auto:
            moved = c if team_id is None else _with_team(conn, c, team_id, at)
            return auto_assign(conn, _with_agent(conn, moved, None, at), by=by, now=at)
        if agent_id is not None:
            agent = get_agent(conn, agent_id)
            if not agent.active:
                raise Conflict(
                    f"agent {agent.id} ({agent.name}) is not active", [Problem("choose another", "agent_id")]
                )
        target_team = team_id if team_id is not None else c.team_id
        conn.execute(update(C).where(C.c.id == c.id).values(agent_id=agent_id, team_id=target_team, updated_at=at,
                                                            version=C.c.version + 1))  # fmt: skip
        convs.log(conn, c.id, "assigned", f"agent {agent_id}" if agent_id else "to the queue", by, at)
        return convs.lock_conversation(conn, c.id)

    return transaction(state, work)


def _with_team(conn: Connection, c: convs.Conversation, team_id: int, now: datetime) -> convs.Conversation:
    conn.execute(update(C).where(C.c.id == c.id).values(team_id=team_id, updated_at=now))
    return convs.lock_conversation(conn, c.id)


def _with_agent(conn: Connection, c: convs.Conversation, agent_id: int | None, now: datetime) -> convs.Conversation:
    conn.execute(update(C).where(C.c.id == c.id).values(agent_id=agent_id, updated_at=now))
    return convs.lock_conversation(conn, c.id)


def assign_waiting(state: StateStore, *, by: str = "assignment", now: datetime | None = None) -> int:
    """Give unassigned open conversations (oldest first) to agents who now fit; returns how many were assigned."""
    at = when(now, utcnow(), "now")
    with state.connect() as conn:
        waiting = [int(i) for i in conn.execute(
            select(C.c.id).where(C.c.status == "open", C.c.agent_id.is_(None), C.c.merged_into.is_(None))
            .order_by(C.c.awaiting_since, C.c.id)
        ).scalars()]  # fmt: skip
    assigned = 0
    for conversation_id in waiting:

        def work(conn: Connection, conversation_id: int = conversation_id) -> bool:
            c = convs.lock_conversation(conn, conversation_id)
            if c.status != "open" or c.agent_id is not None:
                return False
            return auto_assign(conn, c, by=by, now=at).agent_id is not None

        try:
            assigned += transaction(state, work)
        except NotFound:
            continue
    return assigned
