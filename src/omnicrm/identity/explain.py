"""Explaining a customer: each identifier, and the record and rule that joined it to the rest.

Reads the snapshot in force. The explanation is a spanning tree of the customer's record–identifier
graph, grown from its most trusted identifier: every other identifier is reached through a record
that also carries an identifier already explained ("same record"), and a record is reached through a
merge key it shares ("same phone"), an operator's join, or a probabilistic match.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import ibis
import pyarrow as pa

from omnicrm.errors import InputError, NotFound
from omnicrm.identity.identifiers import IDENTIFIER_TYPES, normalise

__all__ = ["CustomerIdentity", "Joined", "explain_customer", "lookup", "normalise_many", "normalise_one", "resolve_id"]

_KIND_WORDS = {"order_line": "order", "person": "person record", "event": "events", "message": "conversation"}


@dataclass(frozen=True)
class Joined:
    """How one identifier came to belong to the customer."""

    id_type: str
    value: str
    key: str
    sources: str
    n_records: int
    first_seen: Any
    last_seen: Any
    how: str  # "anchor", "same record", "same <type>", "shared: not a merge key"
    record: str | None  # the record that carries it and links it
    via: str | None  # the identifier it was linked through
    note: str | None = None  # why it is not a merge key, when it is not


@dataclass
class CustomerIdentity:
    customer_id: int
    asked_id: int
    identifiers: list[Joined] = field(default_factory=list)
    records: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "redirected_from": self.asked_id if self.asked_id != self.customer_id else None,
            "records": self.records,
            "identifiers": [j.__dict__ for j in self.identifiers],
        }


def _require(snapshot: Path | None) -> Path:
    if snapshot is None:
        raise NotFound("there is no identity snapshot yet; run `omnicrm refresh` first")
    return snapshot


def resolve_id(snapshot: Path | None, customer_id: int) -> int:
    """The id in force for ``customer_id`` (following merges), or NotFound."""
    snap = _require(snapshot)
    row = (
        duckdb.connect()
        .execute(
            f"SELECT customer_id FROM read_parquet('{snap / 'redirects.parquet'}') WHERE old_id = $id",
            {"id": customer_id},
        )
        .fetchall()
    )
    target = int(row[0][0]) if row else customer_id
    exists = (
        duckdb.connect()
        .execute(
            f"SELECT 1 FROM read_parquet('{snap / 'records.parquet'}') WHERE customer_id = $id LIMIT 1", {"id": target}
        )
        .fetchall()
    )
    if not exists:
        raise NotFound(f"no customer {customer_id}")
    return target


def _record_words(record_key: str, kind: str) -> str:
    _, source, key = record_key.split(":", 2)
    if kind == "event":  # the key is the combination of ids: user id | anonymous id | ...
        user, device = [*key.split("|"), "", ""][:2]
        parts = [f"user {user}" if user else "", f"device {device}" if device else ""]
        return f"{source} events ({', '.join(p for p in parts if p)})"
    return f"{source} {_KIND_WORDS.get(kind, kind)} {key}"


def explain_customer(snapshot: Path | None, customer_id: int) -> CustomerIdentity:
    """Every identifier of the customer with the record and rule that joined it."""
    snap = _require(snapshot)
    current = resolve_id(snap, customer_id)
    con = duckdb.connect()
    records = snap / "records.parquet"
    con.execute(f"CREATE VIEW recs AS SELECT record_key FROM read_parquet('{records}') WHERE customer_id = {current}")
    occ = con.sql(
        f"""SELECT o.record_key, o.kind, o.key FROM read_parquet('{snap / "occurrences.parquet"}') o
            WHERE o.record_key IN (SELECT record_key FROM recs) AND o.key IS NOT NULL"""
    ).fetchall()
    ids = con.sql(
        f"""SELECT key, id_type, value, sources, n_records, first_seen, last_seen, merge_stage, refusal
            FROM read_parquet('{snap / "identifiers.parquet"}') WHERE customer_id = {current}"""
    ).fetchall()
    info = {row[0]: row for row in ids}
    by_record: dict[str, list[str]] = {}
    by_key: dict[str, list[str]] = {}
    kind_of: dict[str, str] = {}
    for record_key, kind, key in occ:
        by_record.setdefault(record_key, []).append(key)
        by_key.setdefault(key, []).append(record_key)
        kind_of[record_key] = kind

    def is_merge_key(key: str) -> bool:
        return info[key][7] >= 0 and info[key][8] is None

    order = sorted(info, key=lambda k: (info[k][7] < 0, info[k][7], k))
    how: dict[str, tuple[str, str | None, str | None]] = {}  # key → (rule, record, via key)
    seen_records: set[str] = set()
    for root in order:
        if root in how:
            continue
        how[root] = ("anchor" if not how else "not linked to the anchor", None, None)
        queue = deque([root])
        while queue:
            key = queue.popleft()
            for record in sorted(by_key.get(key, [])):
                if record in seen_records:
                    continue
                if key != root and not is_merge_key(key) and how[key][0] != "anchor":
                    continue
                seen_records.add(record)
                for other in sorted(by_record[record]):
                    if other not in how:
                        rule = "same record"
                        how[other] = (rule, _record_words(record, kind_of[record]), key)
                        queue.append(other)
    joined = []
    for key in order:
        row = info[key]
        rule, where, via = how[key]
        note: str | None = None
        if row[8] is not None:
            note = f"not a merge key: {row[8]}"
        elif row[7] < 0 and IDENTIFIER_TYPES[row[1]].merges:
            note = "not a merge key"
        if via is not None and is_merge_key(via):
            rule = f"same {info[via][1]}" if rule == "same record" and via != order[0] else rule
        joined.append(Joined(row[1], row[2], key, row[3], row[4], row[5], row[6], rule, where, via, note))
    return CustomerIdentity(current, customer_id, joined, len(by_record))


def normalise_many(id_type_values: list[tuple[str, str]]) -> list[tuple[str | None, str | None]]:
    """Each (type, raw value) normalised exactly as refresh computes it, in one query: (value, reason refused)."""
    for id_type, _ in id_type_values:
        if id_type not in IDENTIFIER_TYPES or not IDENTIFIER_TYPES[id_type].merges:
            known = ", ".join(t for t, d in IDENTIFIER_TYPES.items() if d.merges)
            raise InputError(f"unknown identifier type {id_type!r}; use one of {known}")
    types, values = [t for t, _ in id_type_values], [v for _, v in id_type_values]
    t = ibis.memtable(pa.table({"t": pa.array(types, pa.string()), "v": pa.array(values, pa.string())}))
    v, reason = normalise(t.t, t.v)
    rows = ibis.duckdb.connect().to_pyarrow(t.select(v=v, r=reason)).to_pylist()
    return [(row["v"], row["r"]) for row in rows]


def normalise_one(id_type: str, value: str, scope: str = "") -> str:
    """The identifier key a raw value normalises to, exactly as refresh computes it."""
    normalised, reason = normalise_many([(id_type, value)])[0]
    if normalised is None:
        raise InputError(f"{id_type} {value!r} is not usable as an identifier: {reason}")
    return f"{id_type}:{scope}:{normalised}"


def lookup(snapshot: Path | None, id_type: str, value: str, scope: str = "") -> list[int]:
    """Customers holding this identifier (more than one only for a shared one, e.g. a family phone)."""
    snap = _require(snapshot)
    key = normalise_one(id_type, value, scope)
    rows = (
        duckdb.connect()
        .execute(
            f"SELECT DISTINCT customer_id FROM read_parquet('{snap / 'identifiers.parquet'}') "
            "WHERE key = $key ORDER BY 1",
            {"key": key},
        )
        .fetchall()
    )
    return [int(r[0]) for r in rows]
