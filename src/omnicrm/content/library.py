"""The content library: articles, lectures and videos the merchant shares by link, each with its interest topics.

An item has a kind, a Chinese title (an English one is optional), short summaries, the http(s) address a view is
sent to, interest topics, an optional store and community, a status and publish dates:

- **Topics** are interest ids of the shipped taxonomy (``portrait/data/interests.toml``), the same ids the portrait's
  ``interests`` tag holds, so recommendations compare like with like. An unknown id is refused with the closest known
  one. Given none, the topics are found in the title and summary by the portrait's own keyword matcher
  (``Taxonomy.match``), and found again when a later edit changes that text.
- **Status**: ``draft`` (not shown), ``published`` (live from ``publish_at`` until ``end_at``, if set) or
  ``archived`` (withdrawn: its links stop working). Publishing without a start sets it to now.
- **Edits** are one transaction that locks the item's row (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN
  IMMEDIATE`` makes the writer alone) and bumps its version; an edit that names the version it read is refused if
  someone changed the item meanwhile. A create with an idempotency key made twice makes one item.

Every problem of an input is reported at once, each naming its field.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, func, or_, select, update

from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.loyalty.locks import insert_or_nothing, transaction, utc
from omnicrm.portrait.interests import Taxonomy, load_taxonomy
from omnicrm.store.schema import content_items
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "FIELDS",
    "KINDS",
    "STATUSES",
    "Item",
    "check_item",
    "create_item",
    "get_item",
    "list_items",
    "live_items",
    "lock_item",
    "update_item",
]

KINDS = ("article", "lecture", "video")
STATUSES = ("draft", "published", "archived")
FIELDS = (
    "kind", "title_zh", "title_en", "summary_zh", "summary_en", "url", "topics", "store_code", "community", "status",
    "publish_at", "end_at",
)  # fmt: skip
TITLE_CHARS = 200
SUMMARY_CHARS = 2000
URL_CHARS = 2048
CODE_CHARS = 64
_TEXT = ("title_zh", "title_en", "summary_zh", "summary_en")  # what topics are found in
_SPLIT = re.compile(r"[\s,，、;；]+")
CI = content_items


@dataclass(frozen=True)
class Item:
    """One item of the library; see the module docstring for what each field means."""

    id: int
    kind: str
    title_zh: str
    title_en: str | None
    summary_zh: str | None
    summary_en: str | None
    url: str
    topics: tuple[str, ...]
    topics_derived: bool
    store_code: str | None
    community: str | None
    status: str
    publish_at: datetime | None
    end_at: datetime | None
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime

    def live(self, at: datetime) -> bool:
        """Published, and ``at`` falls between its publish dates: its links work and it is recommended."""
        started = self.publish_at is None or self.publish_at <= at
        return self.status == "published" and started and (self.end_at is None or at < self.end_at)

    def title(self, lang: str) -> str:
        """The title in ``lang`` (``en`` or Chinese), the Chinese one when there is no English one."""
        return self.title_en if lang == "en" and self.title_en else self.title_zh

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["topics"] = list(self.topics)
        for name in ("publish_at", "end_at", "created_at", "updated_at"):
            out[name] = None if out[name] is None else out[name].isoformat()
        return out


def _item(row: Any) -> Item:
    def moment(value: datetime | None) -> datetime | None:
        return None if value is None else utc(value)

    return Item(
        int(row.id), row.kind, row.title_zh, row.title_en, row.summary_zh, row.summary_en, row.url,
        tuple(json.loads(row.topics)), bool(row.topics_derived), row.store_code, row.community, row.status,
        moment(row.publish_at), moment(row.end_at), int(row.version), row.created_by, utc(row.created_at),
        utc(row.updated_at),
    )  # fmt: skip


# --- checking what was given ----------------------------------------------------------------------------------------


def _url_problem(url: str) -> str | None:
    """Why ``url`` cannot be shared, or None. Only absolute http(s) addresses: never javascript:, data: or a path."""
    if not url:
        return "give the address the item links to, e.g. https://shop.example.com/articles/1"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "the address contains spaces or control characters; encode them (%20)"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        if not scheme:
            return "write the whole address, starting with https://"
        return f"only http:// and https:// addresses can be shared, not '{scheme}:'"
    if not parts.hostname:
        return "the address has no host name after https://"
    return None


def _topics_problems(given: list[str], taxonomy: Taxonomy) -> list[Problem]:
    known = [it.id for it in taxonomy.interests]
    problems = []
    for topic in given:
        if topic in known:
            continue
        close = difflib.get_close_matches(topic, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"topics are interest ids: {', '.join(known)}"
        reason = f"unknown interest '{topic}' — {hint}"
        problems.append(Problem(reason, "topics"))
    return problems


def _derive(values: Mapping[str, Any], taxonomy: Taxonomy) -> list[str]:
    """The interests the title and summary mention, matched as the portrait matches texts."""
    found: dict[str, None] = {}
    for name in _TEXT:
        if values.get(name):
            found.update(dict.fromkeys(taxonomy.match(str(values[name]))))
    return list(found)


def _as_topics(value: Any) -> list[str] | None:
    """A list of ids from a list or a string separated by commas or spaces; None when it is neither."""
    if value is None:
        return []
    if isinstance(value, str):
        return [t for t in _SPLIT.split(value.strip()) if t]
    if isinstance(value, list | tuple) and all(isinstance(t, str) for t in value):
        return [t.strip() for t in value if t.strip()]
    return None


def _as_time(value: Any, field: str, problems: list[Problem]) -> datetime | None:
    if value is None or value == "":
        return None
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            problems.append(Problem(f"{value!r} is not a date and time, e.g. 2026-11-11T10:00:00+08:00", field))
            return None
    if not isinstance(moment, datetime):
        problems.append(Problem("must be a date and time", field))
        return None
    if moment.tzinfo is None:
        problems.append(Problem("the time has no time zone; give it with an offset, e.g. +08:00", field))
        return None
    return utc(moment)


def _text(values: Mapping[str, Any], field: str, limit: int, problems: list[Problem]) -> str | None:
    value = values.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(Problem("must be text", field))
        return None
    value = value.strip()
    if len(value) > limit:
        problems.append(Problem(f"{len(value)} characters; at most {limit}", field))
    return value or None


def _clean(values: Mapping[str, Any], current: Item | None, now: datetime) -> dict[str, Any]:
    """The row ``values`` make (over ``current`` for an edit); InputError naming every field at fault."""
    problems = [Problem(f"unknown field; the fields are {', '.join(FIELDS)}", k) for k in values if k not in FIELDS]
    merged: dict[str, Any] = {} if current is None else current.as_dict()
    merged.update({k: v for k, v in values.items() if k in FIELDS})
    row: dict[str, Any] = {}
    row["kind"] = merged.get("kind") or "article"
    if row["kind"] not in KINDS:
        problems.append(Problem(f"'{row['kind']}' is not one of {', '.join(KINDS)}", "kind"))
    for field in _TEXT:
        row[field] = _text(merged, field, TITLE_CHARS if field.startswith("title") else SUMMARY_CHARS, problems)
    if row["title_zh"] is None and not any(p.field == "title_zh" for p in problems):
        problems.append(Problem("an item needs a Chinese title", "title_zh"))
    url = _text(merged, "url", URL_CHARS, problems) or ""
    if not any(p.field == "url" for p in problems) and (why := _url_problem(url)) is not None:
        problems.append(Problem(why, "url"))
    row["url"] = url
    for field in ("store_code", "community"):
        row[field] = _text(merged, field, CODE_CHARS, problems)
    row["status"] = merged.get("status") or "draft"
    if row["status"] not in STATUSES:
        problems.append(Problem(f"'{row['status']}' is not one of {', '.join(STATUSES)}", "status"))
    row["publish_at"] = _as_time(merged.get("publish_at"), "publish_at", problems)
    row["end_at"] = _as_time(merged.get("end_at"), "end_at", problems)
    if row["status"] == "published" and row["publish_at"] is None:
        row["publish_at"] = now
    if row["publish_at"] and row["end_at"] and row["end_at"] <= row["publish_at"]:
        problems.append(Problem("the end must come after the start (publish_at)", "end_at"))
    row.update(_topics(values, current, row, problems))
    if problems:
        name = "the new content item" if current is None else f"content item {current.id}"
        raise InputError(f"{name} is not valid", problems)
    return row


def _topics(
    values: Mapping[str, Any], current: Item | None, row: dict[str, Any], problems: list[Problem]
) -> dict[str, Any]:
    """The topics given, or those found in the text: when none are given, or the item's were found and its text
    changed."""
    taxonomy = load_taxonomy()
    given = _as_topics(values.get("topics"))
    if given is None:
        problems.append(Problem("must be a list of interest ids", "topics"))
        return {}
    given = list(dict.fromkeys(given))
    if given:
        problems.extend(_topics_problems(given, taxonomy))
        return {"topics": given, "topics_derived": False}
    text_changed = current is not None and any(row[f] != getattr(current, f) for f in _TEXT)
    if current is not None and "topics" not in values and not (current.topics_derived and text_changed):
        return {"topics": list(current.topics), "topics_derived": current.topics_derived}
    found = _derive(row, taxonomy)
    if not found and row["title_zh"]:
        reason = "no topics given, and no interest is named in the title or summary; choose at least one interest"
        problems.append(Problem(reason, "topics"))
    return {"topics": found, "topics_derived": True}


def check_item(values: Mapping[str, Any], current: Item | None = None, now: datetime | None = None) -> None:
    """Check an item's values (over ``current`` for an edit) without writing: InputError names every field at fault.
    A form checks with this before it stores, so that one round shows every problem."""
    _clean(values, current, utc(now) if now else utcnow())


# --- writing --------------------------------------------------------------------------------------------------------


def _stored(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "topics": json.dumps(row["topics"])}


def lock_item(conn: Connection, item_id: int) -> Item:
    """The item's row, locked for the rest of the transaction (FOR UPDATE; SQLite's writer is alone anyway)."""
    row = conn.execute(select(CI).where(CI.c.id == item_id).with_for_update()).first()
    if row is None:
        raise NotFound(f"no content item {item_id}", [Problem("no such item", "item_id")])
    return _item(row)


def create_item(
    state: StateStore, values: Mapping[str, Any], *, by: str, idempotency_key: str | None = None,
    now: datetime | None = None,
) -> Item:  # fmt: skip
    """Add an item (a draft unless ``status`` says otherwise). With ``idempotency_key``, a repeat returns the item the
    first call made; the key used for another item (another kind, title or address) is a Conflict."""
    moment = utc(now) if now else utcnow()
    row = _clean(values, None, moment)
    full = {**_stored(row), "version": 1, "idempotency_key": idempotency_key, "created_by": by,
            "created_at": moment, "updated_at": moment}  # fmt: skip

    def work(conn: Connection) -> Item:
        made = insert_or_nothing(conn, CI, [full], ("id",))
        if made:
            return _item(conn.execute(select(CI).where(CI.c.id == made[0].id)).one())
        found = _item(conn.execute(select(CI).where(CI.c.idempotency_key == idempotency_key)).one())
        if (found.kind, found.title_zh, found.url) != (row["kind"], row["title_zh"], row["url"]):
            raise Conflict(
                f"the idempotency key {idempotency_key!r} was used for content item {found.id} ({found.title_zh})",
                [Problem("use a new key for a new item", "idempotency_key")],
            )
        return found

    return transaction(state, work)


def update_item(
    state: StateStore, item_id: int, changes: Mapping[str, Any], *, version: int | None = None,
    now: datetime | None = None,
) -> Item:  # fmt: skip
    """Change some fields of an item (``status`` too). With ``version`` (the one the editor read), a change made
    meanwhile by someone else is a Conflict and nothing is written."""
    moment = utc(now) if now else utcnow()

    def work(conn: Connection) -> Item:
        current = lock_item(conn, item_id)
        if version is not None and version != current.version:
            raise Conflict(
                f"content item {item_id} was changed meanwhile (now version {current.version}, you read {version})",
                [Problem("reload the item and make the change again", "version")],
            )
        row = _clean(changes, current, moment)
        conn.execute(
            update(CI).where(CI.c.id == item_id).values(**_stored(row), version=CI.c.version + 1, updated_at=moment)
        )
        return _item(conn.execute(select(CI).where(CI.c.id == item_id)).one())

    return transaction(state, work)


# --- reading --------------------------------------------------------------------------------------------------------


def get_item(state: StateStore, item_id: int) -> Item:
    with state.connect() as conn:
        row = conn.execute(select(CI).where(CI.c.id == item_id)).first()
    if row is None:
        raise NotFound(f"no content item {item_id}", [Problem("no such item", "item_id")])
    return _item(row)


def list_items(
    state: StateStore, *, status: str | None = None, kind: str | None = None, topic: str | None = None,
    query: str | None = None, limit: int = 25, offset: int = 0,
) -> tuple[list[Item], int]:  # fmt: skip
    """A page of items, newest first, and how many match: by status, kind, topic and words of the titles."""
    where = []
    if status:
        where.append(CI.c.status == status)
    if kind:
        where.append(CI.c.kind == kind)
    if topic:
        where.append(CI.c.topics.contains(json.dumps(topic), autoescape=True))
    if query and query.strip():
        words = query.strip()
        where.append(or_(*(CI.c[name].icontains(words, autoescape=True) for name in ("title_zh", "title_en"))))
    with state.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(CI).where(*where)).scalar_one())
        rows = conn.execute(select(CI).where(*where).order_by(CI.c.id.desc()).limit(limit).offset(offset)).all()
    return [_item(r) for r in rows], total


def live_items(state: StateStore, at: datetime) -> list[Item]:
    """The items whose links work and which are recommended at ``at``."""
    with state.connect() as conn:
        rows = conn.execute(
            select(CI).where(CI.c.status == "published", or_(CI.c.publish_at.is_(None), CI.c.publish_at <= at),
                            or_(CI.c.end_at.is_(None), CI.c.end_at > at)).order_by(CI.c.id)
        ).all()  # fmt: skip
    return [_item(r) for r in rows]
