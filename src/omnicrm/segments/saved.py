"""Saved segments: definitions in the state store, membership snapshots as Parquet, and what changed.

A snapshot freezes who was in a segment at a moment (campaigns send to a snapshot, not to a moving
rule). Snapshots are taken by hand or on the segment's schedule (daily or weekly, at ``omnicrm refresh``);
two snapshots give who entered and who left; two segments give their overlap.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import and_, insert, select, update

from omnicrm.consent.audience import non_personalised
from omnicrm.errors import InputError, NotFound, Problem
from omnicrm.segments.evaluate import SegmentEngine, as_rule
from omnicrm.segments.language import to_text, validate_shape
from omnicrm.store.schema import segment_snapshots, segments
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "SCHEDULES",
    "Segment",
    "create_segment",
    "delete_segment",
    "diff",
    "due_segments",
    "export_csv",
    "get_segment",
    "list_segments",
    "overlap",
    "snapshots",
    "take_snapshot",
    "update_segment",
]

SCHEDULES = {"daily": dt.timedelta(days=1), "weekly": dt.timedelta(days=7), "manual": None}


@dataclass
class Segment:
    id: int
    name: str
    description: str
    rule: Any
    schedule: str
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def text(self) -> str | None:
        try:
            return to_text(self.rule)
        except InputError:
            return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "rule": self.rule,
            "text": self.text,
            "schedule": self.schedule,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def _segment(row: Any) -> Segment:
    return Segment(row.id, row.name, row.description, json.loads(row.rule), row.schedule, row.created_by,
                   row.created_at, row.updated_at)  # fmt: skip


def _check(name: str, schedule: str, rule: Any) -> None:
    problems = validate_shape(rule)
    if not name.strip():
        problems.append(Problem("a segment needs a name", field="name"))
    if schedule not in SCHEDULES:
        problems.append(Problem(f"schedule {schedule!r} is not one of {', '.join(SCHEDULES)}", field="schedule"))
    if problems:
        raise InputError("the segment is not valid", problems)


def create_segment(
    state: StateStore,
    engine: SegmentEngine,
    *,
    name: str,
    rule: Any = None,
    text: str | None = None,
    description: str = "",
    schedule: str = "daily",
    by: str,
) -> Segment:
    """Save a segment after compiling its rule against the portrait in force (so a saved rule always runs)."""
    tree = as_rule(rule, text)
    _check(name, schedule, tree)
    engine.count(tree)
    now = utcnow()
    with state.begin() as conn:
        new_id = conn.execute(
            insert(segments).values(
                name=name.strip(),
                description=description,
                rule=json.dumps(tree, ensure_ascii=False),
                schedule=schedule,
                created_by=by,
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key
    assert new_id is not None
    return get_segment(state, int(new_id[0]))


def update_segment(
    state: StateStore, engine: SegmentEngine, segment_id: int, *, name: str | None = None, rule: Any = None,
    text: str | None = None, description: str | None = None, schedule: str | None = None,
) -> Segment:  # fmt: skip
    current = get_segment(state, segment_id)
    tree = as_rule(rule, text) if (rule is not None or text is not None) else current.rule
    name = current.name if name is None else name
    schedule = current.schedule if schedule is None else schedule
    _check(name, schedule, tree)
    engine.count(tree)
    with state.begin() as conn:
        conn.execute(
            update(segments).where(segments.c.id == segment_id).values(
                name=name.strip(), rule=json.dumps(tree, ensure_ascii=False), schedule=schedule, updated_at=utcnow(),
                description=current.description if description is None else description,
            )
        )  # fmt: skip
    return get_segment(state, segment_id)


def get_segment(state: StateStore, segment_id: int) -> Segment:
    with state.connect() as conn:
        row = conn.execute(
            select(segments).where(and_(segments.c.id == segment_id, segments.c.deleted_at.is_(None)))
        ).first()
    if row is None:
        raise NotFound(f"no segment {segment_id}")
    return _segment(row)


def list_segments(state: StateStore) -> list[Segment]:
    with state.connect() as conn:
        rows = conn.execute(select(segments).where(segments.c.deleted_at.is_(None)).order_by(segments.c.id)).all()
    return [_segment(r) for r in rows]


def delete_segment(state: StateStore, segment_id: int) -> None:
    get_segment(state, segment_id)
    with state.begin() as conn:
        conn.execute(update(segments).where(segments.c.id == segment_id).values(deleted_at=utcnow()))


def take_snapshot(state: StateStore, engine: SegmentEngine, folder: Path, segment_id: int) -> dict[str, Any]:
    """Freeze the segment's members now: a Parquet file of customer ids and a row naming it."""
    segment = get_segment(state, segment_id)
    audience = engine.audience(segment.rule)
    taken = engine.now
    target = folder / str(segment_id) / f"{taken:%Y%m%dT%H%M%S}-{audience.count}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    pq.write_table(audience.members, tmp)
    tmp.replace(target)
    with state.begin() as conn:
        snap_id = conn.execute(
            insert(segment_snapshots).values(segment_id=segment_id, taken_at=taken, members=audience.count,
                                             file=str(target), rule=json.dumps(segment.rule, ensure_ascii=False))
        ).inserted_primary_key  # fmt: skip
    assert snap_id is not None
    return {"id": int(snap_id[0]), "segment_id": segment_id, "taken_at": taken.isoformat(), "members": audience.count}


def snapshots(state: StateStore, segment_id: int) -> list[dict[str, Any]]:
    with state.connect() as conn:
        rows = conn.execute(
            select(segment_snapshots).where(segment_snapshots.c.segment_id == segment_id)
            .order_by(segment_snapshots.c.taken_at, segment_snapshots.c.id)
        ).all()  # fmt: skip
    return [{"id": r.id, "segment_id": r.segment_id, "taken_at": r.taken_at.isoformat(), "members": r.members,
             "file": r.file} for r in rows]  # fmt: skip


def _snapshot_file(state: StateStore, snapshot_id: int) -> str:
    with state.connect() as conn:
        row = conn.execute(select(segment_snapshots.c.file).where(segment_snapshots.c.id == snapshot_id)).first()
    if row is None:
        raise NotFound(f"no segment snapshot {snapshot_id}")
    return str(row.file)


def diff(state: StateStore, before: int, after: int) -> dict[str, pa.Table]:
    """Who entered (in ``after`` only) and who exited (in ``before`` only) between two snapshots."""
    con = duckdb.connect()
    a, b = _snapshot_file(state, before), _snapshot_file(state, after)
    entered = con.execute("SELECT customer_id FROM read_parquet($b) EXCEPT SELECT customer_id FROM read_parquet($a) "
                          "ORDER BY 1", {"a": a, "b": b}).to_arrow_table()  # fmt: skip
    exited = con.execute("SELECT customer_id FROM read_parquet($a) EXCEPT SELECT customer_id FROM read_parquet($b) "
                         "ORDER BY 1", {"a": a, "b": b}).to_arrow_table()  # fmt: skip
    return {"entered": entered, "exited": exited}


def overlap(engine: SegmentEngine, rules: dict[str, Any]) -> dict[str, Any]:
    """Members of each segment now, and of each pair together (counts)."""
    members = {name: set(engine.audience(rule).members["customer_id"].to_pylist()) for name, rule in rules.items()}
    names = list(members)
    pairs = [
        {"a": x, "b": y, "both": len(members[x] & members[y])} for i, x in enumerate(names) for y in names[i + 1 :]
    ]
    return {"counts": {n: len(m) for n, m in members.items()}, "pairs": pairs}


def export_csv(engine: SegmentEngine, rule: Any, columns: list[str]) -> str:
    """The members with the tags named in ``columns`` as CSV text (lists joined with '|').

    An export leaves omnicrm for marketing elsewhere, so it leaves out everyone who asked for non-personalised
    marketing only (PIPL art. 24): a segment is a selection by personal characteristics."""
    unknown = [c for c in columns if c not in engine.types]
    if unknown:
        raise InputError(f"unknown tag(s) {', '.join(unknown)}", [Problem("unknown tag", field=c) for c in unknown])
    audience = engine.audience(rule)
    con = duckdb.connect()
    con.register("members", audience.members)
    asked = pa.table({"customer_id": pa.array([], pa.int64())})
    if engine.state is not None:
        asked = non_personalised(engine.state, engine.identity)
    con.register("asked", asked)
    picked = ", ".join(f't."{c}"' for c in columns)
    rows = con.execute(
        f"SELECT m.customer_id{', ' + picked if picked else ''} FROM members m "
        f"JOIN read_parquet($path) t USING (customer_id) "
        "WHERE m.customer_id NOT IN (SELECT customer_id FROM asked) ORDER BY m.customer_id",
        {"path": str(engine.portrait / "tags.parquet")},
    ).fetchall()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["customer_id", *columns])
    for row in rows:
        writer.writerow(["|".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v) for v in row])
    return out.getvalue()


def due_segments(state: StateStore, now: dt.datetime) -> list[int]:
    """Segments whose schedule asks for a snapshot now (none yet, or the last one is a period old)."""
    due: list[int] = []
    for segment in list_segments(state):
        period = SCHEDULES[segment.schedule]
        if period is None:
            continue
        taken = snapshots(state, segment.id)
        last = dt.datetime.fromisoformat(taken[-1]["taken_at"]) if taken else None
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=dt.UTC)
        if last is None or now - last >= period:
            due.append(segment.id)
    return due
