"""stored value: members' prepaid balances as entries and the top-up buckets each entry draws from

Revision ID: 0015
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "stored_value_entries",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False, comment="OneID member"),
        sa.Column(
            "kind", sa.String(length=16), nullable=False, comment="topup, spend, refund, topup_refund or reversal"
        ),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False, comment="signed; a member's balance is the sum"),
        sa.Column("paid_fen", sa.BigInteger(), nullable=False, comment="the part of amount_fen in paid money"),
        sa.Column("bonus_fen", sa.BigInteger(), nullable=False, comment="the part of amount_fen in bonus money"),
        sa.Column(
            "target_id", ID, nullable=True, comment="the spend refunded, the top-up refunded, or the entry reversed"
        ),
        sa.Column(
            "idempotency_key", sa.String(length=255), nullable=False, comment="a retried request finds its entry"
        ),
        sa.Column(
            "store_code", sa.String(length=64), nullable=False, comment="the store (or online shop) where it happened"
        ),
        sa.Column(
            "guide_id", sa.String(length=64), nullable=True, comment="the store guide (导购) who served; null online"
        ),
        sa.Column("reference", sa.String(length=255), nullable=True, comment="e.g. the till receipt or the payment"),
        sa.Column("reason", sa.Text(), nullable=True, comment="why (required for refunds of top-ups and reversals)"),
        sa.Column("recorded_by", sa.String(length=128), nullable=False, comment="the API key or console user"),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_fen = paid_fen + bonus_fen", name="ck_stored_value_entries_split"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["point_accounts.customer_id"],
            name=op.f("fk_stored_value_entries_customer_id_point_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["stored_value_entries.id"],
            name=op.f("fk_stored_value_entries_target_id_stored_value_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_value_entries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_stored_value_entries_idempotency_key")),
    )
    op.create_index(
        op.f("ix_stored_value_entries_at_store_code"), "stored_value_entries", ["at", "store_code"], unique=False
    )
    op.create_index(
        op.f("ix_stored_value_entries_customer_id_id"), "stored_value_entries", ["customer_id", "id"], unique=False
    )
    op.create_index(op.f("ix_stored_value_entries_target_id"), "stored_value_entries", ["target_id"], unique=False)
    op.create_table(
        "stored_value_draws",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("entry_id", ID, nullable=False, comment="the entry that moved it"),
        sa.Column("topup_id", ID, nullable=False, comment="the top-up's bucket"),
        sa.Column("bucket", sa.String(length=8), nullable=False, comment="paid or bonus"),
        sa.Column(
            "amount_fen", sa.BigInteger(), nullable=False, comment="taken from the bucket (+) or given back to it (-)"
        ),
        sa.CheckConstraint("amount_fen <> 0 AND bucket IN ('paid', 'bonus')", name="ck_stored_value_draws_amount"),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["stored_value_entries.id"], name=op.f("fk_stored_value_draws_entry_id_stored_value_entries")
        ),
        sa.ForeignKeyConstraint(
            ["topup_id"], ["stored_value_entries.id"], name=op.f("fk_stored_value_draws_topup_id_stored_value_entries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_value_draws")),
    )
    op.create_index(op.f("ix_stored_value_draws_entry_id"), "stored_value_draws", ["entry_id"], unique=False)
    op.create_index(
        op.f("ix_stored_value_draws_topup_id_bucket"), "stored_value_draws", ["topup_id", "bucket"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_stored_value_draws_topup_id_bucket"), table_name="stored_value_draws")
    op.drop_index(op.f("ix_stored_value_draws_entry_id"), table_name="stored_value_draws")
    op.drop_table("stored_value_draws")
    op.drop_index(op.f("ix_stored_value_entries_target_id"), table_name="stored_value_entries")
    op.drop_index(op.f("ix_stored_value_entries_customer_id_id"), table_name="stored_value_entries")
    op.drop_index(op.f("ix_stored_value_entries_at_store_code"), table_name="stored_value_entries")
    op.drop_table("stored_value_entries")
