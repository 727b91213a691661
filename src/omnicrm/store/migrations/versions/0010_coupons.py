"""coupons: templates (the budget), coupons issued from them and their redemptions

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coupon_templates",
        sa.Column(
            "id", sa.String(length=64), nullable=False, comment="the merchant's template id, as campaigns name it"
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False, comment="amount_off, percent_off or threshold"),
        sa.Column(
            "amount_off_fen", sa.BigInteger(), nullable=True, comment="amount_off and threshold: the discount, in fen"
        ),
        sa.Column("percent_off", sa.Integer(), nullable=True, comment="percent_off: 1-99"),
        sa.Column("max_off_fen", sa.BigInteger(), nullable=True, comment="percent_off: a cap on the discount, in fen"),
        sa.Column("min_spend_fen", sa.BigInteger(), nullable=False, comment="threshold: spend at least this"),
        sa.Column(
            "category", sa.String(length=128), nullable=True, comment="only this category's amount counts; null: all"
        ),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True, comment="fixed dates: usable from"),
        sa.Column(
            "valid_until", sa.DateTime(timezone=True), nullable=True, comment="fixed dates: usable until (exclusive)"
        ),
        sa.Column("valid_days", sa.Integer(), nullable=True, comment="or: usable for N days from issue"),
        sa.Column(
            "total_quantity", sa.BigInteger(), nullable=False, comment="most coupons ever issued from it (the budget)"
        ),
        sa.Column("per_person_limit", sa.Integer(), nullable=False, comment="most coupons one customer gets from it"),
        sa.Column(
            "channels", sa.String(length=64), nullable=False, comment="where redeemable: online, store or online,store"
        ),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_templates")),
    )
    op.create_table(
        "coupons",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False, comment="short redeemable code (text or QR payload)"),
        sa.Column("template_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False, comment="OneID customer"),
        sa.Column(
            "status",
            sa.String(length=16),
            nullable=False,
            comment="issued or redeemed (expired is derived from expires_at)",
        ),
        sa.Column(
            "idempotency_key", sa.String(length=255), nullable=False, comment="a repeated issue finds its coupon"
        ),
        sa.Column(
            "campaign_id", sa.String(length=64), nullable=True, comment="the campaign (or referral, ...) that issued it"
        ),
        sa.Column(
            "store_code", sa.String(length=64), nullable=True, comment="the store whose guide handed it out, if any"
        ),
        sa.Column(
            "guide_id", sa.String(length=64), nullable=True, comment="the store guide (导购) who handed it out, if any"
        ),
        sa.Column("issued_by", sa.String(length=128), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True, comment="set while a redemption stands"),
        sa.ForeignKeyConstraint(
            ["template_id"], ["coupon_templates.id"], name=op.f("fk_coupons_template_id_coupon_templates")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons")),
        sa.UniqueConstraint("code", name=op.f("uq_coupons_code")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_coupons_idempotency_key")),
    )
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_coupons_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_coupons_status_expires_at"), ["status", "expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_coupons_store_code_guide_id"), ["store_code", "guide_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_coupons_template_id_customer_id"), ["template_id", "customer_id"], unique=False
        )

    op.create_table(
        "coupon_redemptions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("coupon_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False, comment="online or store"),
        sa.Column(
            "order_id", sa.String(length=255), nullable=True, comment="the order (online) or till receipt (store)"
        ),
        sa.Column("store_code", sa.String(length=64), nullable=True, comment="the store credited"),
        sa.Column("guide_id", sa.String(length=64), nullable=True, comment="the store guide (导购) credited"),
        sa.Column("order_amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("eligible_fen", sa.BigInteger(), nullable=False, comment="the amount the coupon applied to"),
        sa.Column("discount_fen", sa.BigInteger(), nullable=False),
        sa.Column("redeemed_by", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=True, comment="set when the order was refunded"),
        sa.Column("reversal_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["coupon_id"], ["coupons.id"], name=op.f("fk_coupon_redemptions_coupon_id_coupons")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_redemptions")),
    )
    with op.batch_alter_table("coupon_redemptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_coupon_redemptions_coupon_id"), ["coupon_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_coupon_redemptions_order_id"), ["order_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_coupon_redemptions_store_code_guide_id"), ["store_code", "guide_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("coupon_redemptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coupon_redemptions_store_code_guide_id"))
        batch_op.drop_index(batch_op.f("ix_coupon_redemptions_order_id"))
        batch_op.drop_index(batch_op.f("ix_coupon_redemptions_coupon_id"))

    op.drop_table("coupon_redemptions")
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coupons_template_id_customer_id"))
        batch_op.drop_index(batch_op.f("ix_coupons_store_code_guide_id"))
        batch_op.drop_index(batch_op.f("ix_coupons_status_expires_at"))
        batch_op.drop_index(batch_op.f("ix_coupons_customer_id"))

    op.drop_table("coupons")
    op.drop_table("coupon_templates")
