"""Profiles for probabilistic matching: what each record says about its person, and, per customer
found by the deterministic stages, the most common value of each attribute.

Customers that share no key can still be one person (a Tmall buyer with a second nick and a new
phone, a member who moved): their profiles (name, birthday, gender, place, address, phone) go to
Splink (``identity.probabilistic``), and confident matches join them under the same protections.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import duckdb
import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa

from omnicrm.store.engine import Engine

__all__ = ["ATTRIBUTE_SCHEMA", "customer_profiles", "extract_attributes"]

ATTRIBUTE_SCHEMA = pa.schema(
    [
        pa.field("record_key", pa.string()),
        pa.field("name", pa.string()),
        pa.field("gender", pa.string()),
        pa.field("birthday", pa.string()),
        pa.field("province", pa.string()),
        pa.field("city", pa.string()),
        pa.field("district", pa.string()),
        pa.field("address", pa.string()),
    ]
)
_NULL = ibis.null("string")


def _orders(t: ir.Table) -> ir.Table:
    return t.select(
        record_key="o:" + t.source + ":" + t.order_id,
        name=t.buyer_name,
        gender=_NULL,
        birthday=_NULL,
        province=_NULL,
        city=_NULL,
        district=_NULL,
        address=t.address,
    )


def _people(t: ir.Table) -> ir.Table:
    key = t.source_key.fill_null(t.ingest_id + "#" + t.source_line.cast("string"))
    return t.select(
        record_key="p:" + t.source + ":" + key,
        name=t.name,
        gender=t.gender,
        birthday=t.birthday.cast("string"),
        province=t.province,
        city=t.city,
        district=t.district,
        address=t.address,
    )


def extract_attributes(engine: Engine, *, files: Mapping[str, Iterable[Path]] | None = None) -> pa.Table:
    """Person attributes of order and person records (distinct per record), set-based in Ibis."""
    parts = []
    for kind, build in (("order_line", _orders), ("person", _people)):
        chosen = None if files is None else list(files.get(kind, []))
        if chosen == []:
            continue
        parts.append(build(engine.fact_table(kind, chosen)))
    if not parts:
        return ATTRIBUTE_SCHEMA.empty_table()
    union = ibis.union(*parts).distinct()
    return engine.to_arrow(union).select(ATTRIBUTE_SCHEMA.names).cast(ATTRIBUTE_SCHEMA)


def customer_profiles(attributes: pa.Table, occurrences: pa.Table, record_keys: pa.Array, comp: np.ndarray) -> pa.Table:
    """One profile per component that has a name and something to compare it by (record_id = component).

    Each attribute is its most common value, ties going to the smallest, so that the same records
    give the same profile however the batches were split.
    """
    con = duckdb.connect()
    con.register("attrs", attributes)
    con.register("occ", occurrences)
    con.register("comp", pa.table({"record_key": record_keys, "comp": pa.array(comp, pa.int64())}))
    return con.sql(
        """
        WITH a AS (SELECT c.comp, attrs.* FROM attrs JOIN comp c USING (record_key)),
        phones AS (
            SELECT c.comp, mode(regexp_extract(o.key, '[0-9]+$') ORDER BY o.key) AS phone
            FROM occ o JOIN comp c USING (record_key) WHERE o.id_type = 'phone' AND o.key IS NOT NULL GROUP BY 1
        ),
        profile AS (
            SELECT comp,
                   mode(name ORDER BY name) AS name, mode(gender ORDER BY gender) AS gender,
                   mode(birthday ORDER BY birthday) AS birthday, mode(province ORDER BY province) AS province,
                   mode(city ORDER BY city) AS city, mode(district ORDER BY district) AS district,
                   mode(address ORDER BY address) AS address
            FROM a GROUP BY comp
        )
        SELECT p.comp::VARCHAR AS record_id, p.name, p.gender, p.birthday, p.province, p.city, p.district,
               p.address, '+' || ph.phone AS phone
        FROM profile p LEFT JOIN phones ph USING (comp)
        WHERE p.name IS NOT NULL AND (p.birthday IS NOT NULL OR p.address IS NOT NULL)
        ORDER BY p.comp
        """
    ).to_arrow_table()
