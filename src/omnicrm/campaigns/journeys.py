"""Journeys: triggered multi-step flows — a trigger that enters a customer, ordered steps, an exit rule.

Example: a customer's first order is a Double 11 one → on day 3 a WeChat care message → on day 14, if
they have not ordered again, an SMS coupon → out of the journey as soon as they buy.

Each step is backed by a campaign row of its own (``campaigns.journey_id``) with its channel, consent
channel, content, holdout share, cap and quiet hours. So a step's recipients go through the same
exclusions (global control, non-personalised, consent, shared address, frequency cap), the same
crash-safe sender, the same send log and the same ``measure_campaign`` as any campaign; only where the
recipients come from differs: a journey's entrants whose step is due, a few at a time
(``omnicrm.campaigns.journey_flow.advance``), instead of a segment snapshot at launch. A step campaign
is ``sending`` while its journey is live, the sender never marks it done, and it cannot be launched on
its own. Its ``segment_id`` names a segment made for the journey that says, as a segment rule, which
orders the trigger listens for (the campaigns table requires one; its members are not the recipients).

Status: draft → live (``start``) → stopped (``stop``, final). A customer enters a journey once.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy import delete, func, insert, select, update

from omnicrm.campaigns.content import Content, compile_content
from omnicrm.campaigns.definition import (
    CampaignSpec,
    consent_channel_for,
    create_campaign,
    parse_cap,
    parse_quiet_hours,
)
from omnicrm.campaigns.launch import Marketing
from omnicrm.campaigns.links import extract_links, register_links
from omnicrm.campaigns.log import log_summary
from omnicrm.errors import Conflict, InputError, NotFound, OmnicrmError, Problem
from omnicrm.segments.saved import create_segment
from omnicrm.store.schema import campaign_recipients, campaigns, journey_entries, journeys, segments
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "CONDITIONS", "ORDER_CHANNELS", "PROMOTIONS", "STATUSES", "TRIGGERS", "ExitSpec", "Journey", "JourneySpec",
    "Step", "StepSpec", "TriggerSpec", "create_journey", "get_journey", "journey_summary", "list_journeys",
    "start_journey", "stop_journey", "trigger_rule",
]  # fmt: skip

STATUSES = ("draft", "live", "stopped")
TRIGGERS = ("first_order", "order")
CONDITIONS = ("no_order_since_entry",)
PROMOTIONS = ("double11", "double12", "618", "other")  # the orders' promotion kinds (portrait.columns)
ORDER_CHANNELS = ("marketplace", "web", "wechat", "store")  # where an order was placed


class TriggerSpec(BaseModel):
    """What enters a customer: their first paid order ever (``first_order``: a new customer) or any paid order
    (``order``), narrowed to the order's promotion, channel (where it was placed) and source."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["first_order", "order"]
    promotion: Literal["double11", "double12", "618", "other"] | None = None
    channel: Literal["marketplace", "web", "wechat", "store"] | None = None
    source: str | None = Field(None, min_length=1, max_length=64, description="e.g. tmall, jd, pos")


class ExitSpec(BaseModel):
    """What takes an entered customer out: ``purchase`` = any paid order after entry, on any channel."""

    model_config = ConfigDict(extra="forbid")

    on: Literal["purchase"]


class StepSpec(BaseModel):
    """One step: when (days after entry), on what condition, and the campaign fields of its message."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=128)
    after_days: int = Field(ge=0, le=365)
    condition: Literal["no_order_since_entry"] | None = None
    channel: str = Field(description="Name of a configured channel.")
    consent_channel: str | None = None
    content: dict[str, Any]
    holdout_share: float = Field(0.1, ge=0.0, le=0.5)
    use_global_control: bool = True
    frequency_cap: str | None = None
    quiet_hours: str | None = None
    conversion_days: int = Field(14, ge=1, le=365)


class JourneySpec(BaseModel):
    """What a user submits to create a journey."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    trigger: TriggerSpec
    exit: ExitSpec | None = None
    steps: list[StepSpec] = Field(min_length=1, max_length=10, description="In the order of their days.")


@dataclass(frozen=True)
class Step:
    """A step as stored: its campaign, its day after entry and its condition."""

    campaign_id: int
    after_days: int
    condition: str | None


@dataclass
class Journey:
    """A journey as stored."""

    id: int
    name: str
    status: str
    trigger: dict[str, Any]
    exit: dict[str, Any] | None
    steps: list[Step]
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    started_at: dt.datetime | None
    evaluated_until: dt.datetime | None

    def as_dict(self) -> dict[str, Any]:
        def iso(value: dt.datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id, "name": self.name, "status": self.status, "trigger": self.trigger, "exit": self.exit,
            "steps": [{"campaign_id": s.campaign_id, "after_days": s.after_days, "condition": s.condition}
                      for s in self.steps],
            "created_by": self.created_by, "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
            "started_at": iso(self.started_at), "evaluated_until": iso(self.evaluated_until),
        }  # fmt: skip


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """A time of the state store in UTC (SQLite hands back naive UTC times)."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _journey(row: Any) -> Journey:
    steps = [Step(int(s["campaign_id"]), int(s["after_days"]), s.get("condition")) for s in json.loads(row.steps)]
    return Journey(
        int(row.id), row.name, row.status, json.loads(row.trigger), None if row.exit is None else json.loads(row.exit),
        steps, row.created_by, utc(row.created_at) or utcnow(), utc(row.updated_at) or utcnow(), utc(row.started_at),
        utc(row.evaluated_until),
    )  # fmt: skip


def _place(loc: Sequence[int | str]) -> str:
    """A pydantic location as a path: ('steps', 1, 'channel') → steps[1].channel."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problem(error: ErrorDetails, prefix: str = "") -> Problem:
    where = prefix + _place(error["loc"])
    reason = error["msg"]
    if error["type"] == "literal_error":  # say what was given: "Input should be 'first_order' or 'order', not 'x'"
        reason += f", not {error['input']!r}"
    return Problem(reason, field=where or None)


def _prefixed(exc: OmnicrmError, prefix: str) -> list[Problem]:
    """The problems of ``exc`` placed under ``prefix``: ``content.zh.body`` → ``steps[0].content.zh.body``."""
    return [Problem(p.reason, field=prefix + (p.field or "").lstrip("."), index=p.index, line=p.line)
            for p in exc.problems] or [Problem(exc.message, field=prefix.rstrip("."))]  # fmt: skip


def _check_steps(system: Marketing, spec: JourneySpec) -> list[Problem]:
    """Every problem of every step's campaign fields, named by place (``steps[1].content.zh.body``), found before
    anything is stored."""
    problems: list[Problem] = []
    known = sorted(system.channels)
    for i, step in enumerate(spec.steps):
        at = f"steps[{i}]."
        if i and step.after_days < spec.steps[i - 1].after_days:
            before = spec.steps[i - 1].after_days
            problems.append(Problem(f"day {step.after_days} comes before the previous step's day {before}: "
                                    "list the steps by day", field=at + "after_days"))  # fmt: skip
        if step.channel not in known:
            problems.append(Problem(f"no channel named {step.channel!r} is configured (configured: "
                                    f"{', '.join(known) or 'none'})", field=at + "channel"))  # fmt: skip
        else:
            try:
                consent_channel_for(system.channels, step.channel, step.consent_channel)
            except InputError as exc:
                problems += _prefixed(exc, at)
        try:  # the content's templates, and its links (a tracked link cannot hold a template field)
            extract_links(compile_content(Content.model_validate(step.content)), system.settings.public_url)
        except ValidationError as exc:
            problems += [_problem(e, at + "content.") for e in exc.errors()]
        except InputError as exc:
            problems += _prefixed(exc, at)
        for parse, value in ((parse_cap, step.frequency_cap), (parse_quiet_hours, step.quiet_hours)):
            try:
                parse(value)
            except InputError as exc:
                problems += _prefixed(exc, at)
    return problems


def trigger_rule(trigger: TriggerSpec) -> dict[str, Any]:
    """The trigger's orders as a segment rule (customers who ever placed such an order): the label of the segment
    the step campaigns name."""
    where = {k: v for k, v in (("promotion", trigger.promotion), ("channel", trigger.channel),
                               ("source", trigger.source)) if v is not None}  # fmt: skip
    return {"did": "order", "where": where} if where else {"did": "order"}


def create_journey(system: Marketing, spec: JourneySpec | dict[str, Any], *, by: str) -> Journey:
    """Validate every part first (naming the field of each problem), then store a draft journey with one draft
    campaign per step. Should storing fail half-way, the step campaigns and the segment made are removed again."""
    if not isinstance(spec, JourneySpec):
        try:
            spec = JourneySpec.model_validate(spec)
        except ValidationError as exc:
            raise InputError("the journey is not valid", [_problem(e) for e in exc.errors()]) from None
    if problems := _check_steps(system, spec):
        raise InputError("the journey's steps are not valid", problems)
    segment = create_segment(
        system.state, system.segment_engine(), name=f"journey: {spec.name}"[:128], rule=trigger_rule(spec.trigger),
        description=f"Orders the trigger of journey '{spec.name}' listens for; its steps' campaigns name this "
                    "segment, but send to the journey's entrants.", schedule="manual", by=by,
    )  # fmt: skip
    made: list[int] = []
    try:
        for i, step in enumerate(spec.steps):
            fields = step.model_dump(exclude={"name", "after_days", "condition"})
            name = step.name or f"{spec.name} · step {i + 1}"
            as_campaign = CampaignSpec(name=name[:128], segment_id=segment.id, **fields)
            try:  # a check of the campaign's own that the ones above lack, still named by its step
                campaign = create_campaign(system.state, system.channels, system.settings, as_campaign, by=by)
            except InputError as exc:
                raise InputError("the journey's steps are not valid", _prefixed(exc, f"steps[{i}].")) from None
            made.append(campaign.id)
        steps = [{"campaign_id": c, "after_days": s.after_days, "condition": s.condition}
                 for c, s in zip(made, spec.steps, strict=True)]  # fmt: skip
        now = utcnow()
        with system.state.begin() as conn:
            journey_id = conn.execute(
                insert(journeys).values(
                    name=spec.name.strip(), status="draft", trigger=spec.trigger.model_dump_json(exclude_none=True),
                    exit=None if spec.exit is None else spec.exit.model_dump_json(), steps=json.dumps(steps),
                    created_by=by, created_at=now, updated_at=now,
                ).returning(journeys.c.id)
            ).scalar_one()  # fmt: skip
            conn.execute(update(campaigns).where(campaigns.c.id.in_(made)).values(journey_id=journey_id))
    except BaseException:
        with system.state.begin() as conn:  # made just now and named by nothing else: gone without a trace
            conn.execute(delete(campaigns).where(campaigns.c.id.in_(made), campaigns.c.status == "draft"))
            conn.execute(delete(segments).where(segments.c.id == segment.id))
        raise
    return get_journey(system.state, int(journey_id))


def get_journey(state: StateStore, journey_id: int) -> Journey:
    with state.connect() as conn:
        row = conn.execute(select(journeys).where(journeys.c.id == journey_id)).first()
    if row is None:
        raise NotFound(f"no journey {journey_id}", [Problem("unknown journey", field="journey_id")])
    return _journey(row)


def list_journeys(state: StateStore, *, limit: int | None = 50, offset: int = 0, status: str | None = None
                  ) -> tuple[list[Journey], int]:  # fmt: skip
    """One page of journeys (all, or those of one status), newest first, and how many there are; ``limit`` None:
    every one."""
    where = [] if status is None else [journeys.c.status == status]
    with state.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(journeys).where(*where)).scalar_one())
        rows = conn.execute(select(journeys).where(*where).order_by(journeys.c.id.desc()).limit(limit)
                            .offset(offset)).all()  # fmt: skip
    return [_journey(r) for r in rows], total


def start_journey(system: Marketing, journey_id: int, *, now: dt.datetime | None = None) -> Journey:
    """Go live: from now on, trigger facts enter customers (facts before ``now`` never do) and the step campaigns
    are ``sending``. Their links are registered first, as at a campaign's launch."""
    now = now or utcnow()
    journey = get_journey(system.state, journey_id)
    if journey.status != "draft":
        raise Conflict(f"journey {journey_id} is {journey.status}; only a draft journey can start")
    ids = [s.campaign_id for s in journey.steps]
    with system.state.connect() as conn:
        steps = conn.execute(select(campaigns.c.id, campaigns.c.status, campaigns.c.content, campaigns.c.channel)
                             .where(campaigns.c.id.in_(ids))).all()  # fmt: skip
    for row in steps:
        if row.status != "draft":
            raise Conflict(f"journey {journey_id}: its step campaign {row.id} is {row.status}, not draft")
        system.channels[row.channel]  # a channel removed from the settings since: say so now
        links = extract_links(compile_content(json.loads(row.content)), system.settings.public_url)
        register_links(system.state, int(row.id), links)
    with system.state.begin() as conn:
        moved = conn.execute(
            update(journeys).where(journeys.c.id == journey_id, journeys.c.status == "draft")
            .values(status="live", started_at=now, evaluated_until=now, updated_at=now)
        ).rowcount  # fmt: skip
        if not moved:
            raise Conflict(f"journey {journey_id} was started or stopped meanwhile")
        conn.execute(update(campaigns).where(campaigns.c.id.in_(ids), campaigns.c.status == "draft")
                     .values(status="sending", launched_at=now, updated_at=now))  # fmt: skip
    return get_journey(system.state, journey_id)


def stop_journey(system: Marketing, journey_id: int, *, now: dt.datetime | None = None) -> Journey:
    """Stop for good: nobody enters any more, active entries exit (reason ``stopped``), and each step campaign ends
    — ``done`` when nothing of it is left to send, else ``cancelled`` (its queued messages are not sent; the steps
    of a journey that never went live are all cancelled). What was sent stays in the send log and is measured."""
    now = now or utcnow()
    journey = get_journey(system.state, journey_id)
    if journey.status == "stopped":
        raise Conflict(f"journey {journey_id} is already stopped")
    ids = [s.campaign_id for s in journey.steps]
    r, e = campaign_recipients.c, journey_entries.c
    with system.state.begin() as conn:
        moved = conn.execute(
            update(journeys).where(journeys.c.id == journey_id, journeys.c.status.in_(("draft", "live")))
            .values(status="stopped", updated_at=now)
        ).rowcount  # fmt: skip
        if not moved:
            raise Conflict(f"journey {journey_id} was stopped meanwhile")
        conn.execute(update(journey_entries).where(e.journey_id == journey_id, e.status == "active")
                     .values(status="exited", exit_reason="stopped", ended_at=now, next_at=None))  # fmt: skip
        open_ = select(r.campaign_id).where(r.campaign_id.in_(ids), r.status.in_(("pending", "sending"))).distinct()
        unfinished = set(ids) if journey.status == "draft" else set(conn.execute(open_).scalars().all())
        for status, which in (("cancelled", unfinished), ("done", set(ids) - unfinished)):
            conn.execute(update(campaigns).where(campaigns.c.id.in_(which),
                                                 campaigns.c.status.in_(("draft", "scheduled", "sending")))
                         .values(status=status, finished_at=now, updated_at=now, runner=None))  # fmt: skip
    return get_journey(system.state, journey_id)


def journey_summary(state: StateStore, journey_id: int) -> dict[str, Any]:
    """The journey with its entries by status (and exit reason) and, per step, its campaign's status, how many
    entries reached it and its send log by arm, status and exclusion reason."""
    journey = get_journey(state, journey_id)
    e = journey_entries.c
    with state.connect() as conn:
        counts = conn.execute(select(e.status, e.exit_reason, func.count()).where(e.journey_id == journey_id)
                              .group_by(e.status, e.exit_reason)).all()  # fmt: skip
        per_step = select(e.step, func.count()).where(e.journey_id == journey_id).group_by(e.step)
        reached = {int(k): int(n) for k, n in conn.execute(per_step)}
        mine = campaigns.c.id.in_([s.campaign_id for s in journey.steps])
        status_of = {int(i): str(s) for i, s in conn.execute(select(campaigns.c.id, campaigns.c.status).where(mine))}
    entries: dict[str, Any] = {"total": 0, "active": 0, "exited": 0, "completed": 0, "exit_reasons": {}}
    for status, reason, n in counts:
        entries["total"] += int(n)
        entries[status] = entries.get(status, 0) + int(n)
        if status == "exited":
            entries["exit_reasons"][reason] = entries["exit_reasons"].get(reason, 0) + int(n)
    steps = [
        {"index": i, "campaign_id": s.campaign_id, "after_days": s.after_days, "condition": s.condition,
         "campaign_status": status_of.get(s.campaign_id), "reached": sum(n for k, n in reached.items() if k > i),
         "log": log_summary(state, s.campaign_id)}
        for i, s in enumerate(journey.steps)
    ]  # fmt: skip
    return {**journey.as_dict(), "entries": entries, "steps": steps}
