"""Loyalty: the points ledger, tiers and coupons."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from omnicrm.store.schema.base import Id, metadata

__all__ = [
    "coupon_redemptions",
    "coupon_templates",
    "coupons",
    "loyalty_rules",
    "member_tiers",
    "point_accounts",
    "point_draws",
    "point_entries",
    "point_lots",
    "tier_changes",
]

# ---------------------------------------------------------------------------------------------------------------------
# Loyalty: the points ledger (lots, entries and the lots each entry draws from) and member tiers (omnicrm.loyalty).
# Balances are never stored: they are sums over point_entries; a lot's remaining points are its points less its draws.
# ---------------------------------------------------------------------------------------------------------------------

loyalty_rules = Table(
    "loyalty_rules",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False, comment="rule version, part of a lot's key"),
    Column("definition", Text, nullable=False, comment="JSON: earn rules, tiers, expiry, point value, refund policy"),
    Column("note", Text, nullable=True),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

point_accounts = Table(
    "point_accounts",
    metadata,
    Column("customer_id", BigInteger, primary_key=True, autoincrement=False, comment="OneID customer"),
    Column("version", BigInteger, nullable=False, default=0, comment="bumped by every change; no balance is kept"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

point_lots = Table(
    "point_lots",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, ForeignKey("point_accounts.customer_id"), nullable=False),
    Column("points", BigInteger, nullable=False, comment="points earned; what is left is points less its draws"),
    Column("status", String(16), nullable=False, comment="pending, active, expired or reversed"),
    Column("source", String(64), nullable=False, comment="the order's source (tmall, pos-store-3, ...) or manual"),
    Column("order_id", String(255), nullable=True, comment="the order that earned it; null for adjustments"),
    Column("rule_version", Integer, nullable=True, comment="loyalty_rules version that computed it"),
    Column("idempotency_key", String(255), nullable=False, unique=True, comment="source:order id:rule version"),
    Column("spend_cents", BigInteger, nullable=False, default=0, comment="net paid of the order, in cents (fen)"),
    Column("earned_at", DateTime(timezone=True), nullable=False, comment="when the order was paid"),
    Column("activates_at", DateTime(timezone=True), nullable=False, comment="end of the return window"),
    Column("expires_at", DateTime(timezone=True), nullable=True, comment="null: never"),
    Column("activated_at", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True, comment="when it expired or was reversed"),
    Column("detail", Text, nullable=True, comment="JSON: how the points were computed"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # an order earns once, whatever the rule version (NULL order ids, adjustments, never collide)
    UniqueConstraint("source", "order_id"),
    Index(None, "customer_id", "status", "expires_at"),
    Index(None, "status", "activates_at"),
    Index(None, "status", "expires_at"),
)

point_entries = Table(
    "point_entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, ForeignKey("point_accounts.customer_id"), nullable=False),
    Column("kind", String(16), nullable=False, comment="earn, spend, expire, reverse or adjust"),
    Column("points", BigInteger, nullable=False, comment="signed; a member's balance is the sum"),
    Column("written_off", BigInteger, nullable=False, default=0, comment="reversed points forgiven, not taken"),
    Column("spend_cents", BigInteger, nullable=False, default=0, comment="order money earned on (+) or refunded (-)"),
    Column("lot_id", Id, ForeignKey("point_lots.id"), nullable=True, comment="the lot earned or the lot reversed"),
    Column("idempotency_key", String(255), nullable=True, unique=True, comment="a retried request finds its entry"),
    Column("reference", String(255), nullable=True, comment="e.g. the order or till receipt points were spent on"),
    Column("reason", Text, nullable=True, comment="why (required for adjustments)"),
    Column("recorded_by", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    # append-only: entries are never updated or deleted
    Index(None, "customer_id", "id"),
    Index(None, "lot_id"),
    Index(None, "kind", "at"),
)

point_draws = Table(
    "point_draws",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("entry_id", Id, ForeignKey("point_entries.id"), nullable=False),
    Column("lot_id", Id, ForeignKey("point_lots.id"), nullable=False),
    Column("points", BigInteger, nullable=False, comment="points the entry took from the lot (> 0)"),
    Index(None, "entry_id"),
    Index(None, "lot_id"),
)

member_tiers = Table(
    "member_tiers",
    metadata,
    Column("customer_id", BigInteger, ForeignKey("point_accounts.customer_id"), primary_key=True, autoincrement=False),
    Column("tier", String(32), nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
    Column("review_at", DateTime(timezone=True), nullable=False, comment="period end: a downgrade waits for it"),
    Column("grace_until", DateTime(timezone=True), nullable=True, comment="set when kept on grace after a period"),
    Column("rule_version", Integer, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

tier_changes = Table(
    "tier_changes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, nullable=False),
    Column("change", String(16), nullable=False, comment="upgrade, downgrade, grace or renewed"),
    Column("from_tier", String(32), nullable=True),
    Column("to_tier", String(32), nullable=False),
    Column("qualifying", BigInteger, nullable=False, comment="points or cents over the window"),
    Column("basis", String(8), nullable=False, comment="points or spend"),
    Column("rule_version", Integer, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index(None, "customer_id", "at"),
)

# ---------------------------------------------------------------------------------------------------------------------
# Coupons: templates (the budget), coupons issued from them and their redemptions (omnicrm.loyalty.coupons).
# What is left of a template's quantity is never stored: it is total_quantity less the coupons issued from it; an
# "expired" coupon is an unredeemed one past its expires_at. Redemptions are append-only, a reversal only marks one.
# ---------------------------------------------------------------------------------------------------------------------

coupon_templates = Table(
    "coupon_templates",
    metadata,
    Column("id", String(64), primary_key=True, comment="the merchant's template id, as campaigns name it"),
    Column("name", String(255), nullable=False),
    Column("kind", String(16), nullable=False, comment="amount_off, percent_off or threshold"),
    Column("amount_off_fen", BigInteger, nullable=True, comment="amount_off and threshold: the discount, in fen"),
    Column("percent_off", Integer, nullable=True, comment="percent_off: 1-99"),
    Column("max_off_fen", BigInteger, nullable=True, comment="percent_off: a cap on the discount, in fen"),
    Column("min_spend_fen", BigInteger, nullable=False, default=0, comment="threshold: spend at least this"),
    Column("category", String(128), nullable=True, comment="only this category's amount counts; null: all"),
    Column("valid_from", DateTime(timezone=True), nullable=True, comment="fixed dates: usable from"),
    Column("valid_until", DateTime(timezone=True), nullable=True, comment="fixed dates: usable until (exclusive)"),
    Column("valid_days", Integer, nullable=True, comment="or: usable for N days from issue"),
    Column("total_quantity", BigInteger, nullable=False, comment="most coupons ever issued from it (the budget)"),
    Column("per_person_limit", Integer, nullable=False, comment="most coupons one customer gets from it"),
    Column("channels", String(64), nullable=False, comment="where redeemable: online, store or online,store"),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

coupons = Table(
    "coupons",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("code", String(16), nullable=False, unique=True, comment="short redeemable code (text or QR payload)"),
    Column("template_id", String(64), ForeignKey("coupon_templates.id"), nullable=False),
    Column("customer_id", BigInteger, nullable=False, comment="OneID customer"),
    Column("status", String(16), nullable=False, comment="issued or redeemed (expired is derived from expires_at)"),
    Column("idempotency_key", String(255), nullable=False, unique=True, comment="a repeated issue finds its coupon"),
    Column("campaign_id", String(64), nullable=True, comment="the campaign (or referral, ...) that issued it"),
    Column("store_code", String(64), nullable=True, comment="the store whose guide handed it out, if any"),
    Column("guide_id", String(64), nullable=True, comment="the store guide (导购) who handed it out, if any"),
    Column("issued_by", String(128), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("redeemed_at", DateTime(timezone=True), nullable=True, comment="set while a redemption stands"),
    Index(None, "template_id", "customer_id"),
    Index(None, "customer_id"),
    Index(None, "status", "expires_at"),
    Index(None, "store_code", "guide_id"),
)

coupon_redemptions = Table(
    "coupon_redemptions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("coupon_id", Id, ForeignKey("coupons.id"), nullable=False),
    Column("channel", String(16), nullable=False, comment="online or store"),
    Column("order_id", String(255), nullable=True, comment="the order (online) or till receipt (store)"),
    Column("store_code", String(64), nullable=True, comment="the store credited"),
    Column("guide_id", String(64), nullable=True, comment="the store guide (导购) credited"),
    Column("order_amount_fen", BigInteger, nullable=False),
    Column("eligible_fen", BigInteger, nullable=False, comment="the amount the coupon applied to"),
    Column("discount_fen", BigInteger, nullable=False),
    Column("redeemed_by", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reversed_at", DateTime(timezone=True), nullable=True, comment="set when the order was refunded"),
    Column("reversal_reason", Text, nullable=True),
    Index(None, "coupon_id"),
    Index(None, "store_code", "guide_id"),
    Index(None, "order_id"),
)
