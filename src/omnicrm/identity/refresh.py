"""``omnicrm refresh`` for OneID: extract what is new, resolve everything, publish a snapshot.

Extraction is incremental: occurrences of each fact batch are extracted once and cached (the
expensive scan of facts); resolution then runs over all cached occurrences, which is cheap on
arrays. A full recompute clears the cache first and, by construction, gives the same answer.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select

from omnicrm.identity.extract import OCCURRENCE_SCHEMA, extract_occurrences
from omnicrm.identity.resolve import resolve
from omnicrm.identity.snapshot import assign_ids, write_snapshot
from omnicrm.ingest.sources import user_id_types
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import KINDS
from omnicrm.store.schema import identity_links
from omnicrm.store.state import StateStore

__all__ = ["AREA", "IdentityRefresh", "load_occurrences", "refresh_identity"]

AREA = "identity"
MATCH_SCHEMA = pa.schema(
    [
        pa.field("record_key_l", pa.string()),
        pa.field("record_key_r", pa.string()),
        pa.field("match_probability", pa.float64()),
        pa.field("explain", pa.string()),
        pa.field("decision", pa.string()),
    ]
)


@dataclass
class IdentityRefresh:
    snapshot: Path
    customers: int
    records: int
    new_batches: int
    ignored: dict[str, int] = field(default_factory=dict)  # "phone: placeholder phone" → rows
    refused_keys: dict[str, int] = field(default_factory=dict)  # stage → keys refused as merge keys
    redirects: int = 0
    seconds: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)


def _cached_batches(cache: Path) -> set[str]:
    manifest = cache / "processed.json"
    return set(json.loads(manifest.read_text(encoding="utf-8"))) if manifest.exists() else set()


def _extract_new(engine: Engine, state: StateStore, cache: Path) -> int:
    """Extract occurrences of fact batches not seen before into one new cache file; returns batches."""
    done = _cached_batches(cache)
    files: dict[str, list[Path]] = {}
    batches: set[str] = set()
    for kind in KINDS:
        for path in engine.facts.files(kind):
            batch = path.name.rsplit("-", 1)[0]
            if batch not in done:
                files.setdefault(kind, []).append(path)
                batches.add(batch)
    if not batches:
        return 0
    occ = extract_occurrences(engine, files=files, user_id_types=user_id_types(state))
    number = len(list(cache.glob("occ-*.parquet"))) + 1
    target = cache / f"occ-{number:06d}.parquet"
    tmp = target.with_suffix(".tmp")
    pq.write_table(occ, tmp, compression="zstd")
    tmp.replace(target)
    manifest = cache / "processed.json"
    manifest.with_suffix(".tmp").write_text(json.dumps(sorted(done | batches)), encoding="utf-8")
    manifest.with_suffix(".tmp").replace(manifest)
    return len(batches)


def load_occurrences(cache: Path) -> pa.Table:
    """All cached occurrences, the same record/identifier pair from several batches counted once."""
    if not list(cache.glob("occ-*.parquet")):
        return OCCURRENCE_SCHEMA.empty_table()
    con = duckdb.connect()
    return (
        con.sql(
            f"""
            SELECT record_key, kind, source, id_type, scope, raw, key, reason,
                   min(first_seen) AS first_seen, max(last_seen) AS last_seen, sum(n)::BIGINT AS n
            FROM read_parquet('{cache / "occ-*.parquet"}')
            GROUP BY ALL
            ORDER BY record_key, id_type, raw
            """
        )
        .to_arrow_table()
        .cast(OCCURRENCE_SCHEMA)
    )


def _links(state: StateStore) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    with state.connect() as conn:
        rows = conn.execute(
            select(identity_links.c.kind, identity_links.c.key_a, identity_links.c.key_b).where(
                identity_links.c.revoked_at.is_(None)
            )
        ).all()
    must = [(r.key_a, r.key_b) for r in rows if r.kind == "must"]
    cannot = [(r.key_a, r.key_b) for r in rows if r.kind == "cannot"]
    return must, cannot


def refresh_identity(
    state: StateStore,
    engine: Engine,
    derived: DerivedStore,
    *,
    full: bool = False,
    say: Callable[[str], None] = lambda _msg: None,
) -> IdentityRefresh:
    """Bring the OneID snapshot up to date with the facts (and the operator's joins and splits)."""
    started = time.perf_counter()
    cache = derived.cache(AREA, "occurrences")
    if full:
        shutil.rmtree(cache)
        cache = derived.cache(AREA, "occurrences")
    say("extracting identifiers from new facts…")
    new_batches = _extract_new(engine, state, cache)
    occurrences = load_occurrences(cache)
    must, cannot = _links(state)
    say(f"resolving {occurrences.num_rows:,} identifier occurrences…")
    resolution = resolve(occurrences, must_link=must, cannot_link=cannot)
    previous = derived.current(AREA)
    records, redirects = assign_ids(resolution, previous)
    ignored = {
        f"{t}: {reason}": int(n)
        for t, reason, n in duckdb.execute(
            "SELECT id_type, reason, count(*) FROM occurrences WHERE reason IS NOT NULL GROUP BY ALL ORDER BY 3 DESC"
        ).fetchall()
    }
    refused = {
        k.removeprefix("stage ").removesuffix(": refused"): v for k, v in resolution.stats.items() if "refused" in k
    }
    result = IdentityRefresh(
        snapshot=Path(),
        customers=int(resolution.stats.get("customers", 0)),
        records=int(resolution.stats.get("records", 0)),
        new_batches=new_batches,
        ignored=ignored,
        refused_keys=refused,
        redirects=redirects.num_rows,
        stats=resolution.stats,
    )
    snapshot = derived.new_snapshot(AREA)
    result.seconds = time.perf_counter() - started
    write_snapshot(
        snapshot,
        occurrences=occurrences,
        resolution=resolution,
        records=records,
        redirects=redirects,
        matches=MATCH_SCHEMA.empty_table(),
        stats={
            "customers": result.customers,
            "records": result.records,
            "ignored_identifiers": ignored,
            "refused_merge_keys": refused,
            "redirects": result.redirects,
            "operator_links": {"must": len(must), "cannot": len(cannot)},
            "seconds": round(result.seconds, 3),
        },
    )
    derived.publish(AREA, snapshot)
    result.snapshot = snapshot
    return result
