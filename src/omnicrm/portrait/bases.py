"""Bases: per-customer tables of the inputs tags are computed from (one row per customer who has any).

A tag is an expression over basis columns, and the basis columns it reads are its explanation: the
portrait keeps the bases beside the tags, so "why is she 'cooling'?" is answered with her own numbers
(days since her last purchase, and the thresholds). Each basis is one set-based Ibis query.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from omnicrm.portrait.inputs import CHINA_OFFSET_SECONDS, PortraitInputs, json_number, json_text, local_date

__all__ = [
    "COMPLAINT_PATTERN",
    "attributes",
    "buyers",
    "days_since",
    "first_purchase",
    "needs",
    "not_before",
    "preferences",
    "prices",
    "purchase_gaps",
    "purchases",
    "referrals",
    "service",
]

DAY = 86_400
CHANNELS = ("marketplace", "web", "wechat", "store")
PROMOTIONS = ("double11", "double12", "618")
# Words of a complaint in Chinese and English service messages (intent detection proper is the inbox's).
COMPLAINT_PATTERN = (
    r"投诉|差评|太差|很差|质量差|质量问题|破损|坏了|假货|骗|垃圾|不满意|失望|退款|退货|太慢|还没到|没收到|态度"
    r"|(?i:complain|terrible|awful|broken|damaged|fake|refund|disappointed|still not|never arrived)"
)


def days_since(as_of: dt.datetime, ts: ir.TimestampValue) -> ir.IntegerValue:
    """Calendar days (China time) from ``ts`` to the as-of moment: yesterday is 1, whatever the hour."""
    today = (int(as_of.timestamp()) + CHINA_OFFSET_SECONDS) // DAY
    return today - ((ts.epoch_seconds() + CHINA_OFFSET_SECONDS) / DAY).floor().cast("int64")


def not_before(as_of: dt.datetime, days: int) -> ir.TimestampScalar:
    """A moment before which every timestamp is at least ``days`` calendar days old (``days_since``): a plain
    comparison that skips old rows (and files) before the day arithmetic; a day early, to be safe."""
    today = (int(as_of.timestamp()) + CHINA_OFFSET_SECONDS) // DAY
    start = (today - days) * DAY - CHINA_OFFSET_SECONDS
    return ibis.timestamp(dt.datetime.fromtimestamp(start, dt.UTC).isoformat())


def purchases(inputs: PortraitInputs) -> ir.Table:
    """Orders, purchases (net paid > 0), spend, refunds, promotions and channels per customer, and the first
    purchase's promotion and channel."""
    o = inputs.orders()
    bought = o.net > 0
    age = days_since(inputs.as_of, o.created_at)
    promo = o.promotion_kind.notnull()
    counts = {f"purchases_{c}": o.count(where=bought & (o.channel == c)) for c in CHANNELS}
    counts |= {f"purchases_{p}": o.count(where=bought & (o.promotion_kind == p)) for p in PROMOTIONS}
    return o.group_by("customer_id").aggregate(
        orders=o.count(),
        purchases=o.count(where=bought),
        refunded_orders=o.count(where=o.refunded > 0),
        spend=o.net.sum(where=bought).fill_null(0).cast("decimal(18, 2)"),
        paid_total=o.paid.sum().cast("decimal(18, 2)"),
        refunded_total=o.refunded.sum().cast("decimal(18, 2)"),
        discount_total=o.discount.sum(where=bought).fill_null(0).cast("decimal(18, 2)"),
        first_purchase_at=o.created_at.min(where=bought),
        last_purchase_at=o.created_at.max(where=bought),
        last_order_at=o.created_at.max(),
        purchase_days=local_date(o.created_at).nunique(where=bought),
        purchases_365d=o.count(where=bought & (age < 365)),
        spend_365d=o.net.sum(where=bought & (age < 365)).fill_null(0).cast("decimal(18, 2)"),
        promo_purchases=o.count(where=bought & promo),
        **counts,
        **first_purchase(o),
    )


def first_purchase(orders: ir.Table) -> dict[str, ir.Value]:
    """Aggregates of each customer's first purchase (the first order with net paid > 0 by time, then source and
    order id): its promotion, channel and value."""
    first = ibis.struct({"at": orders.created_at, "source": orders.source, "order_id": orders.order_id})
    bought = orders.net > 0
    return {
        "first_purchase_promotion": orders.promotion_kind.argmin(first, where=bought),
        "first_purchase_channel": orders.channel.argmin(first, where=bought),
        "first_purchase_value": orders.net.argmin(first, where=bought).cast("decimal(18, 2)"),
    }


def buyers(inputs: PortraitInputs) -> ir.Table:
    """Purchases, spend and the first and last purchase's time of every customer who bought: what ranks a customer
    among everyone (RFM scores) and tells whom a promotion acquired, without the rest of ``purchases``."""
    o = inputs.orders()
    o = o.filter(o.net > 0)
    return o.group_by("customer_id").aggregate(
        purchases=o.count(),
        spend=o.net.sum().cast("decimal(18, 2)"),
        first_purchase_at=o.created_at.min(),
        last_purchase_at=o.created_at.max(),
    )


def purchase_gaps(inputs: PortraitInputs) -> ir.Table:
    """How many times the merchant's customers came back after each number of days (gap_days, n).

    Lifecycle thresholds are quantiles of this distribution, so they follow the merchant's own rhythm.
    """
    o = inputs.orders()
    days = o.filter(o.net > 0).select("customer_id", day=local_date(o.created_at)).distinct()
    prev = days.day.lag().over(group_by=days.customer_id, order_by=days.day)
    gaps = days.mutate(gap=(days.day.epoch_seconds() - prev.epoch_seconds()) / DAY).filter(lambda t: t.gap.notnull())
    gaps = gaps.mutate(gap_days=gaps.gap.round().cast("int64"))
    return gaps.group_by("gap_days").aggregate(n=gaps.count())


def _tally(lines: ir.Table, column: str) -> ir.Table:
    """Quantity and spend per customer and value of ``column`` (values named, not empty)."""
    t = lines.filter(lines[column].notnull() & (lines[column] != ""))
    return t.group_by(["customer_id", column]).aggregate(qty=t.quantity.fill_null(1).sum(), spend=t.paid_amount.sum())


def _most(tally: ir.Table, column: str) -> list[ir.Value]:
    """The order of ``_tally`` rows from the value a customer bought most: quantity, then spend, then name."""
    return [tally.qty.desc(), tally.spend.desc(), tally[column]]


def _top(lines: ir.Table, column: str, k: int) -> ir.Table:
    """The ``k`` values of ``column`` each customer bought most, as ``column_1`` … ``column_k``."""
    g = _tally(lines, column)
    g = g.mutate(rank=ibis.row_number().over(group_by=g.customer_id, order_by=_most(g, column)))
    g = g.filter(g["rank"] < k)
    return g.group_by("customer_id").aggregate(
        **{f"{column}_{i + 1}": g[column].max(where=g["rank"] == i) for i in range(k)}
    )


def _first(tally: ir.Table, column: str, where: ir.BooleanValue | None = None) -> ir.Value:
    """The value a customer bought most (``_most`` as one sort key: an aggregate, where ``_top`` ranks rows)."""
    key = ibis.struct({"qty": -tally.qty, "spend": -tally.spend, "value": tally[column]})
    return tally[column].argmin(key, where=where)


def _kept(inputs: PortraitInputs) -> ir.Table:
    """Order lines the customer kept: paid more than was refunded."""
    lines = inputs.order_lines()
    return lines.filter(lines.paid_amount > lines.refunded_amount.fill_null(0))


def prices(inputs: PortraitInputs) -> ir.Table:
    """Items each customer kept and what they paid for them (the average price paid per item)."""
    kept = _kept(inputs)
    return kept.group_by("customer_id").aggregate(
        items=kept.quantity.fill_null(1).sum().cast("int64"),
        item_spend=kept.paid_amount.sum().cast("decimal(18, 2)"),
    )


def preferences(inputs: PortraitInputs) -> ir.Table:
    """Top categories, brand, sizes and colour of what each customer kept (bought and not refunded)."""
    kept = _kept(inputs)
    brands, sizes, colours = (_tally(kept, c) for c in ("brand", "size", "colour"))
    numeric = sizes.size.re_search(r"^[0-9]{2}(\.5)?$")  # a shoe size
    parts = [
        _top(kept, "category", 3),
        brands.group_by("customer_id").aggregate(brand_1=_first(brands, "brand")),
        sizes.group_by("customer_id").aggregate(
            size_1=_first(sizes, "size", ~numeric), shoe_size_1=_first(sizes, "size", numeric)
        ),
        colours.group_by("customer_id").aggregate(colour_1=_first(colours, "colour")),
    ]
    out = kept.select("customer_id").distinct()
    for part in parts:
        out = out.left_join(part, "customer_id").drop("customer_id_right")
    return out


def attributes(inputs: PortraitInputs) -> ir.Table:
    """What people and sources declared: gender, birthday, region, education, time zone, language, membership,
    WeChat following — the latest non-empty value of each, and the cities orders were sent to."""
    p = inputs.people()
    traits = p.traits.fill_null("")
    p = p.mutate(
        education=json_text(traits, "education"),
        follows=(p.source.lower().re_search(r"wechat|weixin") & (json_number(traits, "subscribe") == 1)).cast("int8"),
        joined_at=json_text(traits, "joined_at"),
        timezone=json_text(traits, "timezone"),
        locale=ibis.coalesce(json_text(traits, "locale").nullif(""), json_text(traits, "language")),
    )

    def latest(col: ir.Value) -> ir.Value:
        return col.argmax(p.observed_at, where=col.notnull() & (col.cast("string") != ""))

    declared = p.group_by("customer_id").aggregate(
        gender_raw=latest(p.gender),
        birthday=latest(p.birthday),
        province=latest(p.province),
        city=latest(p.city),
        district=latest(p.district),
        education=latest(p.education),
        timezone=latest(p.timezone),
        locale=latest(p.locale),
        member_card=latest(p.member_card),
        member_joined_at=p.joined_at.min(where=p.member_card.notnull()),
        wechat_follower=p.follows.argmax(p.observed_at, where=p.source.lower().re_search(r"wechat|weixin")),
    )
    lines = inputs.order_lines()
    # a customer's orders go to a few addresses: read each (customer, address) once, at its latest order
    sent = lines.filter(lines.address.notnull())
    sent = sent.group_by(["customer_id", "address"]).aggregate(at=sent.created_at.max())
    addr = sent.select(
        "customer_id",
        province=sent.address.re_extract(r"^\s*(\S+?(?:省|自治区|市))\s", 1),
        city=sent.address.re_extract(r"^\s*\S+\s+(\S+?(?:市|州|盟|地区))(?:\s|$)", 1),
        at=sent.at,
    )
    # addresses with a city only; filtered inside the aggregates, because a filter on the address alone would be
    # pushed below the grouping and parse every order line's address
    named = addr.city != ""
    shipped = addr.group_by("customer_id").aggregate(
        ship_province=addr.province.argmax(addr.at, where=named),
        ship_city=addr.city.argmax(addr.at, where=named),
        ship_cities=addr.city.nunique(where=named),
        activity_cities=addr.city.collect(where=named, distinct=True).sort(),
    )
    shipped = shipped.filter(shipped.ship_cities > 0)
    return declared.outer_join(shipped, "customer_id").select(
        customer_id=ibis.coalesce(declared.customer_id, shipped.customer_id),
        **{c: declared[c] for c in declared.columns if c != "customer_id"},
        **{c: shipped[c] for c in shipped.columns if c != "customer_id"},
    )


def needs(inputs: PortraitInputs, windows: tuple[int, ...] = (7, 30)) -> ir.Table:
    """Categories a customer viewed or searched for in the last N days and did not buy in that time."""
    ev = inputs.events()
    lines = inputs.order_lines()
    known = inputs.categories()
    longest = max(windows)
    recent = ev.filter(ev.timestamp >= not_before(inputs.as_of, longest))
    recent = recent.filter(recent.event.isin(["Product Viewed", "Product Added", "Products Searched"])).mutate(
        age=days_since(inputs.as_of, recent.timestamp),
        category=json_text(recent.properties, "category"),
        query=json_text(recent.properties, "query"),
    )
    recent = recent.filter(recent.age < longest)
    viewed = recent.filter(recent.category.notnull()).select("customer_id", "category", "age")
    searched = recent.filter(recent.query.notnull())
    matched = searched.cross_join(known.rename(known_category="category"))
    matched = matched.filter(matched.query.contains(matched.known_category)).select(
        "customer_id", category=matched.known_category, age=matched.age
    )
    interest = ibis.union(viewed, matched)
    interest = interest.group_by(["customer_id", "category"]).aggregate(age=interest.age.min())
    bought = lines.filter(lines.created_at >= not_before(inputs.as_of, longest))
    bought = bought.mutate(age=days_since(inputs.as_of, bought.created_at)).filter(lambda t: t.age < longest)
    bought = bought.group_by(["customer_id", "category"]).aggregate(bought_age=bought.age.min())
    joined = interest.left_join(bought, ["customer_id", "category"])
    aggs = {}
    for w in windows:
        open_need = (joined.age < w) & (joined.bought_age.isnull() | (joined.bought_age >= w))
        aggs[f"needs_{w}d"] = joined.category.collect(where=open_need, distinct=True).sort()
        aggs[f"browsed_categories_{w}d"] = joined.category.nunique(where=joined.age < w)
    return joined.group_by(joined.customer_id).aggregate(**aggs)


def service(inputs: PortraitInputs) -> ir.Table:
    """Inbound service messages and complaints (by the complaint lexicon) per customer."""
    m = inputs.messages()
    inbound = m.filter((m.direction == "inbound") & (m.channel != "clerk_note"))
    complaint = inbound.text.fill_null("").re_search(COMPLAINT_PATTERN)
    age = days_since(inputs.as_of, inbound.sent_at)
    return inbound.group_by("customer_id").aggregate(
        messages_in=inbound.count(),
        complaints=inbound.count(where=complaint),
        complaints_90d=inbound.count(where=complaint & (age < 90)),
        last_complaint_at=inbound.sent_at.max(where=complaint),
        service_channels=inbound.channel.nunique(),
    )


def referrals(inputs: PortraitInputs, identifiers: ir.Table) -> ir.Table:
    """Whom each customer brought: events that carry a referrer (Segment ``context.referrer.id``, the referrer's
    member card, user id or phone) counted per referring customer; and who arrived through a referral link."""
    ev = inputs.events()
    ev = ev.mutate(
        referrer=json_text(ev.context, "referrer.id"), campaign_source=json_text(ev.context, "campaign.source")
    )
    referred = ev.filter(ev.referrer.notnull()).select("customer_id", "referrer").distinct()
    owners = identifiers.select(referrer="value", referrer_customer="customer_id").distinct()
    linked = referred.join(owners, "referrer")
    linked = linked.filter(linked.referrer_customer != linked.customer_id)
    influence = linked.group_by(customer_id=linked.referrer_customer).aggregate(referees=linked.customer_id.nunique())
    first = ev.mutate(rank=ibis.row_number().over(group_by=ev.customer_id, order_by=[ev.timestamp, ev.message_id]))
    arrived = first.filter(first["rank"] == 0).select(
        "customer_id", arrived_via_referral=(first.campaign_source == "referral").fill_null(False)
    )
    return arrived.outer_join(influence, "customer_id").select(
        customer_id=ibis.coalesce(arrived.customer_id, influence.customer_id),
        arrived_via_referral=arrived.arrived_via_referral,
        referees=influence.referees,
    )
