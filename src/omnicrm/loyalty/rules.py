"""Loyalty rules as data: how orders earn points, when points activate and expire, what a point is worth.

The rules are a pydantic model, saved in the state store as numbered versions (``loyalty_rules``) so that every
lot names the version that computed it (its idempotency key is ``source:order id:v<version>``). Rules may also be
passed in unsaved (version 0), e.g. by tests or a what-if preview.

Points of an order = floor(Σ over its rows of net paid × category multiplier, × points per currency unit × channel
× tier × birthday × the highest multiplier of the campaigns running) + the bonus of each campaign running
(campaign multipliers do not stack; bonuses add). Every multiplier is a decimal with at most two places, so the
arithmetic is exact decimal arithmetic in the engine (no floats, at most 14 decimal places), and the whole
computation is one Ibis expression over a table of orders (``order_points``): it runs on DuckDB or Spark.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Annotated, Any, Literal

import ibis
import ibis.expr.types as ir
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.loyalty.tiers import TierProgram
from omnicrm.portrait.columns import CHINA_OFFSET_SECONDS, local_date
from omnicrm.store.schema import loyalty_rules
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "ORDER_COLUMNS",
    "BirthdayRule",
    "CampaignRule",
    "LoyaltyRules",
    "load_rules",
    "order_points",
    "save_rules",
]

# The columns ``order_points`` reads: required, then optional (with what a missing one means).
ORDER_COLUMNS = {
    "customer_id": "int64, the OneID customer",
    "source": "string, where the order came from (tmall, pos-store-3, web ...): with order_id, the order's key",
    "order_id": "string",
    "paid_at": "timestamp (UTC), when the order was paid: starts the return window and the expiry clock",
    "paid": "decimal, money paid on this row (a line, or an order's share in one category), in currency units",
    "refunded": "optional decimal, money refunded on this row (default 0)",
    "channel": "optional string, matched by the channel rules (default: the source)",
    "category": "optional string, matched by the category rules (default: none)",
    "birthday": "optional date, the member's birthday (default: unknown, no birthday multiplier)",
}

_MONEY = "decimal(38, 2)"
_RATE = "decimal(38, 2)"  # (DuckDB mis-sizes products of narrow decimals)


def _two_places(value: Decimal) -> Decimal:
    if value != value.quantize(Decimal("0.01")):
        raise ValueError("use at most two decimal places")
    return value


Multiplier = Annotated[Decimal, Field(ge=0, le=100), AfterValidator(_two_places)]


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("give the time with its offset, e.g. 2026-06-01T00:00:00+08:00")
    return value.astimezone(dt.UTC)


class BirthdayRule(BaseModel):
    """Orders paid on the member's birthday (or in its month) earn ``multiplier`` times."""

    model_config = ConfigDict(extra="forbid")
    multiplier: Multiplier = Decimal(2)
    scope: Literal["day", "month"] = "month"


class CampaignRule(BaseModel):
    """A points campaign (e.g. "double points during 618"): orders paid in [starts_at, ends_at) on ``channels``
    (empty: every channel) earn ``multiplier`` times (the highest of the campaigns running; they do not stack),
    plus ``bonus_points`` per order (bonuses of several campaigns add)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    starts_at: Annotated[dt.datetime, AfterValidator(_aware)]
    ends_at: Annotated[dt.datetime, AfterValidator(_aware)]
    multiplier: Multiplier = Decimal(1)
    bonus_points: int = Field(default=0, ge=0)
    channels: list[str] = Field(default_factory=list)


class LoyaltyRules(BaseModel):
    """One version of the programme: earn rules, return window, expiry, the money value of a point, what a refund
    of already spent points does, and (optionally) the tiers."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(default=0, ge=0, description="0: not saved; saved rules are numbered 1, 2, ...")
    points_per_unit: Multiplier = Field(default=Decimal(1), description="points per currency unit (yuan) paid")
    channels: dict[str, Multiplier] = Field(default_factory=dict, description="multiplier per channel; 0 excludes")
    categories: dict[str, Multiplier] = Field(default_factory=dict, description="multiplier per product category")
    birthday: BirthdayRule | None = None
    campaigns: list[CampaignRule] = Field(default_factory=list)
    return_window_days: int = Field(default=15, ge=0, le=365, description="points stay pending this long")
    expire_after_months: int | None = Field(
        default=24, ge=1, le=120, description="points expire at the end of the month this many months after earning"
    )
    point_value: Decimal = Field(default=Decimal("0.01"), ge=0, description="money a point is worth (liability)")
    refund_shortfall: Literal["forgive", "negative"] = Field(
        default="forgive",
        description="when a refund takes back points already spent and the balance cannot cover them: forgive "
        "(write the rest off, reported) or negative (the balance goes negative and later points repay it)",
    )
    tiers: TierProgram | None = None

    @field_validator("campaigns")
    @classmethod
    def _campaign_windows(cls, value: list[CampaignRule]) -> list[CampaignRule]:
        for c in value:
            if c.ends_at <= c.starts_at:
                raise ValueError(f"campaign {c.name!r} ends before it starts")
        return value


def _check(rules: dict[str, Any]) -> LoyaltyRules:
    try:
        return LoyaltyRules.model_validate(rules)
    except ValidationError as exc:
        problems = [Problem(e["msg"], ".".join(str(p) for p in e["loc"])) for e in exc.errors()]
        raise InputError("the loyalty rules are not valid", problems) from exc


def save_rules(
    state: StateStore, rules: LoyaltyRules | dict[str, Any], *, by: str, note: str | None = None
) -> LoyaltyRules:
    """Store ``rules`` as the next version and return them with it; earlier versions stay as they were."""
    checked = _check(rules if isinstance(rules, dict) else rules.model_dump(mode="json"))
    now = utcnow()
    try:
        with state.begin() as conn:
            version = int(conn.execute(select(func.coalesce(func.max(loyalty_rules.c.version), 0))).scalar_one()) + 1
            saved = checked.model_copy(update={"version": version})
            conn.execute(
                insert(loyalty_rules).values(
                    version=version, definition=saved.model_dump_json(), note=note, created_by=by, created_at=now
                )
            )
    except IntegrityError as exc:  # another save took the number first (PostgreSQL)
        raise Conflict("the loyalty rules were saved by someone else at the same moment: save again") from exc
    return saved


def load_rules(state: StateStore, version: int | None = None) -> LoyaltyRules:
    """The saved rules of ``version`` (default: the latest)."""
    query = select(loyalty_rules.c.definition)
    query = (
        query.where(loyalty_rules.c.version == version)
        if version is not None
        else query.order_by(loyalty_rules.c.version.desc()).limit(1)
    )
    with state.connect() as conn:
        found = conn.execute(query).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no loyalty rules version {version}" if version else "no loyalty rules saved yet")
    return LoyaltyRules.model_validate(json.loads(found))


def _rate(value: Decimal) -> ir.DecimalValue:
    return ibis.literal(value, _RATE)


def _lookup(column: ir.StringValue, table: dict[str, Decimal]) -> ir.DecimalValue:
    if not table:
        return _rate(Decimal(1))
    return ibis.cases(*((column == key, _rate(m)) for key, m in table.items()), else_=_rate(Decimal(1)))


def _utc_ts(value: dt.datetime) -> ir.TimestampScalar:
    return ibis.timestamp(value.astimezone(dt.UTC).replace(tzinfo=None).isoformat())


def order_points(orders: ir.Table, rules: LoyaltyRules, tier_multipliers: ir.Table | None = None) -> ir.Table:
    """One row per order with the points its rows earn under ``rules`` (columns: ``ORDER_COLUMNS``).

    Returns customer_id, source, order_id, paid_at, net (money), spend_cents, points, activates_at and
    expires_at (null: never), and the multipliers applied (channel_x, tier_x, birthday_x, campaign_x) with
    the names of the running campaigns. ``tier_multipliers`` (customer_id, tier_multiplier) gives each
    member's current tier multiplier; members without a row earn at 1.
    """
    t = orders
    missing = [c for c in ("customer_id", "source", "order_id", "paid_at", "paid") if c not in t.columns]
    if missing:
        raise InputError(
            "the orders lack columns", [Problem(f"missing; expected {ORDER_COLUMNS[c]}", c) for c in missing]
        )
    refunded = t.refunded.cast(_MONEY).fill_null(0) if "refunded" in t.columns else ibis.literal(Decimal(0), _MONEY)
    net = ibis.greatest(t.paid.cast(_MONEY).fill_null(0) - refunded, ibis.literal(Decimal(0), _MONEY))
    category = t.category if "category" in t.columns else ibis.null("string")
    t = t.mutate(
        _net=net,
        _weighted=net * _lookup(category, rules.categories),
        _channel=t.channel if "channel" in t.columns else t.source,
        _birthday=t.birthday.cast("date") if "birthday" in t.columns else ibis.null("date"),
    )
    o = t.group_by(["customer_id", "source", "order_id"]).aggregate(
        paid_at=t.paid_at.min(),
        channel=t._channel.max(),
        birthday=t._birthday.max(),
        net=t._net.sum(),
        weighted=t._weighted.sum(),
    )
    if tier_multipliers is not None:
        o = o.left_join(tier_multipliers, "customer_id").drop("customer_id_right")
        tier_x = o.tier_multiplier.cast(_RATE).fill_null(_rate(Decimal(1)))
    else:
        tier_x = _rate(Decimal(1))
    birthday_x = _rate(Decimal(1))
    if rules.birthday is not None:
        day = local_date(o.paid_at)
        same = day.month() == o.birthday.month()
        if rules.birthday.scope == "day":
            same = same & (day.day() == o.birthday.day())
        birthday_x = ibis.cases(
            (o.birthday.notnull() & same, _rate(rules.birthday.multiplier)), else_=_rate(Decimal(1))
        )
    campaign_x: ir.DecimalValue = _rate(Decimal(1))
    bonus: ir.IntegerValue = ibis.literal(0, "int64")
    names: list[ir.StringValue] = []
    for c in rules.campaigns:
        running = (o.paid_at >= _utc_ts(c.starts_at)) & (o.paid_at < _utc_ts(c.ends_at))
        if c.channels:
            running = running & o.channel.isin(c.channels)
        campaign_x = ibis.greatest(campaign_x, ibis.cases((running, _rate(c.multiplier)), else_=_rate(Decimal(1))))
        bonus = bonus + ibis.cases((running, c.bonus_points), else_=0)
        names.append(ibis.cases((running, c.name), else_=ibis.null("string")))
    channel_x = _lookup(o.channel, rules.channels)
    raw = o.weighted * _rate(rules.points_per_unit) * channel_x * tier_x * birthday_x * campaign_x
    points = ibis.cases((o.net > 0, raw.floor().cast("int64") + bonus), else_=0)
    local_day = local_date(o.paid_at)
    if rules.expire_after_months is None:
        expires_at = ibis.null("timestamp")
    else:  # the start of the month after the expiry month, midnight China time, in UTC
        month_after = local_day.truncate("M") + ibis.interval(months=rules.expire_after_months + 1)
        expires_at = month_after.cast("timestamp") - ibis.interval(seconds=CHINA_OFFSET_SECONDS)
    return o.select(
        "customer_id",
        "source",
        "order_id",
        "paid_at",
        "net",
        spend_cents=(o.net * 100).cast("int64"),
        points=points,
        activates_at=o.paid_at + ibis.interval(days=rules.return_window_days),
        expires_at=expires_at,
        channel_x=channel_x,
        tier_x=tier_x,
        birthday_x=birthday_x,
        campaign_x=campaign_x,
        campaigns=ibis.array(names).filter(lambda n: n.notnull()) if names else ibis.literal([], "array<string>"),
    )
