"""Stored value: members' prepaid balances as a ledger of entries and the top-up buckets each entry draws from."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Index, String, Table, Text

from omnicrm.store.schema.base import Id, metadata

__all__ = ["stored_value_draws", "stored_value_entries"]

# ---------------------------------------------------------------------------------------------------------------------
# Stored value (omnicrm.loyalty.stored_value), money in fen. A balance is never stored: it is the sum of the member's
# entries. Every top-up holds two buckets (paid and bonus money); what is left in a bucket is its size less the draws
# on it. The member's lock is their point_accounts row, shared with the points ledger. Entries are append-only.
# ---------------------------------------------------------------------------------------------------------------------

stored_value_entries = Table(
    "stored_value_entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, ForeignKey("point_accounts.customer_id"), nullable=False, comment="OneID member"),
    Column("kind", String(16), nullable=False, comment="topup, spend, refund, topup_refund or reversal"),
    Column("amount_fen", BigInteger, nullable=False, comment="signed; a member's balance is the sum"),
    Column("paid_fen", BigInteger, nullable=False, comment="the part of amount_fen in paid money"),
    Column("bonus_fen", BigInteger, nullable=False, comment="the part of amount_fen in bonus money"),
    Column(
        "target_id",
        Id,
        ForeignKey("stored_value_entries.id"),
        nullable=True,
        comment="the spend refunded, the top-up refunded, or the entry reversed",
    ),
    Column("idempotency_key", String(255), nullable=False, unique=True, comment="a retried request finds its entry"),
    Column("store_code", String(64), nullable=False, comment="the store (or online shop) where it happened"),
    Column("guide_id", String(64), nullable=True, comment="the store guide (导购) who served; null online"),
    Column("reference", String(255), nullable=True, comment="e.g. the till receipt or the payment"),
    Column("reason", Text, nullable=True, comment="why (required for refunds of top-ups and reversals)"),
    Column("recorded_by", String(128), nullable=False, comment="the API key or console user"),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("amount_fen = paid_fen + bonus_fen", name="ck_stored_value_entries_split"),
    Index(None, "customer_id", "id"),
    Index(None, "target_id"),
    Index(None, "at", "store_code"),
)

stored_value_draws = Table(
    "stored_value_draws",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("entry_id", Id, ForeignKey("stored_value_entries.id"), nullable=False, comment="the entry that moved it"),
    Column("topup_id", Id, ForeignKey("stored_value_entries.id"), nullable=False, comment="the top-up's bucket"),
    Column("bucket", String(8), nullable=False, comment="paid or bonus"),
    Column("amount_fen", BigInteger, nullable=False, comment="taken from the bucket (+) or given back to it (-)"),
    CheckConstraint("amount_fen <> 0 AND bucket IN ('paid', 'bonus')", name="ck_stored_value_draws_amount"),
    Index(None, "entry_id"),
    Index(None, "topup_id", "bucket"),
)
