"""campaigns, their recipients (the send log), tracked links and clicks

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "link_clicks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("link_no", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_clicks")),
    )
    with op.batch_alter_table("link_clicks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_link_clicks_campaign_id_customer_id"), ["campaign_id", "customer_id"], unique=False
        )

    op.create_table(
        "campaigns",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, comment="draft, scheduled, sending, done, cancelled"),
        sa.Column(
            "channel", sa.String(length=64), nullable=False, comment="name of a configured channel ([channels.<name>])"
        ),
        sa.Column(
            "consent_channel", sa.String(length=16), nullable=False, comment="consent channel checked (email, sms, ...)"
        ),
        sa.Column("segment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "snapshot_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
            comment="frozen audience, at launch",
        ),
        sa.Column(
            "content", sa.Text(), nullable=False, comment="JSON: templates per language (subject, body, html), coupon"
        ),
        sa.Column("holdout_share", sa.Float(), nullable=False, comment="share of the audience kept as control"),
        sa.Column(
            "stratify_by", sa.String(length=64), nullable=True, comment="tag whose values stratify the holdout draw"
        ),
        sa.Column("use_global_control", sa.Boolean(), nullable=False),
        sa.Column(
            "cap_messages", sa.Integer(), nullable=True, comment="most marketing messages per person per cap_days"
        ),
        sa.Column("cap_days", sa.Integer(), nullable=True),
        sa.Column("quiet_hours", sa.String(length=16), nullable=True, comment="HH:MM-HH:MM in the person's time zone"),
        sa.Column("conversion_days", sa.Integer(), nullable=False, comment="attribution window after the send"),
        sa.Column(
            "send_at", sa.DateTime(timezone=True), nullable=True, comment="scheduled start; null = when launched"
        ),
        sa.Column("seed", sa.String(length=64), nullable=False, comment="seed of the holdout draw (reproducible)"),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("launched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("runner", sa.String(length=64), nullable=True, comment="the sender process working on it"),
        sa.Column("runner_seen_at", sa.DateTime(timezone=True), nullable=True, comment="the runner's last heartbeat"),
        sa.ForeignKeyConstraint(["segment_id"], ["segments.id"], name=op.f("fk_campaigns_segment_id_segments")),
        sa.ForeignKeyConstraint(
            ["snapshot_id"], ["segment_snapshots.id"], name=op.f("fk_campaigns_snapshot_id_segment_snapshots")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaigns_status_send_at"), ["status", "send_at"], unique=False)

    op.create_table(
        "campaign_links",
        sa.Column("campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("link_no", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False, comment="the destination a tracked link redirects to"),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_campaign_links_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("campaign_id", "link_no", name=op.f("pk_campaign_links")),
    )
    op.create_table(
        "campaign_recipients",
        sa.Column("campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False, comment="journey step, '1' for a campaign"),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False, comment="treatment, holdout or excluded"),
        sa.Column(
            "reason", sa.String(length=32), nullable=True, comment="why excluded or held out (no_consent, capped, ...)"
        ),
        sa.Column("stratum", sa.String(length=128), nullable=True),
        sa.Column("address", sa.String(length=512), nullable=True, comment="identifier key the message goes to"),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column(
            "timezone", sa.String(length=64), nullable=True, comment="the person's time zone, if known (quiet hours)"
        ),
        sa.Column(
            "status",
            sa.String(length=16),
            nullable=False,
            comment="pending, sending, sent, refused, failed, withdrawn, in_doubt, none",
        ),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True, comment="quiet hours or a retry delay"),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True, comment="a sender took it (sending)"),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_message_id", sa.String(length=255), nullable=True),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False, comment="cost in millionths of the currency unit"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_campaign_recipients_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("campaign_id", "step", "customer_id", name=op.f("pk_campaign_recipients")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_campaign_recipients_idempotency_key")),
    )
    with op.batch_alter_table("campaign_recipients", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaign_recipients_campaign_id_step_status_not_before"),
            ["campaign_id", "step", "status", "not_before"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_campaign_recipients_customer_id_sent_at"), ["customer_id", "sent_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("campaign_recipients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_recipients_customer_id_sent_at"))
        batch_op.drop_index(batch_op.f("ix_campaign_recipients_campaign_id_step_status_not_before"))

    op.drop_table("campaign_recipients")
    op.drop_table("campaign_links")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaigns_status_send_at"))

    op.drop_table("campaigns")
    with op.batch_alter_table("link_clicks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_link_clicks_campaign_id_customer_id"))

    op.drop_table("link_clicks")
