"""Find customers by whatever a clerk or agent has at hand: a phone, an e-mail, a member card, a nick, an id.

The query is normalised the way OneID normalises identifiers (a phone written ``138 0013 8000`` finds
``+8613800138000``), so the search finds exactly the customers OneID joined that identifier to.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from omnicrm.errors import InputError, NotFound
from omnicrm.identity.explain import normalise_many, resolve_id

__all__ = ["SUMMARY_TAGS", "Match", "find_customers"]

# typed without scope; scoped ones (nick per platform, openid per app) match on any scope
_UNSCOPED = ("phone", "email", "member_card", "wechat_unionid")
_SCOPED = ("marketplace_nick", "wechat_openid")
SUMMARY_TAGS = ("gender", "city", "rfm_segment", "lifecycle_stage", "monetary", "recency_days")
MAX_RESULTS = 50


@dataclass(frozen=True)
class Match:
    customer_id: int
    matched: str  # the identifier type that matched, or "customer_id"
    value: str
    tags: dict[str, Any]


def _keys(query: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Identifier keys the query could be, and (type, value) pairs for the scoped types (one normalising query)."""
    types = (*_UNSCOPED, *_SCOPED)
    normalised = normalise_many([(id_type, query) for id_type in types])
    keys = [f"{t}::{v}" for t, (v, _) in zip(types, normalised, strict=True) if v is not None and t in _UNSCOPED]
    scoped = [(t, v) for t, (v, _) in zip(types, normalised, strict=True) if v is not None and t in _SCOPED]
    return keys, scoped


def _summaries(portrait: Path | None, ids: list[int]) -> dict[int, dict[str, Any]]:
    if portrait is None or not ids:
        return {}
    con = duckdb.connect()
    path = portrait / "tags.parquet"
    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()}
    columns = [c for c in SUMMARY_TAGS if c in present]
    cur = con.execute(
        f"SELECT customer_id, {', '.join(columns)} FROM read_parquet('{path}') WHERE customer_id = ANY($ids)",
        {"ids": ids},
    )
    out = {}
    for row in cur.fetchall():
        out[int(row[0])] = {
            c: (v.isoformat() if hasattr(v, "isoformat") else v) for c, v in zip(columns, row[1:], strict=True)
        }
    return out


def find_customers(identity: Path | None, portrait: Path | None, query: str) -> list[Match]:
    """Customers whose identifiers match ``query`` (or the customer with that id), with a few summary tags."""
    query = query.strip()
    if not query:
        raise InputError("type a phone, e-mail, member card, nick or customer id to search")
    if len(query) > 200:
        raise InputError("the search text is longer than 200 characters")
    if identity is None:
        raise NotFound("there is no identity snapshot yet; run `omnicrm refresh` first")
    found: dict[int, tuple[str, str]] = {}
    if re.fullmatch(r"\d{1,10}", query):
        with contextlib.suppress(NotFound):
            found[resolve_id(identity, int(query))] = ("customer_id", query)
    keys, scoped = _keys(query)
    con = duckdb.connect()
    clauses = ["key = ANY($keys)"]
    params: dict[str, Any] = {"keys": keys or [""]}
    for i, (id_type, value) in enumerate(scoped):
        clauses.append(f"(id_type = $t{i} AND value = $v{i})")
        params[f"t{i}"], params[f"v{i}"] = id_type, value
    rows = con.execute(
        f"""SELECT customer_id, id_type, value FROM read_parquet('{identity / "identifiers.parquet"}')
            WHERE {" OR ".join(clauses)} ORDER BY customer_id LIMIT {MAX_RESULTS}""",
        params,
    ).fetchall()
    for customer_id, id_type, value in rows:
        found.setdefault(int(customer_id), (str(id_type), str(value)))
    tags = _summaries(portrait, list(found))
    return [Match(cid, how, value, tags.get(cid, {})) for cid, (how, value) in list(found.items())[:MAX_RESULTS]]
