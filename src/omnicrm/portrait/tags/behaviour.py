"""Built-in tags about how a customer behaves: promotions, channels, recent needs, interests, service and
predicted value."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from omnicrm.portrait.tags.define import as_list, or_default, tag
from omnicrm.portrait.tags.model import Params, TagDefinition

__all__ = ["BEHAVIOUR"]


def _preferred_channel(b: ir.Table, _: Params) -> ir.Value:
    best = ibis.greatest(b.purchases_marketplace, b.purchases_web, b.purchases_wechat, b.purchases_store)
    return ibis.cases(
        (b.purchases == 0, "none"),
        (b.purchases_store == best, "store"),
        (b.purchases_wechat == best, "wechat"),
        (b.purchases_marketplace == best, "marketplace"),
        else_="web",
    )


def _channels_used(b: ir.Table, _: Params) -> ir.Value:
    # ibis.array over literal names, then keep the channels with purchases (same on DuckDB and Spark)
    names = ("marketplace", "store", "web", "wechat")
    return ibis.array([ibis.cases((b[f"purchases_{c}"] > 0, c), else_=ibis.null("string")) for c in names]).filter(
        lambda x: x.notnull()
    )


def _online_offline(b: ir.Table, _: Params) -> ir.Value:
    online = b.purchases_marketplace + b.purchases_web + b.purchases_wechat
    return ibis.cases(
        (b.purchases == 0, "none"),
        ((online > 0) & (b.purchases_store > 0), "omni"),
        (online > 0, "online_only"),
        else_="offline_only",
    )


BEHAVIOUR: tuple[TagDefinition, ...] = (
    # promotion behaviour
    tag(
        "acquired_double11",
        "双11新客",
        "Acquired in Double 11",
        "promotion",
        "bool",
        ("first_purchase_promotion",),
        lambda b, _: ibis.coalesce(b.first_purchase_promotion == "double11", ibis.literal(False)),
    ),
    tag(
        "acquired_double12",
        "双12新客",
        "Acquired in Double 12",
        "promotion",
        "bool",
        ("first_purchase_promotion",),
        lambda b, _: ibis.coalesce(b.first_purchase_promotion == "double12", ibis.literal(False)),
    ),
    tag(
        "promotion_only",
        "只在大促购买",
        "Buys only in promotions",
        "promotion",
        "bool",
        ("promo_purchases", "purchases"),
        lambda b, _: (b.purchases > 0) & (b.promo_purchases == b.purchases),
    ),
    tag(
        "promotion_share",
        "大促购买占比",
        "Share of purchases in promotions",
        "promotion",
        "number",
        ("promo_purchases", "purchases"),
        or_default("promo_share", 0),
    ),
    tag(
        "double11_purchases",
        "双11购买次数",
        "Double 11 purchases",
        "promotion",
        "number",
        ("purchases_double11",),
        or_default("purchases_double11", 0),
    ),
    # channels
    tag(
        "preferred_channel",
        "偏好渠道",
        "Preferred channel",
        "channel",
        "category",
        ("purchases_marketplace", "purchases_web", "purchases_wechat", "purchases_store"),
        _preferred_channel,
        values=("marketplace", "web", "wechat", "store", "none"),
    ),
    tag(
        "channels_used",
        "购买渠道",
        "Channels bought in",
        "channel",
        "list",
        ("purchases_marketplace", "purchases_web", "purchases_wechat", "purchases_store"),
        _channels_used,
    ),
    tag(
        "cross_channel",
        "跨渠道",
        "Cross-channel",
        "channel",
        "bool",
        ("purchases_marketplace", "purchases_web", "purchases_wechat", "purchases_store"),
        lambda b, _: b.channels_bought >= 2,
    ),
    tag(
        "online_offline",
        "线上线下",
        "Online / offline",
        "channel",
        "category",
        ("purchases_marketplace", "purchases_web", "purchases_wechat", "purchases_store"),
        _online_offline,
        values=("online_only", "offline_only", "omni", "none"),
    ),
    tag(
        "first_channel",
        "首购渠道",
        "First purchase channel",
        "channel",
        "category",
        ("first_purchase_channel",),
        lambda b, _: ibis.coalesce(b.first_purchase_channel, ibis.literal("none")),
    ),
    # recent needs
    tag(
        "needs_7d",
        "近7天需求",
        "Needs, last 7 days",
        "need",
        "list",
        ("needs_7d", "browsed_categories_7d"),
        lambda b, _: as_list(b.needs_7d),
        description_en="Categories viewed or searched, not bought, in 7 days",
    ),
    tag(
        "needs_30d",
        "近30天需求",
        "Needs, last 30 days",
        "need",
        "list",
        ("needs_30d", "browsed_categories_30d"),
        lambda b, _: as_list(b.needs_30d),
    ),
    # interests
    tag(
        "interests",
        "兴趣",
        "Interests",
        "interest",
        "list",
        ("interest_keywords",),
        lambda b, _: as_list(b.interests),
        description_en="From searches, chats, notes and content viewed (keywords onto the interest taxonomy)",
    ),
    tag(
        "top_interest",
        "主要兴趣",
        "Main interest",
        "interest",
        "category",
        ("interest_keywords",),
        lambda b, _: ibis.coalesce(b.top_interest, ibis.literal("none")),
    ),
    # service
    tag(
        "return_rate",
        "退货率",
        "Return rate",
        "service",
        "number",
        ("refunded_orders", "orders"),
        or_default("return_rate", 0),
    ),
    tag(
        "complaints_90d",
        "近90天投诉",
        "Complaints, last 90 days",
        "service",
        "number",
        ("complaints_90d",),
        or_default("complaints_90d", 0),
    ),
    tag(
        "complainer",
        "投诉过",
        "Has complained",
        "service",
        "bool",
        ("complaints", "last_complaint_at"),
        lambda b, _: ibis.coalesce(b.complaints, 0) > 0,
    ),
    tag(
        "referral_influence",
        "推荐影响力",
        "People referred",
        "service",
        "number",
        ("referees",),
        or_default("referees", 0),
    ),
    tag(
        "arrived_via_referral",
        "经推荐到来",
        "Came through a referral",
        "service",
        "bool",
        ("arrived_via_referral",),
        lambda b, _: ibis.coalesce(b.arrived_via_referral, ibis.literal(False)),
    ),
    # predicted value
    tag(
        "p_alive",
        "存活概率",
        "P(alive)",
        "value",
        "number",
        ("frequency_days", "recency_span_days", "age_days"),
        lambda b, _: b.p_alive,
        refresh="daily",
        description_en="BG/NBD probability the customer still buys",
    ),
    tag(
        "expected_purchases_30d",
        "未来30天预期购买",
        "Expected purchases, 30 days",
        "value",
        "number",
        ("frequency_days", "recency_span_days", "age_days"),
        lambda b, _: b.expected_purchases_30d,
        refresh="daily",
    ),
    tag(
        "expected_purchases_90d",
        "未来90天预期购买",
        "Expected purchases, 90 days",
        "value",
        "number",
        ("frequency_days", "recency_span_days", "age_days"),
        lambda b, _: b.expected_purchases_90d,
        refresh="daily",
    ),
    tag(
        "expected_purchases_365d",
        "未来一年预期购买",
        "Expected purchases, 365 days",
        "value",
        "number",
        ("frequency_days", "recency_span_days", "age_days"),
        lambda b, _: b.expected_purchases_365d,
        refresh="daily",
    ),
    tag(
        "expected_spend",
        "预期客单",
        "Expected spend per purchase",
        "value",
        "number",
        ("frequency_days", "repeat_mean_value"),
        lambda b, _: b.expected_spend,
        refresh="daily",
        description_en="Gamma-Gamma expected value of a purchase",
    ),
    tag(
        "clv_365d",
        "一年预测价值",
        "Predicted 1-year value",
        "value",
        "number",
        ("expected_purchases_365d", "expected_spend"),
        lambda b, _: b.clv_365d,
        refresh="daily",
    ),
    tag(
        "repeat_propensity",
        "复购倾向",
        "Repeat-purchase propensity",
        "value",
        "number",
        (),
        None,
        refresh="weekly",
        description_en="P(buying again within 90 days), for the latest promotion's new buyers who have not yet",
    ),
    tag(
        "propensity_reasons",
        "复购倾向原因",
        "Propensity reasons",
        "value",
        "list",
        (),
        None,
        refresh="weekly",
        description_en="The portrait features that raise this customer's repeat-purchase propensity most",
    ),
)
