"""Built-in tags about who a customer is and what they buy: declared attributes, RFM, lifecycle and
preferences. Each tag is an Ibis expression over the joined bases; its ``inputs`` are the columns that explain it."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from omnicrm.portrait.tags.define import as_list, or_default, or_unknown, tag
from omnicrm.portrait.tags.model import Params, TagDefinition

__all__ = ["AGE_BANDS", "LIFECYCLE_STAGES", "PROFILE", "RFM_SEGMENTS"]

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


def _top_categories(b: ir.Table, _: Params) -> ir.Value:
    cats = [b.category_1, b.category_2, b.category_3]
    return ibis.array([c.cast("string") for c in cats]).filter(lambda x: x.notnull())


PROFILE: tuple[TagDefinition, ...] = (
    # attributes
    tag(
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
    tag(
        "age_band",
        "年龄段",
        "Age band",
        "attribute",
        "category",
        ("birthday", "age_years"),
        _age_band,
        values=AGE_BANDS,
    ),
    tag(
        "birthday_month",
        "生日月份",
        "Birthday month",
        "attribute",
        "number",
        ("birthday",),
        lambda b, _: b.birthday.month(),
        description_en="Month of the declared birthday (empty if unknown)",
    ),
    tag(
        "timezone",
        "时区",
        "Time zone",
        "attribute",
        "category",
        ("timezone",),
        lambda b, _: ibis.coalesce(
            b.timezone.re_extract(r"^([A-Za-z_]+(?:/[A-Za-z0-9_+-]+){1,2})$", 1).nullif(""), ibis.literal("unknown")
        ),
        description_zh="会员或来源声明的时区（如 Asia/Shanghai）；营销的免打扰时段按它计算",
        description_en="Time zone as members or sources declared it (e.g. Asia/Shanghai); quiet hours follow it",
    ),
    tag(
        "language",
        "语言",
        "Language",
        "attribute",
        "category",
        ("locale",),
        lambda b, _: ibis.cases(
            (b.locale.lower().re_search(r"^(zh|cn|chinese|中文)"), "zh"),
            (b.locale.lower().re_search(r"^(en|english)"), "en"),
            else_="unknown",
        ),
        values=("zh", "en", "unknown"),
        description_zh="会员或来源声明的语言（locale）；营销消息按它选择中文或英文模板",
        description_en="Language as members or sources declared it (locale); messages use its zh or en template",
    ),
    tag(
        "province",
        "省份",
        "Province",
        "attribute",
        "category",
        ("province", "ship_province"),
        lambda b, _: ibis.coalesce(b.province, b.ship_province, ibis.literal("unknown")),
    ),
    tag(
        "city",
        "城市",
        "City",
        "attribute",
        "category",
        ("city", "ship_city"),
        lambda b, _: ibis.coalesce(b.city, b.ship_city, ibis.literal("unknown")),
        description_en="Declared city, else the city most recent orders were sent to",
    ),
    tag(
        "activity_cities",
        "活动城市",
        "Activity range",
        "attribute",
        "list",
        ("activity_cities", "ship_cities"),
        lambda b, _: as_list(b.activity_cities),
        description_en="Cities orders were sent to",
    ),
    tag("education", "学历", "Education", "attribute", "category", ("education",), or_unknown("education")),
    tag("is_member", "会员", "Member", "attribute", "bool", ("member_card",), lambda b, _: b.member_card.notnull()),
    tag(
        "member_tenure_days",
        "入会天数",
        "Days a member",
        "attribute",
        "number",
        ("member_joined_at",),
        lambda b, _: b.member_tenure_days,
    ),
    tag(
        "wechat_follower",
        "公众号粉丝",
        "Follows the WeChat account",
        "attribute",
        "bool",
        ("wechat_follower",),
        lambda b, _: ibis.coalesce(b.wechat_follower == 1, ibis.literal(False)),
    ),
    tag(
        "hobbies",
        "爱好",
        "Hobbies",
        "attribute",
        "list",
        ("hobby_keywords",),
        lambda b, _: as_list(b.hobbies),
        description_en="Interests found in what store clerks and service agents noted",
    ),
    # RFM
    tag(
        "recency_days",
        "最近购买距今天数",
        "Days since last purchase",
        "rfm",
        "number",
        ("last_purchase_at",),
        lambda b, _: b.recency_days,
        description_en="Empty for customers who never bought",
    ),
    tag("frequency", "购买次数", "Purchases", "rfm", "number", ("purchases",), or_default("purchases", 0)),
    tag(
        "monetary",
        "累计消费",
        "Spend",
        "rfm",
        "number",
        ("spend",),
        or_default("spend", 0),
        description_en="Paid minus refunded, over all purchases",
    ),
    tag("r_score", "R分", "R score", "rfm", "number", ("recency_days",), lambda b, _: b.r_score),
    tag("f_score", "F分", "F score", "rfm", "number", ("purchases",), lambda b, _: b.f_score),
    tag("m_score", "M分", "M score", "rfm", "number", ("spend",), lambda b, _: b.m_score),
    tag(
        "rfm_segment",
        "RFM分群",
        "RFM segment",
        "rfm",
        "category",
        ("r_score", "f_score", "m_score"),
        _rfm_segment,
        values=RFM_SEGMENTS,
    ),
    tag(
        "avg_order_value",
        "客单价",
        "Average order value",
        "rfm",
        "number",
        ("spend", "purchases"),
        lambda b, _: b.avg_order_value,
    ),
    tag(
        "spend_365d",
        "近一年消费",
        "Spend in the last 365 days",
        "rfm",
        "number",
        ("spend_365d",),
        or_default("spend_365d", 0),
    ),
    # lifecycle
    tag(
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
    tag(
        "tenure_days",
        "首购距今天数",
        "Days since first purchase",
        "lifecycle",
        "number",
        ("first_purchase_at",),
        lambda b, _: b.tenure_days,
    ),
    tag(
        "purchase_interval_days",
        "平均回购间隔",
        "Mean days between purchases",
        "lifecycle",
        "number",
        ("first_purchase_at", "last_purchase_at", "purchase_days"),
        lambda b, _: b.purchase_interval_days,
    ),
    tag(
        "repeat_buyer",
        "复购客户",
        "Repeat buyer",
        "lifecycle",
        "bool",
        ("purchase_days",),
        lambda b, _: ibis.coalesce(b.purchase_days, 0) >= 2,
    ),
    # preferences
    tag(
        "preferred_category",
        "偏好品类",
        "Preferred category",
        "preference",
        "category",
        ("category_1",),
        or_unknown("category_1"),
    ),
    tag(
        "top_categories",
        "常购品类",
        "Top categories",
        "preference",
        "list",
        ("category_1", "category_2", "category_3"),
        _top_categories,
    ),
    tag(
        "preferred_brand",
        "偏好品牌",
        "Preferred brand",
        "preference",
        "category",
        ("brand_1",),
        or_unknown("brand_1"),
    ),
    tag(
        "preferred_size",
        "常买尺码",
        "Usual clothing size",
        "preference",
        "category",
        ("size_1",),
        or_unknown("size_1"),
    ),
    tag(
        "preferred_shoe_size",
        "常买鞋码",
        "Usual shoe size",
        "preference",
        "category",
        ("shoe_size_1",),
        or_unknown("shoe_size_1"),
    ),
    tag(
        "preferred_colour",
        "偏好颜色",
        "Preferred colour",
        "preference",
        "category",
        ("colour_1",),
        or_unknown("colour_1"),
    ),
    tag(
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
    tag(
        "avg_unit_price",
        "件单价",
        "Average price per item",
        "preference",
        "number",
        ("item_spend", "items"),
        lambda b, _: b.avg_unit_price,
    ),
    tag(
        "discount_rate",
        "平均折扣率",
        "Average discount",
        "preference",
        "number",
        ("discount_total", "spend"),
        or_default("discount_rate", 0),
    ),
    tag(
        "discount_sensitivity",
        "折扣敏感度",
        "Discount sensitivity",
        "preference",
        "category",
        ("promo_share", "discount_rate"),
        _discount_sensitivity,
        values=("high", "medium", "low", "unknown"),
    ),
)
