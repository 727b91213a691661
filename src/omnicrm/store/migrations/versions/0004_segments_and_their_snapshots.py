"""segments and their snapshots

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False, comment="JSON rule (the text form is derived from it)"),
        sa.Column("schedule", sa.String(length=16), nullable=False, comment="daily, weekly or manual snapshots"),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
    )
    op.create_table(
        "segment_snapshots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("segment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("members", sa.BigInteger(), nullable=False),
        sa.Column(
            "file", sa.String(length=1024), nullable=False, comment="member ids, Parquet, under derived/segments/"
        ),
        sa.Column("rule", sa.Text(), nullable=False, comment="the rule as it was when the snapshot was taken"),
        sa.ForeignKeyConstraint(["segment_id"], ["segments.id"], name=op.f("fk_segment_snapshots_segment_id_segments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_snapshots")),
    )
    with op.batch_alter_table("segment_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_segment_snapshots_segment_id_taken_at"), ["segment_id", "taken_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("segment_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_segment_snapshots_segment_id_taken_at"))

    op.drop_table("segment_snapshots")
    op.drop_table("segments")
