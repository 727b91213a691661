"""Merchant-defined tags in the state store: rule tags (computed from other tags at each refresh) and manual
tags (values set by staff or by import, kept with who, when and why; a later value replaces an earlier one)."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
from sqlalchemy import and_, insert, select, update

from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.portrait.tags.model import TagDefinition, arrow_type
from omnicrm.portrait.tags.rules import compile_rule, rule_fields
from omnicrm.store.schema import manual_tags, tag_definitions
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "clear_manual",
    "define_tag",
    "delete_tag",
    "import_manual",
    "load_custom",
    "manual_values",
    "parse_manual_text",
    "set_manual",
]


def _types_table(types: Mapping[str, str]) -> Any:
    """An empty Ibis table with one column per known tag, to compile rules against."""
    schema = {name: arrow_type(t) for name, t in types.items()}
    return ibis.memtable(pa.schema(schema).empty_table())


def _definition(row: Any) -> TagDefinition:
    rule = json.loads(row.rule) if row.rule else None
    return TagDefinition(
        row.id,
        row.name_zh,
        row.name_en,
        "custom",
        row.value_type,
        tuple(sorted(rule_fields(rule))) if rule else (),
        None,
        description_zh=row.description_zh,
        description_en=row.description_en,
        refresh="every_refresh" if row.origin == "rule" else "manual",
        origin=row.origin,
        rule=rule,
    )


def load_custom(state: StateStore) -> list[TagDefinition]:
    """Rule and manual tag definitions in force, in the order they were created."""
    with state.connect() as conn:
        rows = conn.execute(
            select(tag_definitions).where(tag_definitions.c.deleted_at.is_(None)).order_by(tag_definitions.c.created_at)
        ).all()
    return [_definition(r) for r in rows]


def _insert(state: StateStore, values: dict[str, Any]) -> TagDefinition:
    tag_id = values["id"]
    try:
        TagDefinition(tag_id, values["name_zh"], values["name_en"], "custom", values["value_type"], ())
    except ValueError as exc:
        raise InputError(str(exc), [Problem(str(exc), field="id")]) from exc
    now = utcnow()
    with state.begin() as conn:
        exists = conn.execute(select(tag_definitions.c.id).where(tag_definitions.c.id == tag_id)).first()
        if exists is not None:
            raise Conflict(f"tag '{tag_id}' already exists")
        conn.execute(insert(tag_definitions).values(**values, created_at=now, updated_at=now))
        row = conn.execute(select(tag_definitions).where(tag_definitions.c.id == tag_id)).one()
    return _definition(row)


def define_tag(
    state: StateStore,
    known: Mapping[str, str],
    *,
    tag_id: str,
    name_zh: str,
    name_en: str,
    value_type: str,
    by: str,
    rule: Any = None,
    description_zh: str = "",
    description_en: str = "",
) -> TagDefinition:
    """Create a merchant tag: a rule tag when ``rule`` is given (compiled first against the known tags,
    ``known``: id → value type), else a manual tag whose values staff set by hand or by import."""
    if tag_id in known:
        raise Conflict(f"tag '{tag_id}' already exists as a built-in or custom tag; choose another id")
    if rule is not None:
        compile_rule(rule, value_type, _types_table(known), known)
    return _insert(
        state,
        {"id": tag_id, "origin": "manual" if rule is None else "rule", "name_zh": name_zh, "name_en": name_en,
         "description_zh": description_zh, "description_en": description_en, "value_type": value_type,
         "rule": None if rule is None else json.dumps(rule, ensure_ascii=False), "created_by": by},
    )  # fmt: skip


def delete_tag(state: StateStore, tag_id: str) -> None:
    with state.begin() as conn:
        done = conn.execute(
            update(tag_definitions)
            .where(and_(tag_definitions.c.id == tag_id, tag_definitions.c.deleted_at.is_(None)))
            .values(deleted_at=utcnow())
        )
    if done.rowcount == 0:
        raise NotFound(f"no custom tag '{tag_id}'")


def _manual_definition(state: StateStore, tag_id: str) -> TagDefinition:
    for d in load_custom(state):
        if d.id == tag_id:
            if d.origin != "manual":
                raise InputError(f"tag '{tag_id}' is a rule tag: its values come from its rule, not from staff")
            return d
    raise NotFound(f"no manual tag '{tag_id}'; define it first")


def _check_value(d: TagDefinition, value: Any, where: str) -> Any:
    ok = {
        "bool": isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "category": isinstance(value, str) and value.strip() != "",
        "list": isinstance(value, list) and all(isinstance(v, str) for v in value),
    }[d.value_type]
    if not ok:
        raise InputError(
            f"{where}: {value!r} is not a {d.value_type} value for tag '{d.id}'", [Problem("bad value", field="value")]
        )
    return value


def set_manual(
    state: StateStore,
    customer_id: int,
    tag_id: str,
    value: Any,
    *,
    by: str,
    note: str | None = None,
    source: str = "staff",
) -> None:
    """Give a customer a manual tag value (replacing the one in force)."""
    d = _manual_definition(state, tag_id)
    _write_manual(state, d, [(customer_id, _check_value(d, value, f"customer {customer_id}"), note)], by, source)


def _write_manual(
    state: StateStore, d: TagDefinition, rows: Sequence[tuple[int, Any, str | None]], by: str, source: str
) -> None:
    now = utcnow()
    with state.begin() as conn:
        ids = [r[0] for r in rows]
        for start in range(0, len(ids), 500):
            conn.execute(
                update(manual_tags)
                .where(
                    and_(
                        manual_tags.c.tag_id == d.id,
                        manual_tags.c.customer_id.in_(ids[start : start + 500]),
                        manual_tags.c.cleared_at.is_(None),
                    )
                )
                .values(cleared_at=now)
            )
        conn.execute(
            insert(manual_tags),
            [
                {
                    "customer_id": cid,
                    "tag_id": d.id,
                    "value": json.dumps(v, ensure_ascii=False),
                    "source": source,
                    "set_by": by,
                    "note": note,
                    "set_at": now,
                }
                for cid, v, note in rows
            ],
        )


def clear_manual(state: StateStore, customer_id: int, tag_id: str) -> bool:
    with state.begin() as conn:
        done = conn.execute(
            update(manual_tags)
            .where(
                and_(
                    manual_tags.c.tag_id == tag_id,
                    manual_tags.c.customer_id == customer_id,
                    manual_tags.c.cleared_at.is_(None),
                )
            )
            .values(cleared_at=utcnow())
        )
    return bool(done.rowcount)


def _parse_cell(d: TagDefinition, text: str) -> Any:
    text = text.strip()
    if d.value_type == "bool":
        low = text.lower()
        if low in ("true", "1", "yes", "y", "是"):
            return True
        if low in ("false", "0", "no", "n", "否"):
            return False
        return text
    if d.value_type == "number":
        try:
            return float(text)
        except ValueError:
            return text
    if d.value_type == "list":
        return [p.strip() for p in text.replace("，", ",").split(",") if p.strip()]
    return text


def parse_manual_text(state: StateStore, tag_id: str, text: str) -> Any:
    """A value typed by staff (a form field or a CSV cell) in the manual tag's type; checked when set."""
    return _parse_cell(_manual_definition(state, tag_id), text)


def import_manual(state: StateStore, path: Path, tag_id: str, *, by: str) -> int:
    """Set a manual tag from a CSV with columns customer_id, value[, note]; all rows or none.

    A bad row is refused with its line and field; nothing of the file is written then, so a corrected file
    can simply be imported again.
    """
    d = _manual_definition(state, tag_id)
    rows: list[tuple[int, Any, str | None]] = []
    problems: list[Problem] = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"customer_id", "value"} - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{path.name}: missing column(s) {', '.join(sorted(missing))}")
        for line, rec in enumerate(reader, start=2):
            try:
                cid = int(rec["customer_id"])
            except (TypeError, ValueError):
                problems.append(
                    Problem(f"customer_id {rec['customer_id']!r} is not a number", field="customer_id", line=line)
                )
                continue
            value = _parse_cell(d, rec.get("value") or "")
            try:
                rows.append((cid, _check_value(d, value, f"line {line}"), rec.get("note") or None))
            except InputError as exc:
                problems.append(Problem(str(exc), field="value", line=line))
    if problems:
        raise InputError(f"{path.name}: {len(problems)} bad row(s); nothing imported", problems[:50])
    if rows:
        _write_manual(state, d, rows, by, "import")
    return len(rows)


def manual_values(state: StateStore, definitions: Sequence[TagDefinition]) -> dict[str, pa.Table]:
    """Per manual tag: (customer_id, value, set_by, set_at, note) of the values in force."""
    out: dict[str, pa.Table] = {}
    wanted = [d for d in definitions if d.origin == "manual"]
    with state.connect() as conn:
        for d in wanted:
            rows = conn.execute(
                select(manual_tags.c.customer_id, manual_tags.c.value).where(
                    and_(manual_tags.c.tag_id == d.id, manual_tags.c.cleared_at.is_(None))
                )
            ).all()
            out[d.id] = pa.table(
                {
                    "customer_id": pa.array([r.customer_id for r in rows], pa.int64()),
                    d.id: pa.array([json.loads(r.value) for r in rows], arrow_type(d.value_type)),
                }
            )
    return out
