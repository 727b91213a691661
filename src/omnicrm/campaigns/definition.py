"""Campaign definitions in the state store: what to send, to which segment, through which channel, how guarded.

A campaign names a saved segment (its audience is frozen as a snapshot at launch), a configured
channel, the consent channel that must grant marketing, content, the holdout share (and the tag that
stratifies it), a frequency cap, quiet hours and an attribution window. Caps and quiet hours default
to the merchant's settings. Status moves draft → scheduled → sending → done (or cancelled).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, insert, select, update

from omnicrm.channels.registry import Channels
from omnicrm.consent.subjects import CHANNELS as CONSENT_CHANNELS
from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.segments.saved import get_segment
from omnicrm.settings import Settings
from omnicrm.store.schema import campaigns
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "STATUSES",
    "Campaign",
    "CampaignSpec",
    "cancel_campaign",
    "consent_channel_for",
    "create_campaign",
    "get_campaign",
    "list_campaigns",
    "parse_cap",
    "parse_quiet_hours",
]

STATUSES = ("draft", "scheduled", "sending", "done", "cancelled")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
# channel kind → the consent channel its marketing needs (WeChat: official account or mini-program, by option)
_CONSENT_OF_KIND = {"email": "email", "sms": "sms", "wecom": "wecom", "push": "app_push"}


def parse_cap(text: str | None) -> tuple[int, int] | None:
    """'messages/days' → (messages, days); '' or None → no cap."""
    if not text:
        return None
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or int(match[2]) == 0:
        raise InputError(f"frequency cap {text!r} is not 'messages/days'", [Problem("e.g. 4/7", field="frequency_cap")])
    return int(match[1]), int(match[2])


def parse_quiet_hours(text: str | None) -> tuple[dt.time, dt.time] | None:
    """'HH:MM-HH:MM' → (start, end); the span may cross midnight; '' or None → none."""
    if not text:
        return None
    parts = text.strip().split("-")
    if len(parts) != 2 or not all(_HHMM.match(p) for p in parts) or parts[0] == parts[1]:
        raise InputError(
            f"quiet hours {text!r} are not 'HH:MM-HH:MM'", [Problem("e.g. 21:00-09:00", field="quiet_hours")]
        )
    start, end = (dt.time.fromisoformat(p) for p in parts)
    return start, end


class CampaignSpec(BaseModel):
    """What a user submits to create a campaign."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    segment_id: int
    channel: str = Field(description="Name of a configured channel.")
    consent_channel: str | None = Field(None, description="Consent channel to check; from the channel kind if unset.")
    content: dict[str, Any] = Field(description="Templates per language: {zh: {subject, body, html}, en: ...}.")
    holdout_share: float = Field(0.1, ge=0.0, le=0.5)
    stratify_by: str | None = Field(None, description="Tag whose values stratify the holdout draw.")
    use_global_control: bool = True
    frequency_cap: str | None = Field(None, description="'messages/days'; the settings' cap when unset; '' = none.")
    quiet_hours: str | None = Field(None, description="'HH:MM-HH:MM'; the settings' hours when unset; '' = none.")
    conversion_days: int = Field(14, ge=1, le=365)
    send_at: dt.datetime | None = None


@dataclass
class Campaign:
    """A campaign as stored."""

    id: int
    name: str
    status: str
    channel: str
    consent_channel: str
    segment_id: int
    snapshot_id: int | None
    content: dict[str, Any]
    holdout_share: float
    stratify_by: str | None
    use_global_control: bool
    cap: tuple[int, int] | None
    quiet_hours: str | None
    conversion_days: int
    send_at: dt.datetime | None
    seed: str
    created_by: str
    created_at: dt.datetime
    launched_at: dt.datetime | None
    finished_at: dt.datetime | None
    journey_id: int | None = None  # a step of this journey: the journey sends it, not a launch

    def as_dict(self) -> dict[str, Any]:
        def iso(value: dt.datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id, "name": self.name, "status": self.status, "channel": self.channel,
            "consent_channel": self.consent_channel, "segment_id": self.segment_id, "snapshot_id": self.snapshot_id,
            "content": self.content, "holdout_share": self.holdout_share, "stratify_by": self.stratify_by,
            "use_global_control": self.use_global_control,
            "frequency_cap": None if self.cap is None else f"{self.cap[0]}/{self.cap[1]}",
            "quiet_hours": self.quiet_hours, "conversion_days": self.conversion_days, "send_at": iso(self.send_at),
            "created_by": self.created_by, "created_at": iso(self.created_at), "launched_at": iso(self.launched_at),
            "finished_at": iso(self.finished_at), "journey_id": self.journey_id,
        }  # fmt: skip


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _campaign(row: Any) -> Campaign:
    cap = None if row.cap_messages is None else (int(row.cap_messages), int(row.cap_days))
    return Campaign(
        int(row.id), row.name, row.status, row.channel, row.consent_channel, int(row.segment_id),
        None if row.snapshot_id is None else int(row.snapshot_id), json.loads(row.content), float(row.holdout_share),
        row.stratify_by, bool(row.use_global_control), cap, row.quiet_hours or None, int(row.conversion_days),
        _utc(row.send_at), row.seed, row.created_by, _utc(row.created_at) or utcnow(), _utc(row.launched_at),
        _utc(row.finished_at), None if row.journey_id is None else int(row.journey_id),
    )  # fmt: skip


def consent_channel_for(channels: Channels, name: str, asked: str | None) -> str:
    """The consent channel a campaign through channel ``name`` must check."""
    channel = channels[name]
    kind = channel.settings.kind
    if asked is not None:
        if asked not in CONSENT_CHANNELS:
            known = ", ".join(CONSENT_CHANNELS)
            raise InputError(
                f"unknown consent channel {asked!r}", [Problem(f"use one of {known}", field="consent_channel")]
            )
        return asked
    if kind == "wechat":
        app = str(channel.settings.options.get("app", "mini_program"))
        return "wechat_mp" if app == "mini_program" else "wechat_oa"
    if kind in _CONSENT_OF_KIND:
        return _CONSENT_OF_KIND[kind]
    raise InputError(
        f"channel '{name}' ({kind}) sends no message of its own: say which consent channel covers it",
        [Problem("e.g. sms or wechat_oa", field="consent_channel")],
    )


def create_campaign(
    state: StateStore, channels: Channels, settings: Settings, spec: CampaignSpec | dict[str, Any], *, by: str
) -> Campaign:
    """Validate and store a draft campaign; the content is checked here, so a launch never meets a bad template."""
    from omnicrm.campaigns.content import Content, compile_content

    if not isinstance(spec, CampaignSpec):
        try:
            spec = CampaignSpec.model_validate(spec)
        except ValidationError as exc:
            problems = [Problem(e["msg"], field=".".join(str(p) for p in e["loc"])) for e in exc.errors()]
            raise InputError("the campaign is not valid", problems) from None
    get_segment(state, spec.segment_id)
    consent_channel = consent_channel_for(channels, spec.channel, spec.consent_channel)
    try:
        content = Content.model_validate(spec.content)
    except ValidationError as exc:
        problems = [Problem(e["msg"], field="content." + ".".join(str(p) for p in e["loc"])) for e in exc.errors()]
        raise InputError("the campaign's content is not valid", problems) from None
    compile_content(content)
    if content.coupon_channel is not None and channels[content.coupon_channel].settings.kind != "coupon":
        raise InputError(f"channel '{content.coupon_channel}' does not issue coupons",
                         [Problem("name a channel of kind coupon", field="content.coupon_channel")])  # fmt: skip
    cap = parse_cap(settings.frequency_cap if spec.frequency_cap is None else spec.frequency_cap)
    quiet = settings.quiet_hours if spec.quiet_hours is None else spec.quiet_hours
    parse_quiet_hours(quiet)
    now = utcnow()
    send_at = _utc(spec.send_at)
    stored = json.dumps(content.model_dump(exclude_none=True), ensure_ascii=False)
    with state.begin() as conn:
        new_id = conn.execute(
            insert(campaigns).values(
                name=spec.name.strip(), status="draft", channel=spec.channel, consent_channel=consent_channel,
                segment_id=spec.segment_id, content=stored,
                holdout_share=spec.holdout_share, stratify_by=spec.stratify_by,
                use_global_control=spec.use_global_control, cap_messages=None if cap is None else cap[0],
                cap_days=None if cap is None else cap[1], quiet_hours=quiet or None,
                conversion_days=spec.conversion_days, send_at=send_at, seed=secrets.token_hex(8), created_by=by,
                created_at=now, updated_at=now,
            )
        ).inserted_primary_key  # fmt: skip
    assert new_id is not None
    return get_campaign(state, int(new_id[0]))


def get_campaign(state: StateStore, campaign_id: int) -> Campaign:
    with state.connect() as conn:
        row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first()
    if row is None:
        raise NotFound(f"no campaign {campaign_id}")
    return _campaign(row)


def list_campaigns(state: StateStore, *, limit: int = 50, offset: int = 0) -> tuple[list[Campaign], int]:
    """One page of campaigns, newest first, and how many there are."""
    with state.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(campaigns)).scalar_one())
        rows = conn.execute(select(campaigns).order_by(campaigns.c.id.desc()).limit(limit).offset(offset)).all()
    return [_campaign(r) for r in rows], total


def set_status(state: StateStore, campaign_id: int, status: str, *, expect: tuple[str, ...], **values: Any) -> None:
    """Move a campaign to ``status`` only from one of ``expect`` (a compare-and-set: two launches cannot both win)."""
    with state.begin() as conn:
        done = conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id, campaigns.c.status.in_(expect))
            .values(status=status, updated_at=utcnow(), **values)
        ).rowcount
    if not done:
        current = get_campaign(state, campaign_id).status
        raise Conflict(f"campaign {campaign_id} is {current}; it must be {' or '.join(expect)} to become {status}")


def cancel_campaign(state: StateStore, campaign_id: int) -> Campaign:
    """Stop a campaign: nothing more is sent; what was sent stays in the log and is still measured."""
    set_status(state, campaign_id, "cancelled", expect=("draft", "scheduled", "sending"), finished_at=utcnow())
    return get_campaign(state, campaign_id)
