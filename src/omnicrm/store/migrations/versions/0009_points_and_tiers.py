"""loyalty: the points ledger (accounts, lots, entries, draws), versioned loyalty rules and member tiers

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loyalty_rules",
        sa.Column(
            "version", sa.Integer(), autoincrement=False, nullable=False, comment="rule version, part of a lot's key"
        ),
        sa.Column(
            "definition",
            sa.Text(),
            nullable=False,
            comment="JSON: earn rules, tiers, expiry, point value, refund policy",
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_loyalty_rules")),
    )
    op.create_table(
        "point_accounts",
        sa.Column("customer_id", sa.BigInteger(), autoincrement=False, nullable=False, comment="OneID customer"),
        sa.Column("version", sa.BigInteger(), nullable=False, comment="bumped by every change; no balance is kept"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_point_accounts")),
    )
    op.create_table(
        "tier_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False, comment="upgrade, downgrade, grace or renewed"),
        sa.Column("from_tier", sa.String(length=32), nullable=True),
        sa.Column("to_tier", sa.String(length=32), nullable=False),
        sa.Column("qualifying", sa.BigInteger(), nullable=False, comment="points or cents over the window"),
        sa.Column("basis", sa.String(length=8), nullable=False, comment="points or spend"),
        sa.Column("rule_version", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_changes")),
    )
    with op.batch_alter_table("tier_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tier_changes_customer_id_at"), ["customer_id", "at"], unique=False)

    op.create_table(
        "member_tiers",
        sa.Column("customer_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("tier", sa.String(length=32), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "review_at", sa.DateTime(timezone=True), nullable=False, comment="period end: a downgrade waits for it"
        ),
        sa.Column(
            "grace_until", sa.DateTime(timezone=True), nullable=True, comment="set when kept on grace after a period"
        ),
        sa.Column("rule_version", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["point_accounts.customer_id"], name=op.f("fk_member_tiers_customer_id_point_accounts")
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_member_tiers")),
    )
    op.create_table(
        "point_lots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "points", sa.BigInteger(), nullable=False, comment="points earned; what is left is points less its draws"
        ),
        sa.Column("status", sa.String(length=16), nullable=False, comment="pending, active, expired or reversed"),
        sa.Column(
            "source",
            sa.String(length=64),
            nullable=False,
            comment="the order's source (tmall, pos-store-3, ...) or manual",
        ),
        sa.Column(
            "order_id", sa.String(length=255), nullable=True, comment="the order that earned it; null for adjustments"
        ),
        sa.Column("rule_version", sa.Integer(), nullable=True, comment="loyalty_rules version that computed it"),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False, comment="source:order id:rule version"),
        sa.Column("spend_cents", sa.BigInteger(), nullable=False, comment="net paid of the order, in cents (fen)"),
        sa.Column("earned_at", sa.DateTime(timezone=True), nullable=False, comment="when the order was paid"),
        sa.Column("activates_at", sa.DateTime(timezone=True), nullable=False, comment="end of the return window"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True, comment="null: never"),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True, comment="when it expired or was reversed"),
        sa.Column("detail", sa.Text(), nullable=True, comment="JSON: how the points were computed"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["point_accounts.customer_id"], name=op.f("fk_point_lots_customer_id_point_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_lots")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_point_lots_idempotency_key")),
        sa.UniqueConstraint("source", "order_id", name=op.f("uq_point_lots_source_order_id")),
    )
    with op.batch_alter_table("point_lots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_point_lots_customer_id_status_expires_at"),
            ["customer_id", "status", "expires_at"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_point_lots_status_activates_at"), ["status", "activates_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_point_lots_status_expires_at"), ["status", "expires_at"], unique=False)

    op.create_table(
        "point_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False, comment="earn, spend, expire, reverse or adjust"),
        sa.Column("points", sa.BigInteger(), nullable=False, comment="signed; a member's balance is the sum"),
        sa.Column("written_off", sa.BigInteger(), nullable=False, comment="reversed points forgiven, not taken"),
        sa.Column("spend_cents", sa.BigInteger(), nullable=False, comment="order money earned on (+) or refunded (-)"),
        sa.Column(
            "lot_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
            comment="the lot earned or the lot reversed",
        ),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True, comment="a retried request finds its entry"),
        sa.Column(
            "reference",
            sa.String(length=255),
            nullable=True,
            comment="e.g. the order or till receipt points were spent on",
        ),
        sa.Column("reason", sa.Text(), nullable=True, comment="why (required for adjustments)"),
        sa.Column("recorded_by", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["point_accounts.customer_id"], name=op.f("fk_point_entries_customer_id_point_accounts")
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["point_lots.id"], name=op.f("fk_point_entries_lot_id_point_lots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_entries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_point_entries_idempotency_key")),
    )
    with op.batch_alter_table("point_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_point_entries_customer_id_id"), ["customer_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_point_entries_kind_at"), ["kind", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_point_entries_lot_id"), ["lot_id"], unique=False)

    op.create_table(
        "point_draws",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False, comment="points the entry took from the lot (> 0)"),
        sa.ForeignKeyConstraint(["entry_id"], ["point_entries.id"], name=op.f("fk_point_draws_entry_id_point_entries")),
        sa.ForeignKeyConstraint(["lot_id"], ["point_lots.id"], name=op.f("fk_point_draws_lot_id_point_lots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_draws")),
    )
    with op.batch_alter_table("point_draws", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_point_draws_entry_id"), ["entry_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_point_draws_lot_id"), ["lot_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("point_draws", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_point_draws_lot_id"))
        batch_op.drop_index(batch_op.f("ix_point_draws_entry_id"))

    op.drop_table("point_draws")
    with op.batch_alter_table("point_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_point_entries_lot_id"))
        batch_op.drop_index(batch_op.f("ix_point_entries_kind_at"))
        batch_op.drop_index(batch_op.f("ix_point_entries_customer_id_id"))

    op.drop_table("point_entries")
    with op.batch_alter_table("point_lots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_point_lots_status_expires_at"))
        batch_op.drop_index(batch_op.f("ix_point_lots_status_activates_at"))
        batch_op.drop_index(batch_op.f("ix_point_lots_customer_id_status_expires_at"))

    op.drop_table("point_lots")
    op.drop_table("member_tiers")
    with op.batch_alter_table("tier_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tier_changes_customer_id_at"))

    op.drop_table("tier_changes")
    op.drop_table("point_accounts")
    op.drop_table("loyalty_rules")
