"""Contacts: the person behind conversations, found by identifier keys and joined to OneID customers.

A message's sender keys are looked up in the inbox first (a key the inbox has seen belongs to one contact), then in
the identity snapshot (a key OneID knows belongs to a customer, whose contact it then joins). A sender neither knows
is a new *provisional* contact: no customer id yet, so an unknown identifier is never an error. Its messages are
written as facts (omnicrm.inbox.facts), so the next identity refresh places its keys in a customer, and
``follow_identity`` then gives the contact that customer id — joining contacts OneID found to be one person (the
oldest contact survives, the others point to it, their open conversations merge into one) and following merges
(a customer id that was redirected to a surviving one).

Locks: a message locks its contact's row first, then its conversation; ``follow_identity`` locks the contacts it
changes in id order, then their conversations. Keys are inserted in sorted order, so two first messages racing on
the same new keys cannot deadlock: one waits, finds the other's keys, and drops the contact it had started.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import Connection, delete, select, update

from omnicrm.inbox import conversations as convs
from omnicrm.loyalty.locks import chunks, insert_or_nothing, transaction, when
from omnicrm.store.schema import inbox_contact_keys, inbox_contacts, inbox_conversations
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "Followed",
    "contact_for",
    "contact_keys",
    "contact_name",
    "customers_of",
    "follow_identity",
    "redirected_ids",
]

K, P, CV = inbox_contact_keys, inbox_contacts, inbox_conversations


def customers_of(snapshot: Path | None, keys: Sequence[str]) -> dict[str, int]:
    """The OneID customer holding each key the identity snapshot knows (the smallest id of a shared key)."""
    if snapshot is None or not keys or not (snapshot / "identifiers.parquet").exists():
        return {}
    rows = duckdb.connect().execute(
        f"SELECT key, min(customer_id) FROM read_parquet('{snapshot / 'identifiers.parquet'}') "
        "WHERE key = ANY($keys) GROUP BY key",
        {"keys": list(keys)},
    )
    return {str(k): int(c) for k, c in rows.fetchall()}


def redirected_ids(snapshot: Path | None, customer_id: int) -> list[int]:
    """The customer id and every older id OneID merged into it."""
    if snapshot is None or not (snapshot / "redirects.parquet").exists():
        return [customer_id]
    rows = duckdb.connect().execute(
        f"SELECT old_id FROM read_parquet('{snapshot / 'redirects.parquet'}') WHERE customer_id = $id",
        {"id": customer_id},
    )
    return [customer_id, *sorted(int(r[0]) for r in rows.fetchall())]


def _live(conn: Connection, contact_id: int) -> int:
    """The contact that ``contact_id`` is now (following merges)."""
    while True:
        merged = conn.execute(select(P.c.merged_into).where(P.c.id == contact_id)).scalar_one()
        if merged is None:
            return contact_id
        contact_id = int(merged)


def contact_for(
    conn: Connection, keys: Sequence[str], *, customer_ids: Sequence[int], name: str | None, language: str | None,
    now: datetime,
) -> int:  # fmt: skip
    """The contact of a sender with ``keys`` (OneID says ``customer_ids[0]`` when known; older ids follow), locked;
    a new one (provisional when no customer is known) if nobody holds them. Keys it did not hold are added."""
    ordered = sorted(set(keys))
    for _ in range(5):
        held = [int(c) for c in conn.execute(select(K.c.contact_id).where(K.c.key.in_(ordered))).scalars()]
        created = False
        if held:
            contact = _live(conn, min(held))
        else:
            found = None
            if customer_ids:
                found = conn.execute(
                    select(P.c.id).where(P.c.customer_id.in_(list(customer_ids))).order_by(P.c.id).limit(1)
                ).scalar()
            if found is not None:
                contact = int(found)
            else:
                row = {"customer_id": customer_ids[0] if customer_ids else None, "name": name, "language": language,
                       "created_at": now, "updated_at": now}  # fmt: skip
                made = insert_or_nothing(conn, P, [row], returning=("id",))
                if not made:  # another message created this customer's contact a moment ago
                    continue
                contact, created = int(made[0].id), True
        conn.execute(select(P.c.id).where(P.c.id == contact).with_for_update())
        if _live(conn, contact) != contact:
            continue  # merged while we waited for the lock
        taken = set(_holders(conn, ordered))
        mine = [k for k in ordered if k not in taken]
        added = insert_or_nothing(
            conn, K, [{"key": k, "contact_id": contact, "created_at": now} for k in mine], returning=("key",)
        )
        if created and ordered and not added:  # another message took these keys first: use its contact
            conn.execute(delete(P).where(P.c.id == contact))
            continue
        if name:
            conn.execute(update(P).where(P.c.id == contact, P.c.name.is_(None)).values(name=name, updated_at=now))
        if language:
            conn.execute(update(P).where(P.c.id == contact).values(language=language, updated_at=now))
        return contact
    raise RuntimeError("could not settle the contact of a sender after 5 tries")  # pragma: no cover


def _holders(conn: Connection, keys: Sequence[str]) -> list[str]:
    return [str(k) for k in conn.execute(select(K.c.key).where(K.c.key.in_(list(keys)))).scalars()]


def contact_name(state: StateStore, contact_id: int) -> str | None:
    """The name the channels showed for the contact, if any."""
    with state.connect() as conn:
        name = conn.execute(select(P.c.name).where(P.c.id == contact_id)).scalar()
    return None if name is None else str(name)


def contact_keys(state: StateStore, contact_id: int) -> list[str]:
    with state.connect() as conn:
        return [
            str(k)
            for k in conn.execute(select(K.c.key).where(K.c.contact_id == contact_id).order_by(K.c.key)).scalars()
        ]


@dataclass
class Followed:
    """What ``follow_identity`` changed."""

    joined: int = 0  # provisional contacts that got a customer id
    redirected: int = 0  # contacts whose customer id was merged into another
    merged: list[tuple[int, int]] = field(default_factory=list)  # (contact, the contact it merged into)

    def as_dict(self) -> dict[str, Any]:
        return {"joined": self.joined, "redirected": self.redirected, "merged": [list(m) for m in self.merged]}


def _targets(snapshot: Path, rows: Sequence[Any]) -> dict[int, int]:
    """contact id → the customer id it should have now, from its keys and the snapshot's redirects."""
    con = duckdb.connect()
    con.register("ck", pa.table({"key": [r.key for r in rows], "contact_id": pa.array([r.contact_id for r in rows],
                                                                                     pa.int64())}))  # fmt: skip
    found = dict(
        con.execute(
            f"SELECT ck.contact_id, min(i.customer_id) FROM ck "
            f"JOIN read_parquet('{snapshot / 'identifiers.parquet'}') i USING (key) GROUP BY ck.contact_id"
        ).fetchall()
    )
    redirects: dict[int, int] = {}
    if (snapshot / "redirects.parquet").exists():
        path = snapshot / "redirects.parquet"
        redirects = dict(con.execute(f"SELECT old_id, customer_id FROM read_parquet('{path}')").fetchall())
    current = {r.contact_id: r.customer_id for r in rows}
    out: dict[int, int] = {}
    for contact, customer in current.items():
        if customer is not None:
            out[contact] = int(redirects.get(int(customer), int(customer)))
        elif contact in found:
            out[contact] = int(found[contact])
    return out


def follow_identity(state: StateStore, snapshot: Path | None, *, now: datetime | None = None) -> Followed:
    """Bring contacts in line with the identity snapshot (see the module docstring), in one transaction."""
    done = Followed()
    if snapshot is None or not (snapshot / "identifiers.parquet").exists():
        return done
    at = when(now, utcnow(), "now")
    with state.connect() as conn:
        rows = conn.execute(
            select(P.c.id.label("contact_id"), P.c.customer_id, K.c.key).join(K, K.c.contact_id == P.c.id, isouter=True)
            .where(P.c.merged_into.is_(None))
        ).all()  # fmt: skip
    if not rows:
        return done
    target = _targets(snapshot, rows)
    current = {int(r.contact_id): r.customer_id for r in rows}
    changed = {c: t for c, t in target.items() if current[c] != t}
    groups: dict[int, list[int]] = {}
    for contact, customer in target.items():
        groups.setdefault(customer, []).append(contact)
    touched = {c for c in changed} | {c for members in groups.values() if len(members) > 1 for c in members}
    if not touched:
        return done

    def work(conn: Connection) -> Followed:
        ids = sorted(touched)
        for part in chunks(ids):
            conn.execute(select(P.c.id).where(P.c.id.in_(part)).order_by(P.c.id).with_for_update())
        for part in chunks(ids):  # free the customer ids first: a unique key holds one contact per customer
            conn.execute(update(P).where(P.c.id.in_(part)).values(customer_id=None, updated_at=at))
        for customer, members in sorted(groups.items()):
            if not set(members) & touched:
                continue
            keep, *others = sorted(members)
            conn.execute(update(P).where(P.c.id == keep).values(customer_id=customer, updated_at=at))
            if current[keep] is None:
                done.joined += 1
            elif current[keep] != customer:
                done.redirected += 1
            for other in others:
                conn.execute(update(K).where(K.c.contact_id == other).values(contact_id=keep))
                conn.execute(update(CV).where(CV.c.contact_id == other).values(contact_id=keep))
                conn.execute(update(P).where(P.c.id == other).values(merged_into=keep, updated_at=at))
                done.merged.append((other, keep))
            if others:
                _merge_open(conn, keep, at)
        return done

    return transaction(state, work)


def _merge_open(conn: Connection, contact_id: int, now: datetime) -> None:
    """After contacts merged: their open conversations become one, the oldest."""
    ids = [int(i) for i in conn.execute(
        select(CV.c.id).where(CV.c.contact_id == contact_id, CV.c.status != "closed", CV.c.merged_into.is_(None))
        .order_by(CV.c.id)
    ).scalars()]  # fmt: skip
    if len(ids) < 2:
        return
    locked = [convs.lock_conversation(conn, i) for i in ids]
    convs.merge_into(conn, locked[0], locked[1:], by="oneid", now=now)
