"""Quick replies: texts agents pick by shortcut, in Chinese and English, with ``{placeholders}`` filled in.

A placeholder is a plain name in braces (``{customer_name}``, ``{order_id}``); ``{{`` and ``}}`` write a brace.
When a quick reply is used in a conversation, ``customer_name``, ``agent_name`` and ``shop_name`` are filled in
from what omnicrm knows; any other placeholder needs a value, and a missing one is named in the error.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update

from omnicrm.errors import InputError, NotFound, Problem
from omnicrm.inbox.agents import LANGUAGES
from omnicrm.loyalty.locks import insert_or_nothing, transaction, when
from omnicrm.store.schema import inbox_quick_replies
from omnicrm.store.state import StateStore, utcnow

__all__ = ["QuickReply", "delete_quick_reply", "get_quick_reply", "list_quick_replies", "placeholders",
           "put_quick_reply", "render"]  # fmt: skip

Q = inbox_quick_replies
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
_SHORTCUT = re.compile(r"^[\w-]{1,64}$")
AUTOMATIC = ("customer_name", "agent_name", "shop_name")


@dataclass(frozen=True)
class QuickReply:
    id: int
    shortcut: str
    language: str
    title: str
    text: str

    @property
    def placeholders(self) -> tuple[str, ...]:
        return placeholders(self.text)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "placeholders": list(self.placeholders)}


def placeholders(text: str) -> tuple[str, ...]:
    """The placeholders of ``text`` in order of first use; an InputError names a malformed one."""
    found: list[str] = []
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise InputError(
            f"the text has a stray brace: {exc}", [Problem("write {{ or }} for a brace", "text")]
        ) from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not _NAME.match(name) or spec or conversion:
            raise InputError(
                f"{{{name}}} is not a placeholder", [Problem("use {a_name}: lower-case letters, digits, _", "text")]
            )
        if name not in found:
            found.append(name)
    return tuple(found)


def _of(row: Any) -> QuickReply:
    return QuickReply(int(row.id), row.shortcut, row.language, row.title, row.text)


def put_quick_reply(
    state: StateStore, *, shortcut: str, language: str, title: str, text: str, by: str, now: datetime | None = None
) -> QuickReply:
    """Create or replace the quick reply of (shortcut, language)."""
    if not _SHORTCUT.match(shortcut or ""):
        raise InputError("a quick reply needs a shortcut", [Problem("1-64 letters, digits, _ or -", "shortcut")])
    if language not in LANGUAGES:
        raise InputError(f"unknown language {language!r}", [Problem(f"use {', '.join(LANGUAGES)}", "language")])
    if not title or not title.strip() or len(title) > 255:
        raise InputError("a quick reply needs a title", [Problem("1-255 characters", "title")])
    if not text or not text.strip() or len(text) > 4000:
        raise InputError("a quick reply needs its text", [Problem("1-4000 characters", "text")])
    placeholders(text)
    at = when(now, utcnow(), "now")
    values = {"shortcut": shortcut, "language": language, "title": title.strip(), "text": text.strip(),
              "updated_by": by, "updated_at": at}  # fmt: skip

    def work(conn: Connection) -> QuickReply:
        if not insert_or_nothing(conn, Q, [values], returning=("id",)):
            conn.execute(update(Q).where(Q.c.shortcut == shortcut, Q.c.language == language).values(**values))
        return _of(conn.execute(select(Q).where(Q.c.shortcut == shortcut, Q.c.language == language)).one())

    return transaction(state, work)


def get_quick_reply(state: StateStore, quick_reply_id: int) -> QuickReply:
    with state.connect() as conn:
        row = conn.execute(select(Q).where(Q.c.id == quick_reply_id)).first()
    if row is None:
        raise NotFound(f"quick reply {quick_reply_id} does not exist", [Problem("unknown quick reply", "id")])
    return _of(row)


def list_quick_replies(state: StateStore, *, language: str | None = None) -> list[QuickReply]:
    q = select(Q).order_by(Q.c.shortcut, Q.c.language)
    if language is not None:
        q = q.where(Q.c.language == language)
    with state.connect() as conn:
        return [_of(r) for r in conn.execute(q)]


def delete_quick_reply(state: StateStore, quick_reply_id: int) -> None:
    def work(conn: Connection) -> None:
        if not conn.execute(delete(Q).where(Q.c.id == quick_reply_id)).rowcount:
            raise NotFound(f"quick reply {quick_reply_id} does not exist", [Problem("unknown quick reply", "id")])

    transaction(state, work)


def render(reply: QuickReply, values: Mapping[str, str], known: Mapping[str, str | None] | None = None) -> str:
    """The text with its placeholders filled: ``values`` first, then what omnicrm ``known``s (customer_name, ...).
    A placeholder without a value is refused, naming it."""
    filled = {k: v for k, v in (known or {}).items() if v}
    filled.update({k: str(v) for k, v in values.items()})
    missing = [p for p in reply.placeholders if p not in filled]
    if missing:
        raise InputError(
            f"quick reply {reply.shortcut!r} needs a value for {', '.join('{' + m + '}' for m in missing)}",
            [Problem("give it in values", f"values.{m}") for m in missing],
        )
    return reply.text.format_map(filled)
