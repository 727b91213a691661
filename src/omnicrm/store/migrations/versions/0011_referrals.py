"""referrals: the programme's versions, members' codes, link visits and referrals

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "referral_programmes",
        sa.Column(
            "version", sa.Integer(), autoincrement=False, nullable=False, comment="programme version a referral names"
        ),
        sa.Column(
            "definition",
            sa.Text(),
            nullable=False,
            comment="JSON: both sides' rewards, return window, dates, landing URL",
        ),
        sa.Column("note", sa.Text(), nullable=True, comment="why this version was saved"),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_referral_programmes")),
    )
    op.create_table(
        "referral_codes",
        sa.Column(
            "customer_id", sa.BigInteger(), autoincrement=False, nullable=False, comment="the member (OneID customer)"
        ),
        sa.Column(
            "code", sa.String(length=16), nullable=False, comment="the member's code for good: check character last"
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_referral_codes")),
        sa.UniqueConstraint("code", name=op.f("uq_referral_codes_code")),
    )
    op.create_table(
        "referral_visits",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False, comment="the code of the link"),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, comment="when the link was followed"),
        sa.Column("user_agent", sa.String(length=512), nullable=True, comment="the browser's, cut to 512 characters"),
        sa.ForeignKeyConstraint(["code"], ["referral_codes.code"], name=op.f("fk_referral_visits_code_referral_codes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_visits")),
    )
    op.create_index(op.f("ix_referral_visits_code_at"), "referral_visits", ["code", "at"], unique=False)
    op.create_table(
        "referrals",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, comment="pending, rewarded, void or refused"),
        sa.Column(
            "reason",
            sa.String(length=32),
            nullable=True,
            comment="void or refused: self, ring, already_referred, not_new, ...",
        ),
        sa.Column(
            "explanation", sa.Text(), nullable=True, comment="JSON: the OneID link, chain or orders behind the reason"
        ),
        sa.Column("code", sa.String(length=16), nullable=False, comment="the referrer's code the referee came with"),
        sa.Column(
            "referrer_id", sa.BigInteger(), nullable=False, comment="the code's member; the id in force once settled"
        ),
        sa.Column(
            "referee_type", sa.String(length=32), nullable=False, comment="the type of identifier the referee gave"
        ),
        sa.Column(
            "referee_key", sa.String(length=512), nullable=False, comment="its OneID key, e.g. phone::+8613900000001"
        ),
        sa.Column(
            "referee_id", sa.BigInteger(), nullable=True, comment="the referee's OneID customer, once OneID knows them"
        ),
        sa.Column(
            "claim", sa.String(length=512), nullable=True, comment="referee_key unless refused: one referrer each"
        ),
        sa.Column(
            "programme_version", sa.Integer(), nullable=False, comment="the programme in force when it was recorded"
        ),
        sa.Column("visit_id", _ID, nullable=True, comment="the link visit it came from"),
        sa.Column(
            "idempotency_key", sa.String(length=255), nullable=True, comment="a retried request finds its referral"
        ),
        sa.Column("recorded_by", sa.String(length=128), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "order_source", sa.String(length=64), nullable=True, comment="the referee's first paid order: its source"
        ),
        sa.Column("order_id", sa.String(length=255), nullable=True, comment="and its order id"),
        sa.Column("order_paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True, comment="end of that order's return window"),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True, comment="when it was rewarded or voided"),
        sa.Column("referrer_points", sa.BigInteger(), nullable=False, comment="points the referrer was given"),
        sa.Column("referee_points", sa.BigInteger(), nullable=False, comment="points the referee was given"),
        sa.Column(
            "referrer_template", sa.String(length=64), nullable=True, comment="coupon template owed to the referrer"
        ),
        sa.Column(
            "referrer_coupon", sa.String(length=16), nullable=True, comment="the code of the coupon issued for it"
        ),
        sa.Column("referrer_coupon_problem", sa.Text(), nullable=True, comment="why that coupon could not be issued"),
        sa.Column(
            "referee_template", sa.String(length=64), nullable=True, comment="coupon template owed to the referee"
        ),
        sa.Column("referee_coupon", sa.String(length=16), nullable=True),
        sa.Column("referee_coupon_problem", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["visit_id"], ["referral_visits.id"], name=op.f("fk_referrals_visit_id_referral_visits")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
        sa.UniqueConstraint("claim", name=op.f("uq_referrals_claim")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_referrals_idempotency_key")),
    )
    op.create_index(op.f("ix_referrals_referee_id"), "referrals", ["referee_id"], unique=False)
    op.create_index(op.f("ix_referrals_referrer_id_status"), "referrals", ["referrer_id", "status"], unique=False)
    op.create_index(op.f("ix_referrals_status_id"), "referrals", ["status", "id"], unique=False)
    op.create_index(op.f("ix_referrals_visit_id"), "referrals", ["visit_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_referrals_visit_id"), table_name="referrals")
    op.drop_index(op.f("ix_referrals_status_id"), table_name="referrals")
    op.drop_index(op.f("ix_referrals_referrer_id_status"), table_name="referrals")
    op.drop_index(op.f("ix_referrals_referee_id"), table_name="referrals")
    op.drop_table("referrals")
    op.drop_index(op.f("ix_referral_visits_code_at"), table_name="referral_visits")
    op.drop_table("referral_visits")
    op.drop_table("referral_codes")
    op.drop_table("referral_programmes")
