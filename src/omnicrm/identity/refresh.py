"""``omnicrm refresh`` for OneID: extract what is new, resolve everything, publish a snapshot.

Extraction is incremental: occurrences and person attributes of each fact batch are extracted once
and cached (the expensive scan of facts); resolution then runs over all cached occurrences, which is
cheap on arrays, and probabilistic matching (Splink) joins customers that share no key. A full
recompute clears the cache first and, by construction, gives the same answer.
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
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import select

from omnicrm.identity.extract import OCCURRENCE_SCHEMA, extract_occurrences
from omnicrm.identity.probabilistic import MatchSettings, match_records
from omnicrm.identity.profiles import ATTRIBUTE_SCHEMA, customer_profiles, extract_attributes
from omnicrm.identity.resolve import Resolution, resolve
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
    number = len(list(cache.glob("occ-*.parquet"))) + 1
    for prefix, table in (
        ("attr", extract_attributes(engine, files=files)),
        ("occ", extract_occurrences(engine, files=files, user_id_types=user_id_types(state))),
    ):
        target = cache / f"{prefix}-{number:06d}.parquet"
        tmp = target.with_suffix(".tmp")
        pq.write_table(table, tmp, compression="zstd")
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


def load_attributes(cache: Path) -> pa.Table:
    if not list(cache.glob("attr-*.parquet")):
        return ATTRIBUTE_SCHEMA.empty_table()
    con = duckdb.connect()
    return con.sql(f"SELECT DISTINCT * FROM read_parquet('{cache / 'attr-*.parquet'}')").to_arrow_table()


def _probabilistic(
    engine: Engine, cache: Path, occurrences: pa.Table, resolution: Resolution
) -> tuple[pa.Table, tuple[pa.Array, pa.Array] | None]:
    """Match the profiles of customers that share no key; (all scored pairs, record edges to merge)."""
    profiles = customer_profiles(load_attributes(cache), occurrences, resolution.record_keys, resolution.record_comp)
    if profiles.num_rows < 10:
        return MATCH_SCHEMA.empty_table(), None
    backend = "spark" if engine.kind == "spark" else "duckdb"
    result = match_records(profiles, backend=backend, spark=getattr(engine, "spark", None), progress=False)
    scored = result.pairs.filter(pc.greater_equal(result.pairs["match_probability"], MatchSettings().review_threshold))
    # a component is represented by its first record
    first: dict[int, str] = {}
    for key, comp in zip(resolution.record_keys.to_pylist(), resolution.record_comp.tolist(), strict=True):
        first.setdefault(comp, key)
    left = [first[int(c)] for c in scored["record_id_l"].to_pylist()]
    right = [first[int(c)] for c in scored["record_id_r"].to_pylist()]
    merged_ids = {
        (a, b)
        for a, b in zip(result.merged["record_id_l"].to_pylist(), result.merged["record_id_r"].to_pylist(), strict=True)
    }
    decision = [
        "merge" if (a, b) in merged_ids else "review"
        for a, b in zip(scored["record_id_l"].to_pylist(), scored["record_id_r"].to_pylist(), strict=True)
    ]
    matches = pa.table(
        {
            "record_key_l": pa.array(left, pa.string()),
            "record_key_r": pa.array(right, pa.string()),
            "match_probability": scored["match_probability"].cast(pa.float64()),
            "explain": scored["explain"].cast(pa.string()),
            "decision": pa.array(decision, pa.string()),
        },
        schema=MATCH_SCHEMA,
    )
    merge = matches.filter(pc.equal(matches["decision"], "merge"))
    return matches, (merge["record_key_l"].combine_chunks(), merge["record_key_r"].combine_chunks())


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
    probabilistic: bool = True,
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
    matches = MATCH_SCHEMA.empty_table()
    if probabilistic and resolution.stats.get("records", 0):
        say("matching customers that share no identifier…")
        matches, edges = _probabilistic(engine, cache, occurrences, resolution)
        if edges is not None and len(edges[0]):
            resolution = resolve(occurrences, must_link=must, cannot_link=cannot, extra_edges=edges)
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
        matches=matches,
        stats={
            "customers": result.customers,
            "records": result.records,
            "ignored_identifiers": ignored,
            "refused_merge_keys": refused,
            "redirects": result.redirects,
            "operator_links": {"must": len(must), "cannot": len(cannot)},
            "probabilistic": {
                "merged": int(resolution.stats.get("probabilistic: merged", 0)),
                "refused": int(resolution.stats.get("probabilistic: refused", 0)),
                "review": int(pc.sum(pc.equal(matches["decision"], "review")).as_py() or 0),
            },
            "seconds": round(result.seconds, 3),
        },
    )
    derived.publish(AREA, snapshot)
    result.snapshot = snapshot
    return result
