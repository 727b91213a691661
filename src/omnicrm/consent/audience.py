"""Who may be sent what now: set-based joins of the consent ledger's current states with an identity snapshot.

The state store computes the latest record per (subject, channel, purpose) (a window query, on
SQLite and PostgreSQL alike); DuckDB joins the granted subjects with the snapshot's
``identifiers.parquet`` on the identifier key. Consent follows the address: whoever holds the key in
the snapshot is reachable through it, so merges and splits never lose or move a withdrawal. A key
held by two customers (a family phone) appears once per holder; a sender should send once per
address.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
from sqlalchemy import select

from omnicrm.consent.ledger import latest_query
from omnicrm.consent.personalisation import latest_choices
from omnicrm.consent.subjects import CHANNELS, check_channel, check_purpose
from omnicrm.errors import NotFound
from omnicrm.store.state import StateStore

__all__ = ["AUDIENCE_SCHEMA", "consented", "non_personalised"]

AUDIENCE_SCHEMA = pa.schema([("customer_id", pa.int64()), ("channel", pa.string()), ("key", pa.string())])


def _identifiers(snapshot: Path | None) -> Path:
    if snapshot is None or not (snapshot / "identifiers.parquet").exists():
        raise NotFound("there is no identity snapshot yet; run `omnicrm refresh` first")
    return snapshot / "identifiers.parquet"


def _granted_subjects(state: StateStore, channel: str, purpose: str) -> pa.Table:
    latest = latest_query(channel=channel, purpose=purpose).subquery()
    with state.connect() as conn:
        subjects = conn.execute(select(latest.c.subject).where(latest.c.granted.is_(True))).scalars().all()
    return pa.table({"subject": pa.array(subjects, pa.string())})


def consented(state: StateStore, snapshot: Path | None, channel: str, purpose: str) -> pa.Table:
    """(customer_id, channel, key) of every address whose latest ``purpose`` consent on ``channel`` is a grant."""
    check_channel(channel)
    check_purpose(purpose)
    identifiers = _identifiers(snapshot)
    con = duckdb.connect()
    con.register("granted", _granted_subjects(state, channel, purpose))
    return (
        con.sql(
            f"""SELECT DISTINCT i.customer_id::BIGINT AS customer_id, $channel AS channel, i.key
                FROM read_parquet('{identifiers}') i JOIN granted g ON g.subject = i.key
                WHERE i.id_type IN (SELECT unnest($types::VARCHAR[]))
                ORDER BY customer_id, i.key""",
            params={"channel": channel, "types": list(CHANNELS[channel])},
        )
        .to_arrow_table()
        .cast(AUDIENCE_SCHEMA)
    )


def non_personalised(state: StateStore, snapshot: Path | None) -> pa.Table:
    """(customer_id) of every customer whose latest choice on any of their addresses is non-personalised."""
    identifiers = _identifiers(snapshot)
    latest = latest_choices().subquery()
    with state.connect() as conn:
        subjects = conn.execute(select(latest.c.subject).where(latest.c.non_personalised.is_(True))).scalars().all()
    con = duckdb.connect()
    con.register("asked", pa.table({"subject": pa.array(subjects, pa.string())}))
    return (
        con.sql(
            f"""SELECT DISTINCT i.customer_id::BIGINT AS customer_id
                FROM read_parquet('{identifiers}') i JOIN asked a ON a.subject = i.key ORDER BY 1"""
        )
        .to_arrow_table()
        .cast(pa.schema([("customer_id", pa.int64())]))
    )
