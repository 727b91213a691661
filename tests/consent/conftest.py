"""Hand-made identity snapshots for consent tests: customers, their identifier keys, redirects."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from omnicrm.store.derived import DerivedStore


def publish_identity(
    derived_dir: Path,
    holders: list[tuple[int, str]],
    redirects: list[tuple[int, int]] = (),  # type: ignore[assignment]
) -> Path:
    """Publish an identity snapshot where customer ``c`` holds key ``k`` for each (c, k); returns its folder."""
    derived = DerivedStore(derived_dir)
    snap = derived.new_snapshot("identity")
    customers = [c for c, _ in holders]
    keys = [k for _, k in holders]
    pq.write_table(
        pa.table(
            {
                "customer_id": pa.array(customers, pa.int64()),
                "key": keys,
                "id_type": [k.split(":", 1)[0] for k in keys],
                "scope": [k.split(":", 2)[1] for k in keys],
                "value": [k.split(":", 2)[2] for k in keys],
            }
        ),
        snap / "identifiers.parquet",
    )
    ids = sorted(set(customers))
    pq.write_table(
        pa.table({"record_key": [f"person:test:{c}" for c in ids], "customer_id": pa.array(ids, pa.int64())}),
        snap / "records.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "old_id": pa.array([o for o, _ in redirects], pa.int64()),
                "customer_id": pa.array([n for _, n in redirects], pa.int64()),
            }
        ),
        snap / "redirects.parquet",
    )
    derived.publish("identity", snap)
    return snap
