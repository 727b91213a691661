"""Launch a campaign: freeze its segment, draw the recipients, and write the send log in one transaction.

Either the campaign is launched with every member's row (treatment, holdout or excluded with the
reason) or it is not launched at all; two launches of one campaign cannot both win (a compare-and-set
on its status inside the same transaction). A campaign with a future ``send_at`` is only scheduled;
``launch_due`` launches the scheduled ones whose time has come.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.progress import Progress
from sqlalchemy import insert, select, update

from omnicrm.campaigns.audience import draw
from omnicrm.campaigns.definition import Campaign, get_campaign, set_status
from omnicrm.channels.base import idempotency_key
from omnicrm.channels.registry import Channels
from omnicrm.errors import Conflict, NotFound
from omnicrm.segments.evaluate import SegmentEngine
from omnicrm.segments.saved import get_segment, take_snapshot
from omnicrm.settings import Settings
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import campaign_recipients, campaigns, segment_snapshots
from omnicrm.store.state import StateStore, utcnow

__all__ = ["Marketing", "address_scope", "launch", "launch_due", "write_recipients"]

_CHUNK = 20_000


@dataclass
class Marketing:
    """What campaigns need from the running system: settings, the state store and the configured channels."""

    settings: Settings
    state: StateStore
    channels: Channels

    @classmethod
    def of(cls, settings: Settings, state: StateStore) -> Marketing:
        """The system with the channels of ``settings`` (use it in a ``with`` block to close their connections)."""
        from omnicrm.channels.registry import for_settings

        return cls(settings, state, for_settings(settings))

    def __enter__(self) -> Marketing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.channels.close()

    @property
    def derived(self) -> DerivedStore:
        return DerivedStore(self.settings.derived_dir)

    def segment_engine(self, now: dt.datetime | None = None) -> SegmentEngine:
        return SegmentEngine(Engine(FactsStore(self.settings.facts_dir)), self.derived, now=now, state=self.state)


def write_recipients(
    conn: Any, campaign_id: int, drawn: pa.Table, now: dt.datetime, progress: Progress | None = None,
    *, step: str = "1",
) -> None:  # fmt: skip
    """Add a draw's rows to the send log of ``campaign_id`` in the caller's transaction (``assigned_at = now``):
    treatment rows pending, the others with status none. Used by a launch and by each round of a journey step.

    A launch writes a row per segment member (a million for a large segment), so the rows are built column by
    column and handed to the driver's ``executemany`` through one INSERT compiled for the connection's dialect,
    each value passed through its column type's bind processor (the constants once) — what
    ``conn.execute(insert(campaign_recipients), rows)`` does row by row, at more than twice the cost."""
    task = None if progress is None else progress.add_task(f"campaign {campaign_id}: send log", total=drawn.num_rows)
    names = ("campaign_id", "step", "customer_id", "arm", "reason", "stratum", "address", "timezone", "language",
             "status", "idempotency_key", "attempts", "units", "cost_micros", "assigned_at")  # fmt: skip
    dialect = conn.dialect
    compiled = insert(campaign_recipients).compile(dialect=dialect, column_keys=list(names))
    order = (compiled.positiontup or names) if compiled.positional else names
    bind = {n: campaign_recipients.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names}

    def typed(name: str, values: list[Any]) -> list[Any]:
        process = bind[name]
        return values if process is None else [process(v) for v in values]

    constants = {"campaign_id": campaign_id, "step": step, "attempts": 0, "units": 0,
                 "cost_micros": 0, "assigned_at": now}  # fmt: skip
    constant = {name: typed(name, [value])[0] for name, value in constants.items()}
    for batch in drawn.to_batches(_CHUNK):
        n = batch.num_rows
        ids, arms = batch.column("customer_id").to_pylist(), batch.column("arm").to_pylist()
        columns = {name: [value] * n for name, value in constant.items()}
        columns |= {
            name: typed(name, batch.column(name).to_pylist())
            for name in ("reason", "stratum", "address", "timezone", "language")
        }
        columns |= {
            "customer_id": typed("customer_id", ids), "arm": typed("arm", arms),
            "status": typed("status", ["pending" if a == "treatment" else "none" for a in arms]),
            "idempotency_key": typed("idempotency_key", [idempotency_key(str(campaign_id), str(c), step) for c in ids]),
        }  # fmt: skip
        rows = list(zip(*(columns[name] for name in order), strict=True))
        if rows and compiled.positional:
            conn.exec_driver_sql(compiled.string, rows)
        elif rows:
            conn.exec_driver_sql(compiled.string, [dict(zip(order, r, strict=True)) for r in rows])
        if progress is not None and task is not None:
            progress.advance(task, len(rows))


def address_scope(system: Marketing, campaign: Campaign) -> str | None:
    """The app id a WeChat address must belong to (an openid is unique per app only); None for other channels."""
    channel = system.channels[campaign.channel]
    if campaign.consent_channel in {"wechat_oa", "wechat_mp"}:
        return channel.settings.credentials.get("app_id") or None
    return None


def launch(system: Marketing, campaign_id: int, *, now: dt.datetime | None = None,
           progress: Progress | None = None) -> dict[str, Any]:  # fmt: skip
    """Launch now (or schedule, if ``send_at`` is ahead); returns the counts of each arm and reason."""
    now = now or utcnow()
    campaign = get_campaign(system.state, campaign_id)
    if campaign.status not in {"draft", "scheduled"}:
        raise Conflict(f"campaign {campaign_id} is {campaign.status}; only a draft or scheduled one can be launched")
    with system.state.connect() as conn:  # a journey's step reaches its journey's entrants, never a whole segment
        journey = conn.execute(select(campaigns.c.journey_id).where(campaigns.c.id == campaign_id)).scalar()
    if journey is not None:
        raise Conflict(f"campaign {campaign_id} is a step of journey {journey}; start the journey instead")
    system.channels[campaign.channel]  # a channel removed from the settings since: say so before drawing
    if campaign.send_at is not None and campaign.send_at > now:
        if campaign.status == "draft":
            set_status(system.state, campaign_id, "scheduled", expect=("draft",))
        return {"campaign_id": campaign_id, "status": "scheduled", "send_at": campaign.send_at.isoformat()}
    try:
        get_segment(system.state, campaign.segment_id)
    except NotFound:
        raise NotFound(f"campaign {campaign_id}: its segment {campaign.segment_id} was deleted; "
                       "choose another segment or cancel the campaign") from None  # fmt: skip
    engine = system.segment_engine(now)
    snap = take_snapshot(system.state, engine, system.derived.area("segments"), campaign.segment_id)
    with system.state.connect() as conn:
        members = Path(conn.execute(select(segment_snapshots.c.file).where(segment_snapshots.c.id == snap["id"]))
                       .scalar_one())  # fmt: skip
    drawn = draw(
        campaign, members=members, state=system.state, identity=engine.identity, portrait=engine.portrait, now=now,
        global_share=system.settings.global_control_share, secret=system.settings.secret_key,
        address_scope=address_scope(system, campaign),
    )  # fmt: skip
    _register_links(system, campaign)
    with system.state.begin() as conn:
        moved = conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id, campaigns.c.status.in_(("draft", "scheduled")))
            .values(status="sending", snapshot_id=snap["id"], launched_at=now, updated_at=now)
        ).rowcount
        if not moved:
            raise Conflict(f"campaign {campaign_id} was launched or cancelled meanwhile")
        write_recipients(conn, campaign_id, drawn, now, progress)
    return {"campaign_id": campaign_id, "status": "sending", "snapshot_id": snap["id"], **summary_of(drawn)}


def summary_of(drawn: pa.Table) -> dict[str, Any]:
    """Counts per arm and per exclusion reason of a draw."""
    arms = drawn.group_by("arm").aggregate([("customer_id", "count")]).to_pylist()
    reasons = drawn.filter(pa.compute.equal(drawn["arm"], "excluded")).group_by("reason").aggregate(
        [("customer_id", "count")]
    ).to_pylist()  # fmt: skip
    return {
        "members": drawn.num_rows,
        "arms": {r["arm"]: r["customer_id_count"] for r in arms},
        "excluded": {r["reason"]: r["customer_id_count"] for r in reasons},
    }


def _register_links(system: Marketing, campaign: Campaign) -> None:
    """Number the campaign's links so each recipient's copy can carry a tracked one."""
    from omnicrm.campaigns.content import compile_content
    from omnicrm.campaigns.links import extract_links, register_links

    links = extract_links(compile_content(campaign.content), system.settings.public_url)
    register_links(system.state, campaign.id, links)


def launch_due(system: Marketing, now: dt.datetime | None = None) -> list[int]:
    """Launch every scheduled campaign whose ``send_at`` has come; returns their ids."""
    now = now or utcnow()
    with system.state.connect() as conn:
        due = conn.execute(
            select(campaigns.c.id).where(campaigns.c.status == "scheduled", campaigns.c.send_at <= now)
        ).scalars().all()  # fmt: skip
    launched = []
    for campaign_id in due:
        try:
            launch(system, int(campaign_id), now=now)
            launched.append(int(campaign_id))
        except Conflict:
            continue
    return launched
