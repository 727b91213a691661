"""community: interest communities and their members, store events with sign-ups and check-ins

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "communities",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("name_zh", sa.String(length=128), nullable=False, comment="the name in Chinese, unique"),
        sa.Column("name_en", sa.String(length=128), nullable=False, comment="the name in English"),
        sa.Column(
            "interests",
            sa.String(length=512),
            nullable=False,
            comment="interest ids of the taxonomy, sorted, comma-separated",
        ),
        sa.Column("description", sa.Text(), nullable=True, comment="what the community is about, shown to staff"),
        sa.Column(
            "status", sa.String(length=16), nullable=False, comment="active or archived (archived takes no new members)"
        ),
        sa.Column(
            "created_by", sa.String(length=128), nullable=False, comment="who created it (console:<user> or api:<key>)"
        ),
        sa.Column("created_at", TS, nullable=False, comment="when it was created"),
        sa.Column("updated_at", TS, nullable=False, comment="when its status or text last changed"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_communities")),
        sa.UniqueConstraint("name_zh", name=op.f("uq_communities_name_zh")),
    )
    op.create_table(
        "community_members",
        sa.Column("community_id", ID, nullable=False, comment="the community"),
        sa.Column("customer_id", sa.BigInteger(), autoincrement=False, nullable=False, comment="OneID customer"),
        sa.Column(
            "source",
            sa.String(length=16),
            nullable=False,
            comment="how they last became a member: invited, joined, checked_in",
        ),
        sa.Column("joined_at", TS, nullable=False, comment="when they last became a member"),
        sa.Column("left_at", TS, nullable=True, comment="set when they left; null: a member"),
        sa.Column("recorded_by", sa.String(length=128), nullable=False, comment="who recorded the last change"),
        sa.ForeignKeyConstraint(
            ["community_id"], ["communities.id"], name=op.f("fk_community_members_community_id_communities")
        ),
        sa.PrimaryKeyConstraint("community_id", "customer_id", name=op.f("pk_community_members")),
    )
    with op.batch_alter_table("community_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_community_members_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_community_members_community_id_left_at"), ["community_id", "left_at"], unique=False
        )

    op.create_table(
        "community_events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("community_id", ID, nullable=True, comment="the community; null: none"),
        sa.Column("title_zh", sa.String(length=200), nullable=False, comment="the title in Chinese"),
        sa.Column(
            "title_en", sa.String(length=200), nullable=True, comment="the title in English; null: the Chinese one"
        ),
        sa.Column("store_code", sa.String(length=64), nullable=True, comment="the store it is held at, if at a store"),
        sa.Column(
            "venue", sa.String(length=255), nullable=True, comment="where it is held, in words (an address, a park)"
        ),
        sa.Column("starts_at", TS, nullable=False, comment="when it starts"),
        sa.Column("ends_at", TS, nullable=False, comment="when it ends"),
        sa.Column(
            "capacity",
            sa.Integer(),
            nullable=False,
            comment="seats: confirmed sign-ups plus walk-ins never exceed it",
        ),
        sa.Column("signup_opens_at", TS, nullable=False, comment="sign-up opens"),
        sa.Column("signup_closes_at", TS, nullable=False, comment="sign-up closes (exclusive)"),
        sa.Column("checkin_opens_at", TS, nullable=False, comment="check-in opens"),
        sa.Column("checkin_closes_at", TS, nullable=False, comment="check-in closes (exclusive)"),
        sa.Column("status", sa.String(length=16), nullable=False, comment="scheduled or cancelled"),
        sa.Column("cancelled_at", TS, nullable=True, comment="when it was cancelled"),
        sa.Column("cancel_reason", sa.Text(), nullable=True, comment="why it was cancelled"),
        sa.Column("created_by", sa.String(length=128), nullable=False, comment="who created it"),
        sa.Column("created_at", TS, nullable=False, comment="when it was created"),
        sa.ForeignKeyConstraint(
            ["community_id"], ["communities.id"], name=op.f("fk_community_events_community_id_communities")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_community_events")),
    )
    with op.batch_alter_table("community_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_community_events_community_id_starts_at"), ["community_id", "starts_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_community_events_store_code_starts_at"), ["store_code", "starts_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_community_events_starts_at"), ["starts_at"], unique=False)

    op.create_table(
        "community_signups",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("event_id", ID, nullable=False, comment="the event"),
        sa.Column("customer_id", sa.BigInteger(), nullable=False, comment="OneID customer"),
        sa.Column("status", sa.String(length=16), nullable=False, comment="confirmed, waiting or cancelled"),
        sa.Column(
            "seq",
            sa.BigInteger(),
            nullable=False,
            comment="place in the event's sign-up order; the waiting list follows it",
        ),
        sa.Column("signed_up_at", TS, nullable=False, comment="when they (last) signed up"),
        sa.Column("confirmed_at", TS, nullable=True, comment="when the seat became theirs"),
        sa.Column("cancelled_at", TS, nullable=True, comment="when they cancelled"),
        sa.Column("recorded_by", sa.String(length=128), nullable=False, comment="who recorded the last change"),
        sa.ForeignKeyConstraint(
            ["event_id"], ["community_events.id"], name=op.f("fk_community_signups_event_id_community_events")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_community_signups")),
        sa.UniqueConstraint("event_id", "customer_id", name=op.f("uq_community_signups_event_id_customer_id")),
        sa.UniqueConstraint("event_id", "seq", name=op.f("uq_community_signups_event_id_seq")),
    )
    with op.batch_alter_table("community_signups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_community_signups_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_community_signups_event_id_status_seq"), ["event_id", "status", "seq"], unique=False
        )

    op.create_table(
        "community_checkins",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("event_id", ID, nullable=False, comment="the event"),
        sa.Column(
            "signup_id",
            ID,
            nullable=True,
            comment="the sign-up (ticket) used, once; null: a walk-in who took a free seat",
        ),
        sa.Column("customer_id", sa.BigInteger(), nullable=True, comment="OneID customer, when known at check-in"),
        sa.Column(
            "phone_key", sa.String(length=64), nullable=True, comment="walk-ins: their phone as an identifier key"
        ),
        sa.Column(
            "method",
            sa.String(length=16),
            nullable=False,
            comment="ticket (scanned by a clerk) or walk_in (venue QR code)",
        ),
        sa.Column(
            "message_id",
            sa.String(length=255),
            nullable=True,
            comment="walk-ins: the identify fact written to ingest",
        ),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True, comment="a retried check-in finds its row"),
        sa.Column("recorded_by", sa.String(length=128), nullable=False, comment="the clerk, or the walk-in page"),
        sa.Column("at", TS, nullable=False, comment="when they checked in"),
        sa.ForeignKeyConstraint(
            ["event_id"], ["community_events.id"], name=op.f("fk_community_checkins_event_id_community_events")
        ),
        sa.ForeignKeyConstraint(
            ["signup_id"], ["community_signups.id"], name=op.f("fk_community_checkins_signup_id_community_signups")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_community_checkins")),
        sa.UniqueConstraint("event_id", "customer_id", name=op.f("uq_community_checkins_event_id_customer_id")),
        sa.UniqueConstraint("event_id", "phone_key", name=op.f("uq_community_checkins_event_id_phone_key")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_community_checkins_idempotency_key")),
        sa.UniqueConstraint("signup_id", name=op.f("uq_community_checkins_signup_id")),
    )
    with op.batch_alter_table("community_checkins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_community_checkins_event_id_at"), ["event_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("community_checkins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_community_checkins_event_id_at"))
    op.drop_table("community_checkins")
    with op.batch_alter_table("community_signups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_community_signups_event_id_status_seq"))
        batch_op.drop_index(batch_op.f("ix_community_signups_customer_id"))
    op.drop_table("community_signups")
    with op.batch_alter_table("community_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_community_events_starts_at"))
        batch_op.drop_index(batch_op.f("ix_community_events_store_code_starts_at"))
        batch_op.drop_index(batch_op.f("ix_community_events_community_id_starts_at"))
    op.drop_table("community_events")
    with op.batch_alter_table("community_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_community_members_community_id_left_at"))
        batch_op.drop_index(batch_op.f("ix_community_members_customer_id"))
    op.drop_table("community_members")
    op.drop_table("communities")
