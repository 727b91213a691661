"""Inbox messages become facts: customer messages, delivered replies and clerk notes are written as facts of kind
``message`` through the bulk importer (source ``inbox``, the shipped ``messages`` mapping), so the next identity
refresh joins a provisional contact's identifiers to a customer and portraits read what customers said.

Exactly once: ``export_facts`` first claims a batch of unwritten messages (a transaction), then writes them as one
JSON-lines file whose content depends only on those rows, imports it, and marks the batch done. After a crash the
unfinished batch is written again with the same content, which the importer recognises by its hash and skips.
Internal notes of agents and replies that were never delivered are not facts.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from omnicrm.ingest.importer import import_file
from omnicrm.loyalty.locks import transaction, utc, when
from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import inbox_fact_exports, inbox_messages
from omnicrm.store.state import StateStore, utcnow

__all__ = ["SOURCE", "Exported", "export_facts", "fact_line"]

SOURCE = "inbox"
M, X = inbox_messages, inbox_fact_exports
# sender field → the field the messages mapping reads it from
_FIELDS = {"openid": "openid", "unionid": "unionid", "nick": "nick", "uid": "nick", "pin": "jd_account",
           "phone": "phone", "email": "email", "member_card": "member_card"}  # fmt: skip


@dataclass(frozen=True)
class Exported:
    batch: int | None
    messages: int
    status: str  # imported, already_imported or nothing


def _identifiers(row: Any) -> dict[str, str]:
    raw = json.loads(row.sender) if row.sender else {}
    out = {_FIELDS[k]: v for k, v in sorted(raw.items()) if k in _FIELDS}
    if "openid" in out and row.account:
        out["appid"] = row.account
    return out


def fact_line(row: Any) -> str:
    """One message as a line of the messages mapping's JSON-lines shape."""
    who = _identifiers(row)
    outbound = row.direction == "out"
    doc = {
        "message_id": f"{SOURCE}-{row.id}",
        "channel": row.channel,
        "conversation_key": row.sender_key,
        "direction": "outbound" if outbound else "inbound",
        "sender": {"agent": row.author or ""} if outbound else who,
        "recipient": who if outbound else None,
        "text": row.text,
        "attachments": json.loads(row.attachments) if row.attachments else None,
        "store_code": row.store_code,
        "sent_at": utc(row.sent_at).isoformat(),
    }
    return json.dumps(doc, ensure_ascii=False, sort_keys=True)


def _claim(conn: Connection, limit: int, at: datetime) -> int | None:
    """An unfinished batch, or a new one of up to ``limit`` unwritten messages; None when there is nothing."""
    open_batch = conn.execute(select(X.c.id).where(X.c.done_at.is_(None)).order_by(X.c.id).limit(1)).scalar()
    if open_batch is not None:
        return int(open_batch)
    wanted = (
        select(M.c.id)
        .where(
            M.c.fact_export_id.is_(None),
            or_(M.c.direction.in_(["in", "out"]), M.c.channel == "clerk_note"),
            or_(M.c.delivery.is_(None), M.c.delivery == "sent"),
        )
        .order_by(M.c.id)
        .limit(limit)
    )
    ids = [int(i) for i in conn.execute(wanted).scalars()]
    if not ids:
        return None
    batch = int(conn.execute(insert(X).values(messages=len(ids), created_at=at).returning(X.c.id)).scalar_one())
    for start in range(0, len(ids), 500):
        conn.execute(update(M).where(M.c.id.in_(ids[start : start + 500])).values(fact_export_id=batch))
    return batch


def export_facts(
    state: StateStore, facts: FactsStore, *, limit: int = 50_000, now: datetime | None = None, progress: bool = False
) -> Exported:
    """Write one batch of messages as facts (see the module docstring)."""
    at = when(now, utcnow(), "now")
    batch = transaction(state, lambda conn: _claim(conn, limit, at))
    if batch is None:
        return Exported(None, 0, "nothing")
    with state.connect() as conn:
        rows = conn.execute(select(M).where(M.c.fact_export_id == batch).order_by(M.c.id)).all()
    with tempfile.TemporaryDirectory(prefix="omnicrm-inbox-") as tmp:
        path = Path(tmp) / f"inbox-messages-{batch}.jsonl"
        path.write_text("".join(fact_line(r) + "\n" for r in rows), encoding="utf-8")
        summary = import_file(state, facts, source=SOURCE, path=path, kind="messages", mapping="messages",
                              progress=progress)  # fmt: skip
    transaction(
        state,
        lambda conn: conn.execute(update(X).where(X.c.id == batch).values(done_at=at, import_id=summary.import_id)),
    )
    return Exported(batch, len(rows), summary.status)
