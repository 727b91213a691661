"""journeys, their entries (one per customer), and the journey a step campaign belongs to

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journeys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, comment="draft, live, stopped"),
        sa.Column(
            "trigger", sa.Text(), nullable=False, comment="JSON: the fact that enters a customer (first_order, order)"
        ),
        sa.Column(
            "exit", sa.Text(), nullable=True, comment="JSON: what takes an entered customer out (purchase); null = none"
        ),
        sa.Column(
            "steps", sa.Text(), nullable=False, comment="JSON: per step its campaign id, after_days and condition"
        ),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), nullable=True, comment="went live: facts before it never enter"
        ),
        sa.Column(
            "evaluated_until", sa.DateTime(timezone=True), nullable=True, comment="facts up to here were evaluated"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journeys")),
    )
    with op.batch_alter_table("journeys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_journeys_status"), ["status"], unique=False)

    op.create_table(
        "journey_entries",
        sa.Column("journey_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False, comment="a customer enters a journey once"),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False, comment="when the trigger fact happened"),
        sa.Column("step", sa.Integer(), nullable=False, comment="how many steps the customer has reached"),
        sa.Column(
            "next_at", sa.DateTime(timezone=True), nullable=True, comment="when the next step is due; null = none"
        ),
        sa.Column("status", sa.String(length=16), nullable=False, comment="active, exited, completed"),
        sa.Column("exit_reason", sa.String(length=32), nullable=True, comment="purchase, stopped"),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True, comment="exited or completed at"),
        sa.ForeignKeyConstraint(["journey_id"], ["journeys.id"], name=op.f("fk_journey_entries_journey_id_journeys")),
        sa.PrimaryKeyConstraint("journey_id", "customer_id", name=op.f("pk_journey_entries")),
    )
    with op.batch_alter_table("journey_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_journey_entries_journey_id_status_next_at"),
            ["journey_id", "status", "next_at"],
            unique=False,
        )

    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a referencing column in place. The batch copy autogenerate wrote would drop the old table,
        # which the rows of the send log refer to (foreign keys are on): refused on any database with campaigns.
        op.execute(
            "ALTER TABLE campaigns ADD COLUMN journey_id INTEGER "
            "CONSTRAINT fk_campaigns_journey_id_journeys REFERENCES journeys (id)"
        )
    else:
        op.add_column(
            "campaigns",
            sa.Column(
                "journey_id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=True,
                comment="the journey this is a step of",
            ),
        )
        op.create_foreign_key(op.f("fk_campaigns_journey_id_journeys"), "campaigns", "journeys", ["journey_id"], ["id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # in place, as it was added (SQLite 3.35+): the column's reference goes with it
        op.execute("ALTER TABLE campaigns DROP COLUMN journey_id")
    else:
        op.drop_constraint(op.f("fk_campaigns_journey_id_journeys"), "campaigns", type_="foreignkey")
        op.drop_column("campaigns", "journey_id")

    with op.batch_alter_table("journey_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journey_entries_journey_id_status_next_at"))

    op.drop_table("journey_entries")
    with op.batch_alter_table("journeys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journeys_status"))

    op.drop_table("journeys")
