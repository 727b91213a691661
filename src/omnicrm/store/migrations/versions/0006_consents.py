"""consent ledger, non-personalised marketing choices, WeChat server tokens

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column(
            "subject",
            sa.String(length=512),
            nullable=False,
            comment="identifier key of the address, e.g. phone::+8613800138000",
        ),
        sa.Column(
            "channel",
            sa.String(length=16),
            nullable=False,
            comment="email, sms, wechat_oa, wechat_mp, wecom or app_push",
        ),
        sa.Column("purpose", sa.String(length=16), nullable=False, comment="marketing or service"),
        sa.Column("granted", sa.Boolean(), nullable=False, comment="true: granted; false: withdrawn"),
        sa.Column(
            "source",
            sa.String(length=32),
            nullable=False,
            comment="signup_form, sms_reply, unsubscribe_link, wechat_event, ...",
        ),
        sa.Column("wording", sa.String(length=64), nullable=True, comment="version of the wording the person saw"),
        sa.Column("detail", sa.Text(), nullable=True, comment="e.g. the text of an SMS reply"),
        sa.Column("recorded_by", sa.String(length=128), nullable=False),
        sa.Column(
            "customer_id",
            sa.BigInteger(),
            nullable=True,
            comment="customer holding the subject then (for display only)",
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, comment="when the person gave or withdrew it"),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    op.create_index(op.f("ix_consents_subject_channel_purpose_at"), "consents", ["subject", "channel", "purpose", "at"])
    op.create_index(op.f("ix_consents_channel_purpose_at"), "consents", ["channel", "purpose", "at"])
    op.create_table(
        "personalisation_choices",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(length=512), nullable=False, comment="identifier key of the person's address"),
        sa.Column(
            "non_personalised", sa.Boolean(), nullable=False, comment="true: marketing must not use their profile"
        ),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("wording", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("recorded_by", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=True, comment="for display only"),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_personalisation_choices")),
    )
    op.create_index(op.f("ix_personalisation_choices_subject_at"), "personalisation_choices", ["subject", "at"])
    op.create_table(
        "wechat_server_tokens",
        sa.Column(
            "appid",
            sa.String(length=64),
            nullable=False,
            comment="app id of the official account or mini-program",
        ),
        sa.Column(
            "token", sa.String(length=64), nullable=False, comment="the server token set in the WeChat admin console"
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("appid", name=op.f("pk_wechat_server_tokens")),
    )


def downgrade() -> None:
    op.drop_table("wechat_server_tokens")
    op.drop_index(op.f("ix_personalisation_choices_subject_at"), table_name="personalisation_choices")
    op.drop_table("personalisation_choices")
    op.drop_index(op.f("ix_consents_channel_purpose_at"), table_name="consents")
    op.drop_index(op.f("ix_consents_subject_channel_purpose_at"), table_name="consents")
    op.drop_table("consents")
