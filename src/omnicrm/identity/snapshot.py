"""Customer ids that stay put, and the identity snapshot the rest of omnicrm reads.

Ids are stable across refreshes: a component inherits the id of the previous customer most of whose
records it holds; when two customers merge, the older (smaller) id survives and the other redirects
to it; a split keeps the id on the larger part. New customers get new ids in the order of their
first record key, so a recompute over the same facts gives the same ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from omnicrm.identity.resolve import Resolution
from omnicrm.store.derived import CUSTOMER_ROW_GROUP

__all__ = ["SNAPSHOT_FILES", "assign_ids", "write_snapshot"]

SNAPSHOT_FILES = ("records", "identifiers", "occurrences", "redirects", "matches")


def assign_ids(resolution: Resolution, previous: Path | None) -> tuple[pa.Table, pa.Table]:
    """(records: record_key → customer_id, redirects: old_id → customer_id) for this resolution."""
    con = duckdb.connect()
    con.register(
        "comp", pa.table({"record_key": resolution.record_keys, "comp": pa.array(resolution.record_comp, pa.int64())})
    )
    if previous is not None:
        con.execute(
            f"CREATE VIEW prev AS SELECT record_key, customer_id FROM read_parquet('{previous / 'records.parquet'}')"
        )
        con.execute(f"CREATE VIEW prev_redirects AS SELECT * FROM read_parquet('{previous / 'redirects.parquet'}')")
    else:
        con.execute("CREATE VIEW prev AS SELECT ''::VARCHAR AS record_key, 0::BIGINT AS customer_id WHERE false")
        con.execute("CREATE VIEW prev_redirects AS SELECT 0::BIGINT AS old_id, 0::BIGINT AS customer_id WHERE false")
    con.execute(
        """
        CREATE TABLE votes AS
            SELECT c.comp, p.customer_id AS prev_id, count(*) AS n
            FROM comp c JOIN prev p USING (record_key) GROUP BY ALL;
        -- each previous id goes to the component holding most of its records
        CREATE TABLE claims AS
            SELECT prev_id, arg_min(comp, (-n, comp)) AS comp FROM votes GROUP BY prev_id;
        CREATE TABLE kept AS SELECT comp, min(prev_id) AS customer_id FROM claims GROUP BY comp;
        CREATE TABLE firsts AS
            SELECT comp, min(record_key) AS first_key FROM comp WHERE comp NOT IN (SELECT comp FROM kept) GROUP BY comp;
        CREATE TABLE fresh AS
            SELECT comp, (SELECT coalesce(max(x), 0) FROM (
                        SELECT customer_id AS x FROM prev UNION ALL SELECT old_id FROM prev_redirects
                        UNION ALL SELECT customer_id FROM prev_redirects))
                   + row_number() OVER (ORDER BY first_key) AS customer_id
            FROM firsts;
        CREATE TABLE final AS SELECT * FROM kept UNION ALL SELECT * FROM fresh;
        -- ids that lost: redirect to where their records went; earlier redirects follow them
        CREATE TABLE lost AS
            SELECT c.prev_id AS old_id, f.customer_id
            FROM claims c JOIN final f USING (comp) WHERE c.prev_id <> f.customer_id;
        """
    )
    records = con.sql(
        "SELECT c.record_key, f.customer_id FROM comp c JOIN final f USING (comp) ORDER BY c.record_key"
    ).to_arrow_table()
    redirects = con.sql(
        """
        SELECT old_id, customer_id FROM lost
        UNION ALL
        SELECT r.old_id, coalesce(l.customer_id, r.customer_id) AS customer_id
        FROM prev_redirects r LEFT JOIN lost l ON l.old_id = r.customer_id
        ORDER BY old_id
        """
    ).to_arrow_table()
    return records, redirects


def write_snapshot(
    path: Path,
    *,
    occurrences: pa.Table,
    resolution: Resolution,
    records: pa.Table,
    redirects: pa.Table,
    matches: pa.Table,
    stats: dict[str, Any],
) -> None:
    """Write the snapshot's tables (Parquet) and stats (JSON) into ``path``."""
    con = duckdb.connect()
    con.register("occ", occurrences)
    con.register("rec", records)
    con.register(
        "keys",
        pa.table(
            {
                "key": resolution.keys,
                "merge_stage": pa.array(resolution.key_stage, pa.int64()),
                "refusal": pa.array(resolution.key_refusal, pa.string()),
            }
        ),
    )
    # by customer in small row groups: one customer's look-up (the 360, resolve_id) reads one or two of them
    con.execute(
        f"COPY (SELECT * FROM rec ORDER BY customer_id, record_key) TO '{path / 'records.parquet'}' "
        f"(FORMAT parquet, ROW_GROUP_SIZE {CUSTOMER_ROW_GROUP})"
    )
    con.execute(
        f"COPY (SELECT * FROM occ ORDER BY record_key, key) TO '{path / 'occurrences.parquet'}' (FORMAT parquet)"
    )
    con.register("red", redirects)
    con.execute(f"COPY (SELECT * FROM red) TO '{path / 'redirects.parquet'}' (FORMAT parquet)")
    con.register("mat", matches)
    con.execute(f"COPY (SELECT * FROM mat) TO '{path / 'matches.parquet'}' (FORMAT parquet)")
    con.execute(
        f"""
        COPY (
            WITH held AS (
                SELECT r.customer_id, o.key, any_value(o.id_type) AS id_type, any_value(o.scope) AS scope,
                       count(DISTINCT o.record_key) AS n_records, min(o.first_seen) AS first_seen,
                       max(o.last_seen) AS last_seen, string_agg(DISTINCT o.source, ',' ORDER BY o.source) AS sources
                FROM occ o JOIN rec r USING (record_key)
                WHERE o.key IS NOT NULL
                GROUP BY r.customer_id, o.key
            )
            SELECT h.*, regexp_extract(h.key, '^[^:]*:[^:]*:(.*)$', 1) AS value, k.merge_stage, k.refusal,
                   count(*) OVER (PARTITION BY h.key) AS holders
            FROM held h JOIN keys k USING (key)
            ORDER BY h.customer_id, k.merge_stage, h.key
        ) TO '{path / "identifiers.parquet"}' (FORMAT parquet, ROW_GROUP_SIZE {CUSTOMER_ROW_GROUP})
        """
    )
    (path / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
