"""The built-in tag catalogue: attributes, RFM, lifecycle, preferences, promotion and channel behaviour,
recent needs, interests, service, predicted value. Each tag is an Ibis expression over the joined bases
(see ``portrait.bases`` and ``portrait.tags.compute.measures``); its ``inputs`` are the columns that
explain it."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from omnicrm.portrait.tags.model import Params, TagDefinition

__all__ = ["BUILTIN", "LIFECYCLE_STAGES", "RFM_SEGMENTS"]

LIFECYCLE_STAGES = ("prospect", "new", "active", "cooling", "dormant", "churned")
RFM_SEGMENTS = (
    "champions",
    "loyal",
    "potential_loyalist",
    "new_customers",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cannot_lose",
    "hibernating",
    "lost",
    "no_purchase",
)
AGE_BANDS = ("under_18", "18_24", "25_29", "30_34", "35_39", "40_49", "50_plus", "unknown")


def _gender(b: ir.Table, _: Params) -> ir.Value:
    g = b.gender_raw.lower().re_replace(r"^\s+|\s+$", "")  # not strip(): on Spark, Ibis's strip() trims "f" too
    return ibis.cases(
        (g.isin(["女", "f", "female", "2", "woman"]), "female"),
        (g.isin(["男", "m", "male", "1", "man"]), "male"),
        else_="unknown",
    )


def _age_band(b: ir.Table, _: Params) -> ir.Value:
    a = b.age_years
    return ibis.cases(
        (a.isnull() | (a < 0) | (a > 110), "unknown"),
        (a < 18, "under_18"),
        (a < 25, "18_24"),
        (a < 30, "25_29"),
        (a < 35, "30_34"),
        (a < 40, "35_39"),
        (a < 50, "40_49"),
        else_="50_plus",
    )


def _lifecycle(b: ir.Table, p: Params) -> ir.Value:
    active, cooling, dormant = p.lifecycle_days
    r = b.recency_days
    return ibis.cases(
        (b.purchases == 0, "prospect"),
        ((b.tenure_days <= active) & (b.purchase_days <= 1), "new"),
        (r <= active, "active"),
        (r <= cooling, "cooling"),
        (r <= dormant, "dormant"),
        else_="churned",
    )


def _rfm_segment(b: ir.Table, _: Params) -> ir.Value:
    r, f, fm = b.r_score, b.f_score, ((b.f_score + b.m_score) / 2).round()
    return ibis.cases(
        (b.purchases == 0, "no_purchase"),
        ((r >= 4) & (fm >= 4), "champions"),
        ((r >= 4) & (f <= 1), "new_customers"),
        ((r >= 3) & (fm >= 3), "loyal"),
        ((r >= 3) & (fm >= 2), "potential_loyalist"),
        (r >= 3, "promising"),
        ((r == 2) & (fm >= 3), "need_attention"),
        (r == 2, "about_to_sleep"),
        ((r <= 1) & (fm >= 4), "cannot_lose"),
        (fm >= 3, "at_risk"),
        (fm >= 2, "hibernating"),
        else_="lost",
    )


def _band(rank: ir.NumericValue, has: ir.BooleanValue) -> ir.Value:
    return ibis.cases((~has, "unknown"), (rank < 1 / 3, "low"), (rank < 2 / 3, "mid"), else_="high")


def _discount_sensitivity(b: ir.Table, _: Params) -> ir.Value:
    return ibis.cases(
        (b.purchases == 0, "unknown"),
        ((b.promo_share >= 0.6) | (b.discount_rate >= 0.25), "high"),
        ((b.promo_share >= 0.3) | (b.discount_rate >= 0.1), "medium"),
        else_="low",
    )


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


def _list(col: ir.Value) -> ir.Value:
    return ibis.coalesce(col, ibis.literal([], type="array<string>"))


def _top_categories(b: ir.Table, _: Params) -> ir.Value:
    cats = [b.category_1, b.category_2, b.category_3]
    return ibis.array([c.cast("string") for c in cats]).filter(lambda x: x.notnull())


def _t(
    id: str, zh: str, en: str, category: str, value_type: str, inputs: tuple[str, ...], expr: object, **kw: object
) -> TagDefinition:
    return TagDefinition(id, zh, en, category, value_type, inputs, expr, **kw)  # type: ignore[arg-type]


def _col(name: str, default: object) -> object:
    return lambda b, _: ibis.coalesce(b[name], ibis.literal(default))


def _cat(name: str) -> object:
    return lambda b, _: ibis.coalesce(b[name].cast("string"), ibis.literal("unknown"))


BUILTIN: tuple[TagDefinition, ...] = (
    # attributes
    _t(
        "gender",
        "性别",
        "Gender",
        "attribute",
        "category",
        ("gender_raw",),
        _gender,
        values=("female", "male", "unknown"),
        description_zh="会员或来源声明的性别",
        description_en="Gender as members or sources declared it",
    ),
    _t(
        "age_band",
        "年龄段",
        "Age band",
        "attribute",
        "category",
        ("birthday", "age_years"),
        _age_band,
        values=AGE_BANDS,
    ),
    _t(
        "birthday_month",
        "生日月份",
        "Birthday month",
        "attribute",
        "number",
        ("birthday",),
        lambda b, _: b.birthday.month(),
        description_en="Month of the declared birthday (empty if unknown)",
    ),
    _t(
        "province",
        "省份",
        "Province",
        "attribute",
        "category",
        ("province", "ship_province"),
        lambda b, _: ibis.coalesce(b.province, b.ship_province, ibis.literal("unknown")),
    ),
    _t(
        "city",
        "城市",
        "City",
        "attribute",
        "category",
        ("city", "ship_city"),
        lambda b, _: ibis.coalesce(b.city, b.ship_city, ibis.literal("unknown")),
        description_en="Declared city, else the city most recent orders were sent to",
    ),
    _t(
        "activity_cities",
        "活动城市",
        "Activity range",
        "attribute",
        "list",
        ("activity_cities", "ship_cities"),
        lambda b, _: _list(b.activity_cities),
        description_en="Cities orders were sent to",
    ),
    _t("education", "学历", "Education", "attribute", "category", ("education",), _cat("education")),
    _t("is_member", "会员", "Member", "attribute", "bool", ("member_card",), lambda b, _: b.member_card.notnull()),
    _t(
        "member_tenure_days",
        "入会天数",
        "Days a member",
        "attribute",
        "number",
        ("member_joined_at",),
        lambda b, _: b.member_tenure_days,
    ),
    _t(
        "wechat_follower",
        "公众号粉丝",
        "Follows the WeChat account",
        "attribute",
        "bool",
        ("wechat_follower",),
        lambda b, _: ibis.coalesce(b.wechat_follower == 1, ibis.literal(False)),
    ),
    _t(
        "hobbies",
        "爱好",
        "Hobbies",
        "attribute",
        "list",
        ("hobby_keywords",),
        lambda b, _: _list(b.hobbies),
        description_en="Interests found in what store clerks and service agents noted",
    ),
    # RFM
    _t(
        "recency_days",
        "最近购买距今天数",
        "Days since last purchase",
        "rfm",
        "number",
        ("last_purchase_at",),
        lambda b, _: b.recency_days,
        description_en="Empty for customers who never bought",
    ),
    _t("frequency", "购买次数", "Purchases", "rfm", "number", ("purchases",), _col("purchases", 0)),
    _t(
        "monetary",
        "累计消费",
        "Spend",
        "rfm",
        "number",
        ("spend",),
        _col("spend", 0),
        description_en="Paid minus refunded, over all purchases",
    ),
    _t("r_score", "R分", "R score", "rfm", "number", ("recency_days",), lambda b, _: b.r_score),
    _t("f_score", "F分", "F score", "rfm", "number", ("purchases",), lambda b, _: b.f_score),
    _t("m_score", "M分", "M score", "rfm", "number", ("spend",), lambda b, _: b.m_score),
    _t(
        "rfm_segment",
        "RFM分群",
        "RFM segment",
        "rfm",
        "category",
        ("r_score", "f_score", "m_score"),
        _rfm_segment,
        values=RFM_SEGMENTS,
    ),
    _t(
        "avg_order_value",
        "客单价",
        "Average order value",
        "rfm",
        "number",
        ("spend", "purchases"),
        lambda b, _: b.avg_order_value,
    ),
    _t(
        "spend_365d",
        "近一年消费",
        "Spend in the last 365 days",
        "rfm",
        "number",
        ("spend_365d",),
        _col("spend_365d", 0),
    ),
    # lifecycle
    _t(
        "lifecycle_stage",
        "生命周期阶段",
        "Lifecycle stage",
        "lifecycle",
        "category",
        ("recency_days", "tenure_days", "purchase_days"),
        _lifecycle,
        values=LIFECYCLE_STAGES,
        description_en="Thresholds are quantiles of this merchant's own time between purchases",
    ),
    _t(
        "tenure_days",
        "首购距今天数",
        "Days since first purchase",
        "lifecycle",
        "number",
        ("first_purchase_at",),
        lambda b, _: b.tenure_days,
    ),
    _t(
        "purchase_interval_days",
        "平均回购间隔",
        "Mean days between purchases",
        "lifecycle",
        "number",
        ("first_purchase_at", "last_purchase_at", "purchase_days"),
        lambda b, _: b.purchase_interval_days,
    ),
    _t(
        "repeat_buyer",
        "复购客户",
        "Repeat buyer",
        "lifecycle",
        "bool",
        ("purchase_days",),
        lambda b, _: ibis.coalesce(b.purchase_days, 0) >= 2,
    ),
    # preferences
    _t(
        "preferred_category",
        "偏好品类",
        "Preferred category",
        "preference",
        "category",
        ("category_1",),
        _cat("category_1"),
    ),
    _t(
        "top_categories",
        "常购品类",
        "Top categories",
        "preference",
        "list",
        ("category_1", "category_2", "category_3"),
        _top_categories,
    ),
    _t("preferred_brand", "偏好品牌", "Preferred brand", "preference", "category", ("brand_1",), _cat("brand_1")),
    _t("preferred_size", "常买尺码", "Usual clothing size", "preference", "category", ("size_1",), _cat("size_1")),
    _t(
        "preferred_shoe_size",
        "常买鞋码",
        "Usual shoe size",
        "preference",
        "category",
        ("shoe_size_1",),
        _cat("shoe_size_1"),
    ),
    _t("preferred_colour", "偏好颜色", "Preferred colour", "preference", "category", ("colour_1",), _cat("colour_1")),
    _t(
        "price_band",
        "价格带",
        "Price band",
        "preference",
        "category",
        ("avg_unit_price", "price_rank"),
        lambda b, _: _band(b.price_rank, b.avg_unit_price.notnull()),
        values=("low", "mid", "high", "unknown"),
        description_en="Average price paid per item, in thirds of this merchant's customers",
    ),
    _t(
        "avg_unit_price",
        "件单价",
        "Average price per item",
        "preference",
        "number",
        ("item_spend", "items"),
        lambda b, _: b.avg_unit_price,
    ),
    _t(
        "discount_rate",
        "平均折扣率",
        "Average discount",
        "preference",
        "number",
        ("discount_total", "spend"),
        _col("discount_rate", 0),
    ),
    _t(
        "discount_sensitivity",
        "折扣敏感度",
        "Discount sensitivity",
        "preference",
        "category",
        ("promo_share", "discount_rate"),
        _discount_sensitivity,
        values=("high", "medium", "low", "unknown"),
    ),
    # promotion behaviour
    _t(
        "acquired_double11",
        "双11新客",
        "Acquired in Double 11",
        "promotion",
        "bool",
        ("first_purchase_promotion",),
        lambda b, _: ibis.coalesce(b.first_purchase_promotion == "double11", ibis.literal(False)),
    ),
    _t(
        "acquired_double12",
        "双12新客",
        "Acquired in Double 12",
        "promotion",
        "bool",
        ("first_purchase_promotion",),
        lambda b, _: ibis.coalesce(b.first_purchase_promotion == "double12", ibis.literal(False)),
    ),
    _t(
        "promotion_only",
        "只在大促购买",
        "Buys only in promotions",
        "promotion",
        "bool",
        ("promo_purchases", "purchases"),
        lambda b, _: (b.purchases > 0) & (b.promo_purchases == b.purchases),
    ),
    _t(
        "promotion_share",
        "大促购买占比",
        "Share of purchases in promotions",
        "promotion",
        "number",
        ("promo_purchases", "purchases"),
        _col("promo_share", 0),
    ),
    _t(
        "double11_purchases",
        "双11购买次数",
        "Double 11 purchases",
        "promotion",
        "number",
        ("purchases_double11",),
        _col("purchases_double11", 0),
    ),
    # channels
    _t(
        "preferred_channel",
        "偏好渠道",
        "Preferred channel",
        "channel",
        "category",
        ("purchases_marketplace", "purchases_web", "purchases_wechat", "purchases_store"),
        _preferred_channel,
        values=("marketplace", "web", "wechat", "store", "none"),
    ),
    _t(
        "channels_used",
        "购买渠道",
        "Channels bought in",
        "channel",
        "list",
        ("purchases_marketplace", "purchases_web", "purchases_wechat", "purchases_store"),
        _channels_used,
    ),
    _t(
        "cross_channel",
        "跨渠道",
        "Cross-channel",
        "channel",
        "bool",
        ("purchases_marketplace", "purchases_web", "purchases_wechat", "purchases_store"),
        lambda b, _: b.channels_bought >= 2,
    ),
    _t(
        "online_offline",
        "线上线下",
        "Online / offline",
        "channel",
        "category",
        ("purchases_marketplace", "purchases_web", "purchases_wechat", "purchases_store"),
        _online_offline,
        values=("online_only", "offline_only", "omni", "none"),
    ),
    _t(
        "first_channel",
        "首购渠道",
        "First purchase channel",
        "channel",
        "category",
        ("first_purchase_channel",),
        lambda b, _: ibis.coalesce(b.first_purchase_channel, ibis.literal("none")),
    ),
    # recent needs
    _t(
        "needs_7d",
        "近7天需求",
        "Needs, last 7 days",
        "need",
        "list",
        ("needs_7d", "browsed_categories_7d"),
        lambda b, _: _list(b.needs_7d),
        description_en="Categories viewed or searched, not bought, in 7 days",
    ),
    _t(
        "needs_30d",
        "近30天需求",
        "Needs, last 30 days",
        "need",
        "list",
        ("needs_30d", "browsed_categories_30d"),
        lambda b, _: _list(b.needs_30d),
    ),
    # interests
    _t(
        "interests",
        "兴趣",
        "Interests",
        "interest",
        "list",
        ("interest_keywords",),
        lambda b, _: _list(b.interests),
        description_en="From searches, chats and notes (Chinese keywords onto the interest taxonomy)",
    ),
    _t(
        "top_interest",
        "主要兴趣",
        "Main interest",
        "interest",
        "category",
        ("interest_keywords",),
        lambda b, _: ibis.coalesce(b.top_interest, ibis.literal("none")),
    ),
    # service
    _t(
        "return_rate",
        "退货率",
        "Return rate",
        "service",
        "number",
        ("refunded_orders", "orders"),
        _col("return_rate", 0),
    ),
    _t(
        "complaints_90d",
        "近90天投诉",
        "Complaints, last 90 days",
        "service",
        "number",
        ("complaints_90d",),
        _col("complaints_90d", 0),
    ),
    _t(
        "complainer",
        "投诉过",
        "Has complained",
        "service",
        "bool",
        ("complaints", "last_complaint_at"),
        lambda b, _: ibis.coalesce(b.complaints, 0) > 0,
    ),
    _t("referral_influence", "推荐影响力", "People referred", "service", "number", ("referees",), _col("referees", 0)),
    _t(
        "arrived_via_referral",
        "经推荐到来",
        "Came through a referral",
        "service",
        "bool",
        ("arrived_via_referral",),
        lambda b, _: ibis.coalesce(b.arrived_via_referral, ibis.literal(False)),
    ),
    # predicted value
    _t(
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
    _t(
        "expected_purchases_30d",
        "未来30天预期购买",
        "Expected purchases, 30 days",
        "value",
        "number",
        ("frequency_days", "recency_span_days", "age_days"),
        lambda b, _: b.expected_purchases_30d,
        refresh="daily",
    ),
    _t(
        "expected_purchases_90d",
        "未来90天预期购买",
        "Expected purchases, 90 days",
        "value",
        "number",
        ("frequency_days", "recency_span_days", "age_days"),
        lambda b, _: b.expected_purchases_90d,
        refresh="daily",
    ),
    _t(
        "expected_purchases_365d",
        "未来一年预期购买",
        "Expected purchases, 365 days",
        "value",
        "number",
        ("frequency_days", "recency_span_days", "age_days"),
        lambda b, _: b.expected_purchases_365d,
        refresh="daily",
    ),
    _t(
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
    _t(
        "clv_365d",
        "一年预测价值",
        "Predicted 1-year value",
        "value",
        "number",
        ("expected_purchases_365d", "expected_spend"),
        lambda b, _: b.clv_365d,
        refresh="daily",
    ),
)
