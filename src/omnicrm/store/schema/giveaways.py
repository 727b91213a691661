"""Giveaways: lucky draws and red-packet drops with a budget, their prizes, packets, eligible lists and entries."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from omnicrm.store.schema.base import Id, metadata

__all__ = ["giveaway_eligible", "giveaway_entries", "giveaway_packets", "giveaway_prizes", "giveaways"]

# ---------------------------------------------------------------------------------------------------------------------
# Giveaways (omnicrm.loyalty.giveaways). Every entry locks its giveaway's row, which also holds the running totals
# (entry_count, spent_fen) that the audit checks against the entries. The seed stays secret until the giveaway closes;
# only its sha256 (seed_hash) is shown before. Entries are append-only.
# ---------------------------------------------------------------------------------------------------------------------

giveaways = Table(
    "giveaways",
    metadata,
    Column("id", String(48), primary_key=True, comment="the merchant's id for the giveaway, as the API names it"),
    Column("name", String(255), nullable=False),
    Column("kind", String(16), nullable=False, comment="lucky_draw or red_packet"),
    Column("opens_at", DateTime(timezone=True), nullable=False, comment="first moment an entry is taken"),
    Column("closes_at", DateTime(timezone=True), nullable=False, comment="entries stop here (exclusive)"),
    Column("timezone", String(64), nullable=False, comment="the zone whose days the per-day limit counts"),
    Column("budget_fen", BigInteger, nullable=False, comment="most money value ever paid out, in fen"),
    Column("spent_fen", BigInteger, nullable=False, comment="money value paid out so far (Σ entries' value_fen)"),
    Column("entry_count", BigInteger, nullable=False, comment="entries so far: the last entry's number"),
    Column("miss_weight", BigInteger, nullable=False, comment="lucky draw: the weight of drawing no prize"),
    Column("packets", Integer, nullable=True, comment="red packet: how many packets the budget is split into"),
    Column("point_value", String(16), nullable=False, comment="money one point is worth, in yuan (decimal text)"),
    Column("points_valid_days", Integer, nullable=True, comment="points won expire after N days; null: never"),
    Column("per_person_daily", Integer, nullable=True, comment="most entries of one customer per day; null: any"),
    Column("per_person_total", Integer, nullable=True, comment="most entries of one customer in all; null: any"),
    Column("prizes_per_person", Integer, nullable=True, comment="most prizes one customer wins; null: any"),
    Column("restricted", Boolean, nullable=False, comment="true: only customers in giveaway_eligible may enter"),
    Column("seed", String(64), nullable=False, comment="32 random bytes (hex); secret until the giveaway closes"),
    Column("seed_hash", String(64), nullable=False, comment="sha256 of the seed bytes: the published commitment"),
    Column("closed_at", DateTime(timezone=True), nullable=True, comment="set when staff closed it early"),
    Column("closed_by", String(128), nullable=True),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

giveaway_prizes = Table(
    "giveaway_prizes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("giveaway_id", String(48), ForeignKey("giveaways.id"), nullable=False),
    Column("position", Integer, nullable=False, comment="1, 2, ...: the order the odds are laid out in"),
    Column("kind", String(16), nullable=False, comment="points, coupon or gift (a physical gift handed out)"),
    Column("name", String(255), nullable=False),
    Column("weight", BigInteger, nullable=False, comment="odds: weight / (Σ weights + miss_weight)"),
    Column("points", BigInteger, nullable=True, comment="points prize: the points credited"),
    Column("coupon_template_id", String(64), ForeignKey("coupon_templates.id"), nullable=True),
    Column("value_fen", BigInteger, nullable=False, comment="money value counted against the budget, in fen"),
    Column("stock", BigInteger, nullable=True, comment="most of this prize ever given; null: only the budget limits"),
    Column("awarded", BigInteger, nullable=False, comment="how many were given so far"),
    UniqueConstraint("giveaway_id", "position"),
)

giveaway_packets = Table(
    "giveaway_packets",
    metadata,
    Column("giveaway_id", String(48), ForeignKey("giveaways.id"), primary_key=True),
    Column("number", Integer, primary_key=True, autoincrement=False, comment="1..packets: claimed in this order"),
    Column("amount_fen", BigInteger, nullable=False, comment="fixed by the seed at creation; ≥ 1 fen"),
)

giveaway_eligible = Table(
    "giveaway_eligible",
    metadata,
    Column("giveaway_id", String(48), ForeignKey("giveaways.id"), primary_key=True),
    Column("customer_id", BigInteger, primary_key=True, autoincrement=False, comment="OneID customer who may enter"),
)

giveaway_entries = Table(
    "giveaway_entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("giveaway_id", String(48), ForeignKey("giveaways.id"), nullable=False),
    Column("seq", BigInteger, nullable=False, comment="the entry's number in its giveaway: 1, 2, ..."),
    Column("customer_id", BigInteger, nullable=False, comment="OneID customer"),
    Column("idempotency_key", String(255), nullable=False, comment="a retried request finds its entry"),
    Column("day", Date, nullable=False, comment="the day of the entry in the giveaway's time zone"),
    Column("draw", String(64), nullable=True, comment="lucky draw: HMAC-SHA256(seed, id|seq|customer) in hex"),
    Column("chosen_prize_id", Id, ForeignKey("giveaway_prizes.id"), nullable=True, comment="what the odds chose"),
    Column("prize_id", Id, ForeignKey("giveaway_prizes.id"), nullable=True, comment="what was given; null: none"),
    Column("packet", Integer, nullable=True, comment="red packet: the packet number claimed"),
    Column("outcome", String(16), nullable=False, comment="won, miss, or no_stock / no_budget (chosen, not given)"),
    Column("value_fen", BigInteger, nullable=False, comment="money value given (0 when nothing)"),
    Column("points", BigInteger, nullable=True, comment="points credited, if any"),
    Column("lot_id", Id, ForeignKey("point_lots.id"), nullable=True, comment="the points lot that paid it"),
    Column("coupon_id", Id, ForeignKey("coupons.id"), nullable=True, comment="the coupon that paid it"),
    Column("entered_by", String(128), nullable=False),
    Column("entered_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("giveaway_id", "seq"),
    UniqueConstraint("giveaway_id", "idempotency_key"),
    Index(None, "giveaway_id", "customer_id", "day"),
)
