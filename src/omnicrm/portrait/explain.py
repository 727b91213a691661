"""A customer's tags with their reasons: each value, when it was computed, and the inputs that produced it.

Read from the portrait snapshot in force (the identity redirect is followed first, so an id that merged
shows the surviving customer). Manual tags are read live from the state store, with who set them, when
and why, so that staff see their change at once rather than after the next refresh.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import and_, select

from omnicrm.errors import NotFound
from omnicrm.identity.explain import resolve_id
from omnicrm.portrait.tags.custom import load_custom
from omnicrm.store.schema import manual_tags
from omnicrm.store.state import StateStore

__all__ = ["CustomerTags", "TagValue", "customer_tags"]


@dataclass
class TagValue:
    id: str
    name: dict[str, str]
    category: str
    value_type: str
    value: Any
    computed_at: str
    origin: str
    inputs: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


@dataclass
class CustomerTags:
    customer_id: int
    asked_id: int
    as_of: str
    tags: list[TagValue]
    params: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "asked_id": self.asked_id,
            "as_of": self.as_of,
            "params": self.params,
            "tags": [t.__dict__ for t in self.tags],
        }


def _plain(value: Any) -> Any:
    """JSON-friendly: NaN → None, dates → ISO text, numpy scalars → Python."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def _row(path: Path, customer_id: int) -> dict[str, Any]:
    con = duckdb.connect()
    cur = con.execute(f"SELECT * FROM read_parquet('{path}') WHERE customer_id = $id", {"id": customer_id})
    names = [d[0] for d in cur.description or ()]
    rows = cur.fetchall()
    return {n: _plain(v) for n, v in zip(names, rows[0], strict=True)} if rows else {}


def customer_tags(
    portrait: Path | None, identity: Path | None, customer_id: int, state: StateStore | None = None
) -> CustomerTags:
    if portrait is None:
        raise NotFound("there is no portrait yet; run `omnicrm refresh` first")
    target = resolve_id(identity, customer_id)
    values = _row(portrait / "tags.parquet", target)
    if not values:
        raise NotFound(f"customer {target} is newer than the portrait; run `omnicrm refresh`")
    basis = _row(portrait / "basis.parquet", target)
    stats = json.loads((portrait / "stats.json").read_text(encoding="utf-8"))
    catalogue = json.loads((portrait / "catalogue.json").read_text(encoding="utf-8"))
    live = _manual_live(state, target) if state is not None else {}
    params = {"lifecycle_days": stats.get("lifecycle_days"), "lifecycle_basis": stats.get("lifecycle_basis")}
    out: list[TagValue] = []
    for d in catalogue:
        tag_id = d["id"]
        value = values.get(tag_id)
        computed_at, note = d["computed_at"], None
        if d["origin"] == "manual" and tag_id in live:
            value, computed_at, note = live[tag_id]
        inputs = {name: basis.get(name, values.get(name)) for name in d["inputs"]}
        out.append(
            TagValue(tag_id, d["name"], d["category"], d["value_type"], value, computed_at, d["origin"], inputs, note)
        )
    if state is not None:  # manual tags defined since the snapshot: their live values
        shown = {d["id"] for d in catalogue}
        for d in load_custom(state):
            if d.origin == "manual" and d.id not in shown:
                value, computed_at, note = live.get(d.id, (None, "", None))
                name = {"zh": d.name_zh, "en": d.name_en}
                out.append(TagValue(d.id, name, d.category, d.value_type, value, computed_at, d.origin, {}, note))
    return CustomerTags(target, customer_id, stats.get("as_of", ""), out, params)


def _manual_live(state: StateStore, customer_id: int) -> dict[str, tuple[Any, str, str | None]]:
    with state.connect() as conn:
        rows = conn.execute(
            select(manual_tags).where(
                and_(manual_tags.c.customer_id == customer_id, manual_tags.c.cleared_at.is_(None))
            )
        ).all()
    return {
        r.tag_id: (
            json.loads(r.value),
            r.set_at.isoformat(),
            f"set by {r.set_by} ({r.source})" + (f": {r.note}" if r.note else ""),
        )
        for r in rows
    }
