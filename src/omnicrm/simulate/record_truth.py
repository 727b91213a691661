"""Which simulated person is behind each OneID record, for accuracy tests and benchmarks.

Orders are known by order number; every other record by the identifiers it carries that the ground
truth ties to exactly one person (family phones and placeholders are ambiguous and not used).
Records whose identifiers point at different people are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb
import pyarrow as pa

__all__ = ["record_persons"]

# ground-truth identifier type → OneID identifier type
_TYPES = {"tmall_nick": "marketplace_nick", "jd_account": "marketplace_nick", "device_id": "anonymous_id"}
# ground-truth order channel → the source the demo imports that channel's orders under
DEMO_ORDER_SOURCES = {"tmall": "tmall", "jd": "jd", "store": "pos"}


def record_persons(
    occurrences: pa.Table, truth_dir: Path, order_sources: Mapping[str, str] = DEMO_ORDER_SOURCES
) -> pa.Table:
    """(record_key, person_id) for every record whose person the ground truth determines."""
    truth = Path(truth_dir)
    channels = pa.table({"channel": list(order_sources), "source": list(order_sources.values())})
    types = pa.table({"truth_type": list(_TYPES), "id_type": list(_TYPES.values())})
    con = duckdb.connect()
    con.register("occ", occurrences)
    con.register("channels", channels)
    con.register("types", types)
    return con.sql(
        f"""
        WITH by_order AS (
            SELECT 'o:' || c.source || ':' || o.order_no AS record_key, o.person_id
            FROM read_parquet('{truth / "orders.parquet"}') o JOIN channels c USING (channel)
        ),
        ids AS (
            SELECT coalesce(t.id_type, i.id_type) AS id_type, i.value, i.person_id
            FROM read_parquet('{truth / "identifiers.parquet"}') i LEFT JOIN types t ON t.truth_type = i.id_type
            WHERE i.shared_by = 1 AND i.note <> 'placeholder'
        ),
        by_id AS (
            SELECT o.record_key, min(ids.person_id) AS person_id
            FROM occ o JOIN ids ON ids.id_type = o.id_type AND ids.value = o.raw
            WHERE o.record_key NOT IN (SELECT record_key FROM by_order)
            GROUP BY o.record_key
            HAVING count(DISTINCT ids.person_id) = 1
        )
        SELECT record_key, person_id FROM by_order WHERE record_key IN (SELECT record_key FROM occ)
        UNION ALL SELECT record_key, person_id FROM by_id
        """
    ).to_arrow_table()
