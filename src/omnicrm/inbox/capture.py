"""From what a customer said to their portrait: attributes found in a message become manual tag values whose
reason names the message, the words and the rule (or the agent) that captured them.

The attribute tags (``ATTRIBUTE_TAGS``: has_infant, child_age_band, pregnancy, pet, district, home_city,
height_cm, weight_kg, stated_birthday) are merchant tags with manual values, declared in the state store the
way staff declare theirs (``portrait.tags.custom.define_tag``) on first capture, so that segments, the API
(``GET /api/customers/{id}/tags``) and the customer 360 show them like any manual tag. A value is written with
``set_manual`` (source ``message``), which keeps who set it, when and why and replaces the value in force:

    set by inbox:auto (message): message m-812 said “宝宝4个月” (chars 2–7, rule child_age_zh)

Per message and tag one value is written: the youngest child's band, has_infant when any child is under three,
pregnant over trying, the pets found added to those already known, else the first value found. A value already
in force is not written again: capturing a message twice changes nothing, and the first message that told a
value stays its reason. A tag the merchant deleted is not captured again; a tag id already used for something
else (another type, a rule tag) is refused by name.

Captures of one customer's tag run one at a time (a PostgreSQL advisory lock held around reading the value in
force and ``set_manual``; on SQLite a lock of the process, whose writers queue anyway), so two messages telling
a cat and a dog at the same moment leave both pets and a single value in force.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy import text as sql
from sqlalchemy.exc import IntegrityError

from omnicrm.errors import Conflict, InputError, Problem
from omnicrm.inbox.extract import AGE_BANDS, Extracted, extract
from omnicrm.inbox.understanding import MAX_CHARS
from omnicrm.portrait.refresh import catalogue, known_types
from omnicrm.portrait.tags.custom import define_tag, set_manual
from omnicrm.store.schema import manual_tags, tag_definitions
from omnicrm.store.state import StateStore

__all__ = ["ATTRIBUTE_TAGS", "AttributeTag", "Captured", "capture", "declare_attribute_tags", "set_from_message"]

SOURCE = "message"
QUOTE_CHARS = 80
_LOCAL = threading.Lock()


@dataclass(frozen=True)
class AttributeTag:
    """A portrait attribute that messages can tell."""

    id: str
    name_zh: str
    name_en: str
    value_type: str
    description_zh: str
    description_en: str


_FROM = "（来自顾客消息，理由中注明来源消息）"
ATTRIBUTE_TAGS: tuple[AttributeTag, ...] = (
    AttributeTag("has_infant", "有婴幼儿", "Has a child under 3", "bool", "顾客说过家里有三岁以下的孩子" + _FROM,
                 "The customer said they have a child under three (from a message, named in the reason)"),
    AttributeTag("child_age_band", "孩子年龄段", "Child's age band", "category",
                 f"最小孩子的年龄段（{'/'.join(AGE_BANDS)} 岁）" + _FROM,
                 f"Age band of the youngest child the customer mentioned ({', '.join(AGE_BANDS)} years)"),
    AttributeTag("pregnancy", "孕期", "Pregnancy", "category", "pregnant（怀孕）或 trying（备孕）" + _FROM,
                 "pregnant, or trying (to conceive), as the customer said"),
    AttributeTag("pet", "宠物", "Pets", "list", "顾客养的宠物：cat、dog" + _FROM,
                 "Pets the customer keeps: cat, dog (each message adds to the list)"),
    AttributeTag("district", "居住区", "Home district", "category", "顾客说的居住区，如 杭州市西湖区" + _FROM,
                 "The district the customer said they live in, e.g. 杭州市西湖区"),
    AttributeTag("home_city", "居住城市", "Home city", "category", "顾客说的居住城市，如 杭州市" + _FROM,
                 "The city the customer said they live in, e.g. 杭州市"),
    AttributeTag("height_cm", "身高（厘米）", "Height (cm)", "number", "顾客为选尺码说的身高" + _FROM,
                 "Height the customer gave for size advice, in centimetres"),
    AttributeTag("weight_kg", "体重（公斤）", "Weight (kg)", "number", "顾客为选尺码说的体重（斤已换算）" + _FROM,
                 "Weight the customer gave for size advice, in kilograms (jin and pounds converted)"),
    AttributeTag("stated_birthday", "自述生日", "Birthday (as said)", "category", "MM-DD 或 YYYY-MM-DD" + _FROM,
                 "The birthday the customer told, MM-DD or YYYY-MM-DD"),
)  # fmt: skip


@dataclass(frozen=True)
class Captured:
    """What happened to one attribute of a message: ``set``, ``unchanged`` (the value in force already) or
    ``skipped`` (its tag was deleted by the merchant)."""

    tag: str
    value: Any
    status: str
    note: str


def declare_attribute_tags(state: StateStore, *, by: str) -> set[str]:
    """Declare the attribute tags that are missing; return the ids that can take values (not deleted).

    Safe to call from several processes at once: a tag another one declared first is simply found.
    """
    _need_text(by, "by")
    known = known_types(catalogue(state))
    for t in ATTRIBUTE_TAGS:
        if t.id in known:
            continue
        with suppress(Conflict, IntegrityError):  # declared meanwhile, or deleted earlier: read below
            define_tag(state, known, tag_id=t.id, name_zh=t.name_zh, name_en=t.name_en, value_type=t.value_type,
                       by=by, description_zh=t.description_zh, description_en=t.description_en)  # fmt: skip
    return _usable(state)


def _usable(state: StateStore) -> set[str]:
    """Attribute tags in force as manual tags of their declared type; a clash is refused naming the tag."""
    ids = [t.id for t in ATTRIBUTE_TAGS]
    with state.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(tag_definitions).where(tag_definitions.c.id.in_(ids))).all()}
    builtin = {d.id for d in catalogue(state) if d.origin == "builtin"}
    problems: list[Problem] = []
    usable: set[str] = set()
    for t in ATTRIBUTE_TAGS:
        row = rows.get(t.id)
        if t.id in builtin or (row is not None and (row.origin != "manual" or row.value_type != t.value_type)):
            what = "a built-in tag" if row is None else f"a {row.origin} tag of type {row.value_type}"
            problems.append(Problem(f"'{t.id}' is already {what}; attributes need a manual {t.value_type} tag", t.id))
        elif row is not None and row.deleted_at is None:
            usable.add(t.id)
    if problems:
        raise Conflict("attribute tags clash with existing tags", problems)
    return usable


def capture(state: StateStore, customer_id: int, message_id: str | int, text: str, by: str) -> list[Captured]:
    """Write the attributes the rules find in a customer's message onto their portrait (see the module docstring).

    ``by`` is who or what asked (e.g. ``inbox:auto``); the rule is named in each value's reason.
    """
    key = _check(customer_id, message_id, by)
    if not isinstance(text, str):
        raise InputError("the message text must be a string", [Problem(f"got {type(text).__name__}", field="text")])
    chosen = _choose(extract(text[:MAX_CHARS]))
    if not chosen:
        return []
    usable = declare_attribute_tags(state, by=by)
    out: list[Captured] = []
    for tag, (value, found) in chosen.items():
        note = _note(key, found.quote, found.start, found.end, f"rule {found.rule}")
        out.append(_write(state, customer_id, key, tag, value, note, by, usable))
    return out


def set_from_message(
    state: StateStore,
    customer_id: int,
    message_id: str | int,
    tag_id: str,
    value: Any,
    *,
    text: str,
    quote: str,
    by: str,
) -> Captured:
    """An agent sets an attribute by hand from a message: ``quote`` (the words that tell it) must be in ``text``.

    Any manual tag can be set this way; the value is checked against the tag's type by ``set_manual``.
    """
    key = _check(customer_id, message_id, by)
    if not isinstance(text, str):
        raise InputError("the message text must be a string", [Problem(f"got {type(text).__name__}", field="text")])
    if not isinstance(quote, str) or not quote.strip():
        raise InputError("give the words of the message that tell the value", [Problem("empty", field="quote")])
    start = text.find(quote)
    if start < 0:
        reason = f"“{quote[:QUOTE_CHARS]}” is not in message {key}; copy the words from the message"
        raise InputError("the quote is not in the message", [Problem(reason, field="quote")])
    usable = declare_attribute_tags(state, by=by)
    attribute_ids = {t.id for t in ATTRIBUTE_TAGS}
    if tag_id in attribute_ids and tag_id not in usable:
        raise InputError(f"tag '{tag_id}' was deleted", [Problem("the merchant deleted this tag", field="tag_id")])
    note = _note(key, quote, start, start + len(quote), "set by hand")
    return _write(state, customer_id, key, tag_id, value, note, by, usable | {tag_id})


def _write(state: StateStore, customer_id: int, key: str, tag: str, value: Any, note: str, by: str,
           usable: set[str]) -> Captured:  # fmt: skip
    if tag not in usable:
        return Captured(tag, value, "skipped", f"tag '{tag}' was deleted by the merchant")
    with _one_writer(state, customer_id, tag):
        current = _in_force(state, customer_id, tag)
        if tag == "pet" and current is not None and isinstance(value, list) and isinstance(current[0], list):
            value = sorted({*current[0], *value})
        if current is not None and current[0] == value:  # told again: the first message stays the reason
            return Captured(tag, value, "unchanged", current[1])
        set_manual(state, customer_id, tag, value, by=by, note=note, source=SOURCE)
    return Captured(tag, value, "set", note)


@contextmanager
def _one_writer(state: StateStore, customer_id: int, tag: str) -> Iterator[None]:
    """Hold the lock of one customer's tag: a session advisory lock on PostgreSQL (across processes), on SQLite a
    lock of this process."""
    if state.dialect != "postgresql":
        with _LOCAL:
            yield
        return
    digest = hashlib.sha256(f"omnicrm.manual_tags:{customer_id}:{tag}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    with state.engine.connect() as conn:
        conn.execute(sql("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            conn.execute(sql("SELECT pg_advisory_unlock(:k)"), {"k": key})


def _in_force(state: StateStore, customer_id: int, tag: str) -> tuple[Any, str] | None:
    """(value, note) of the customer's value of ``tag`` in force, if any."""
    m = manual_tags
    with state.connect() as conn:
        row = conn.execute(
            select(m.c.value, m.c.note)
            .where(and_(m.c.customer_id == customer_id, m.c.tag_id == tag, m.c.cleared_at.is_(None)))
            .order_by(m.c.set_at.desc(), m.c.id.desc())
            .limit(1)
        ).first()
    return None if row is None else (json.loads(row.value), row.note or "")


def _choose(found: Sequence[Extracted]) -> dict[str, tuple[Any, Extracted]]:
    """One value per tag from everything found in a message (see the module docstring)."""
    out: dict[str, tuple[Any, Extracted]] = {}
    for e in found:
        before = out.get(e.tag)
        younger = e.tag == "child_age_band" and before and AGE_BANDS.index(str(e.value)) < AGE_BANDS.index(before[0])
        pregnant = e.tag == "pregnancy" and before and e.value == "pregnant"
        if before is None or younger or pregnant:
            out[e.tag] = (e.value, e)
        elif e.tag == "pet" and isinstance(e.value, list):
            out[e.tag] = (sorted({*out[e.tag][0], *e.value}), out[e.tag][1])
    return out


def _note(key: str, quote: str, start: int, end: int, how: str) -> str:
    words = " ".join(quote.split())
    words = words if len(words) <= QUOTE_CHARS else words[: QUOTE_CHARS - 1] + "…"
    return f"message {key} said “{words}” (chars {start}–{end}, {how})"


def _check(customer_id: Any, message_id: Any, by: Any) -> str:
    """The message id as text; every bad argument reported by name."""
    problems: list[Problem] = []
    if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id <= 0:
        problems.append(Problem(f"{customer_id!r} is not a customer id (a positive integer)", field="customer_id"))
    key = str(message_id).strip() if isinstance(message_id, str | int) and not isinstance(message_id, bool) else ""
    if not key or len(key) > 128 or any(ch.isspace() for ch in key):
        reason = f"{message_id!r} is not a message id (1-128 characters, no spaces)"
        problems.append(Problem(reason, field="message_id"))
    if not isinstance(by, str) or not by.strip() or len(by) > 128:
        problems.append(Problem(f"{by!r}: say who or what captures (1-128 characters)", field="by"))
    if problems:
        raise InputError("cannot capture attributes from the message", problems)
    return key


def _need_text(value: Any, field: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"'{field}' must be a non-empty string", [Problem("empty", field=field)])
