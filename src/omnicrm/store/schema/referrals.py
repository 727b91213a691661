"""Referrals (value sharing): the programme's versions, members' codes, link visits and the referrals themselves."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Integer, String, Table, Text

from omnicrm.store.schema.base import Id, metadata

__all__ = ["referral_codes", "referral_programmes", "referral_visits", "referrals"]

# ---------------------------------------------------------------------------------------------------------------------
# Referrals (omnicrm.loyalty.referrals): a member's code brings a new person; once that person's first paid order is
# past its return window, both are rewarded through the points ledger and coupons. Rewards are never stored twice:
# the ledger's lot and the coupon carry the referral's idempotency keys (referral:<id>:referrer|referee).
# ---------------------------------------------------------------------------------------------------------------------

referral_programmes = Table(
    "referral_programmes",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False, comment="programme version a referral names"),
    Column("definition", Text, nullable=False, comment="JSON: both sides' rewards, return window, dates, landing URL"),
    Column("note", Text, nullable=True, comment="why this version was saved"),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

referral_codes = Table(
    "referral_codes",
    metadata,
    Column("customer_id", BigInteger, primary_key=True, autoincrement=False, comment="the member (OneID customer)"),
    Column("code", String(16), nullable=False, unique=True, comment="the member's code for good: check character last"),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

referral_visits = Table(
    "referral_visits",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("code", String(16), ForeignKey("referral_codes.code"), nullable=False, comment="the code of the link"),
    Column("at", DateTime(timezone=True), nullable=False, comment="when the link was followed"),
    Column("user_agent", String(512), nullable=True, comment="the browser's, cut to 512 characters"),
    Index(None, "code", "at"),
)

referrals = Table(
    "referrals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("status", String(16), nullable=False, comment="pending, rewarded, void or refused"),
    Column("reason", String(32), nullable=True, comment="void or refused: self, ring, already_referred, not_new, ..."),
    Column("explanation", Text, nullable=True, comment="JSON: the OneID link, chain or orders behind the reason"),
    Column("code", String(16), nullable=False, comment="the referrer's code the referee came with"),
    Column("referrer_id", BigInteger, nullable=False, comment="the code's member; the id in force once settled"),
    Column("referee_type", String(32), nullable=False, comment="the type of identifier the referee gave"),
    Column("referee_key", String(512), nullable=False, comment="its OneID key, e.g. phone::+8613900000001"),
    Column("referee_id", BigInteger, nullable=True, comment="the referee's OneID customer, once OneID knows them"),
    Column("claim", String(512), nullable=True, unique=True, comment="referee_key unless refused: one referrer each"),
    Column("programme_version", Integer, nullable=False, comment="the programme in force when it was recorded"),
    Column("visit_id", Id, ForeignKey("referral_visits.id"), nullable=True, comment="the link visit it came from"),
    Column("idempotency_key", String(255), nullable=True, unique=True, comment="a retried request finds its referral"),
    Column("recorded_by", String(128), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("order_source", String(64), nullable=True, comment="the referee's first paid order: its source"),
    Column("order_id", String(255), nullable=True, comment="and its order id"),
    Column("order_paid_at", DateTime(timezone=True), nullable=True),
    Column("due_at", DateTime(timezone=True), nullable=True, comment="end of that order's return window"),
    Column("settled_at", DateTime(timezone=True), nullable=True, comment="when it was rewarded or voided"),
    Column("referrer_points", BigInteger, nullable=False, default=0, comment="points the referrer was given"),
    Column("referee_points", BigInteger, nullable=False, default=0, comment="points the referee was given"),
    Column("referrer_template", String(64), nullable=True, comment="coupon template owed to the referrer"),
    Column("referrer_coupon", String(16), nullable=True, comment="the code of the coupon issued for it"),
    Column("referrer_coupon_problem", Text, nullable=True, comment="why that coupon could not be issued"),
    Column("referee_template", String(64), nullable=True, comment="coupon template owed to the referee"),
    Column("referee_coupon", String(16), nullable=True),
    Column("referee_coupon_problem", Text, nullable=True),
    Index(None, "referrer_id", "status"),
    Index(None, "status", "id"),
    Index(None, "referee_id"),
    Index(None, "visit_id"),
)
