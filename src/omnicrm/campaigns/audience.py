"""Draw a campaign's recipients from a segment snapshot, set-based in DuckDB.

Every member of the snapshot gets one row, so anyone can later ask why a person did or did not get
the message. In order, a member is excluded for being in the global control group, for having asked
for non-personalised marketing only (PIPL art. 24: a segment is a selection by personal
characteristics), for lacking a granted marketing consent on the campaign's consent channel, for
sharing the address with another member (one message per address), or for having reached the
frequency cap across all campaigns. The rest are split at random into treatment and holdout,
stratified: within each value of the stratifying tag exactly round(n × share) are held out. A journey
step draws a few entrants at a time, where round(n × share) would hold out nobody (n = 1, share 0.1):
there each member is held out on their own, when md5(seed, customer id) falls below the share
(``per_person``), so the share holds over all of a step's draws together.

The draws are reproducible: the holdout orders members by md5(campaign seed, customer id); the global
control group by md5(secret salt, quarter, customer id), so it changes each quarter and is the same
for every campaign within one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlalchemy import func, select

from omnicrm.campaigns.definition import Campaign
from omnicrm.consent.audience import consented, non_personalised
from omnicrm.errors import InputError, Problem
from omnicrm.store.schema import campaign_recipients
from omnicrm.store.state import StateStore

__all__ = ["DRAW_SCHEMA", "REASONS", "capped_customers", "draw", "global_control_salt", "quarter_of"]

REASONS = {
    "global_control": "in the global control group this quarter",
    "non_personalised": "asked for non-personalised marketing only",
    "no_consent": "no granted marketing consent on the channel",
    "shared_address": "shares the address with another member, who gets the message",
    "capped": "reached the frequency cap",
    "holdout": "drawn into the campaign's control group",
}
COUNTED = ("pending", "sending", "sent", "in_doubt")

DRAW_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("arm", pa.string()),
        ("reason", pa.string()),
        ("stratum", pa.string()),
        ("address", pa.string()),
        ("timezone", pa.string()),
        ("language", pa.string()),
    ]
)


def quarter_of(moment: dt.datetime) -> str:
    return f"{moment.year}Q{(moment.month - 1) // 3 + 1}"


def global_control_salt(secret: str) -> str:
    """A salt only this merchant knows, so the control group cannot be guessed from customer ids."""
    return hmac.new(secret.encode(), b"omnicrm global control group v1", hashlib.sha256).hexdigest()[:16]


def capped_customers(state: StateStore, cap: tuple[int, int] | None, now: dt.datetime) -> pa.Table:
    """Customers with at least ``cap[0]`` marketing messages sent or queued in the last ``cap[1]`` days."""
    if cap is None:
        return pa.table({"customer_id": pa.array([], pa.int64())})
    messages, days = cap
    r = campaign_recipients.c
    since = now - dt.timedelta(days=days)
    query = (
        select(r.customer_id)
        .where(r.arm == "treatment", r.status.in_(COUNTED), func.coalesce(r.sent_at, r.assigned_at) >= since)
        .group_by(r.customer_id)
        .having(func.count() >= messages)
    )
    with state.connect() as conn:
        ids = conn.execute(query).scalars().all()
    return pa.table({"customer_id": pa.array(ids, pa.int64())})


def draw(
    campaign: Campaign,
    *,
    members: Path | pa.Table,
    state: StateStore,
    identity: Path,
    portrait: Path | None,
    now: dt.datetime,
    global_share: float,
    secret: str,
    address_scope: str | None = None,
    per_person: bool = False,
) -> pa.Table:
    """(customer_id, arm, reason, stratum, address) for every member of ``members``: a snapshot file, or a table
    with a ``customer_id`` column (a journey step's entrants). ``per_person``: hold each out on their own."""
    con = duckdb.connect()
    if isinstance(members, pa.Table):
        con.register("given", members.select(["customer_id"]))
        source = "given"
    else:
        source = "read_parquet($members)"
    con.register("consented", consented(state, identity, campaign.consent_channel, "marketing"))
    con.register("asked", non_personalised(state, identity))
    con.register("capped", capped_customers(state, campaign.cap, now))
    tags = None if portrait is None else portrait / "tags.parquet"
    columns = (
        set()
        if tags is None
        else {c[0] for c in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{tags}')").fetchall()}
    )
    if campaign.stratify_by and campaign.stratify_by not in columns:
        raise InputError(f"campaign {campaign.id}: cannot stratify by unknown tag {campaign.stratify_by!r}",
                         [Problem("name a tag of the portrait", field="stratify_by")])  # fmt: skip
    # column names below come from the file itself (checked above), never from a request
    picked = [f'"{campaign.stratify_by}" AS s' if campaign.stratify_by else "NULL AS s",
              "timezone AS tz" if "timezone" in columns else "NULL AS tz",
              "language AS lang" if "language" in columns else "NULL AS lang"]  # fmt: skip
    tags_join = "" if tags is None else (
        f"LEFT JOIN (SELECT customer_id, {', '.join(picked)} FROM read_parquet('{tags}')) t USING (customer_id)"
    )  # fmt: skip
    stratum = "coalesce(CAST(t.s AS VARCHAR), '')" if tags_join else "''"
    timezone = "nullif(CAST(t.tz AS VARCHAR), 'unknown')" if tags_join else "NULL"
    language = "CASE WHEN t.lang = 'en' THEN 'en' ELSE 'zh' END" if tags_join else "'zh'"
    params: dict[str, object] = {
        "seed": campaign.seed,
        "share": campaign.holdout_share,
        "gshare": global_share if campaign.use_global_control else 0.0,
        "gsalt": global_control_salt(secret) + quarter_of(now),
    }
    if not isinstance(members, pa.Table):
        params["members"] = str(members)
    held = "rn <= round(n * $share)"
    if per_person:
        held = "('0x' || substr(md5($seed || customer_id::VARCHAR), 1, 8))::BIGINT < $share * 4294967296"
    # only addresses of the channel's own app: an openid is unique per WeChat app id
    scope_filter = ""
    if address_scope is not None:
        params["scope"] = address_scope
        scope_filter = "AND split_part(c.key, ':', 2) = $scope"
    sql = f"""
        WITH members AS (SELECT DISTINCT customer_id::BIGINT AS customer_id FROM {source}),
        addr AS (SELECT c.customer_id, min(c.key) AS key FROM consented c
                 WHERE c.customer_id IN (SELECT customer_id FROM members) {scope_filter}
                 GROUP BY c.customer_id),
        owner AS (SELECT key, min(customer_id) AS owner FROM addr GROUP BY key),
        base AS (
            SELECT m.customer_id, a.key AS address, {stratum} AS stratum, {timezone} AS timezone,
                {language} AS language,
                CASE WHEN $gshare > 0 AND ('0x' || substr(md5($gsalt || m.customer_id::VARCHAR), 1, 8))::BIGINT
                          < $gshare * 4294967296 THEN 'global_control'
                     WHEN np.customer_id IS NOT NULL THEN 'non_personalised'
                     WHEN a.key IS NULL THEN 'no_consent'
                     WHEN o.owner <> m.customer_id THEN 'shared_address'
                     WHEN cp.customer_id IS NOT NULL THEN 'capped'
                END AS reason
            FROM members m
            LEFT JOIN addr a USING (customer_id)
            LEFT JOIN owner o ON o.key = a.key
            LEFT JOIN asked np ON np.customer_id = m.customer_id
            LEFT JOIN capped cp ON cp.customer_id = m.customer_id
            {tags_join}
        ),
        ranked AS (
            SELECT *, row_number() OVER (PARTITION BY stratum ORDER BY md5($seed || customer_id::VARCHAR)) AS rn,
                   count(*) OVER (PARTITION BY stratum) AS n
            FROM base WHERE reason IS NULL
        )
        SELECT customer_id,
               CASE WHEN {held} THEN 'holdout' ELSE 'treatment' END AS arm,
               CASE WHEN {held} THEN 'holdout' END AS reason,
               stratum, address, timezone, language
        FROM ranked
        UNION ALL
        SELECT customer_id, 'excluded', reason, stratum, address, timezone, language FROM base WHERE reason IS NOT NULL
        ORDER BY customer_id"""
    return con.sql(sql, params=params).to_arrow_table().cast(DRAW_SCHEMA)
