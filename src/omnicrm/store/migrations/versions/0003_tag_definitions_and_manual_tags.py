"""tag definitions and manual tags

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tag_definitions",
        sa.Column("id", sa.String(length=64), nullable=False, comment="tag id, e.g. vip_candidate"),
        sa.Column(
            "origin",
            sa.String(length=8),
            nullable=False,
            comment="rule (computed from other tags) or manual (set by staff)",
        ),
        sa.Column("name_zh", sa.String(length=128), nullable=False),
        sa.Column("name_en", sa.String(length=128), nullable=False),
        sa.Column("description_zh", sa.Text(), nullable=False),
        sa.Column("description_en", sa.Text(), nullable=False),
        sa.Column("value_type", sa.String(length=16), nullable=False, comment="bool, category, number or list"),
        sa.Column("rule", sa.Text(), nullable=True, comment="JSON rule of a rule tag"),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tag_definitions")),
    )
    op.create_table(
        "manual_tags",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("tag_id", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False, comment="JSON value in the tag's type"),
        sa.Column("source", sa.String(length=16), nullable=False, comment="staff or import"),
        sa.Column("set_by", sa.String(length=128), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tag_id"], ["tag_definitions.id"], name=op.f("fk_manual_tags_tag_id_tag_definitions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manual_tags")),
    )
    with op.batch_alter_table("manual_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_manual_tags_customer_id_tag_id"), ["customer_id", "tag_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_manual_tags_tag_id_cleared_at"), ["tag_id", "cleared_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("manual_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manual_tags_tag_id_cleared_at"))
        batch_op.drop_index(batch_op.f("ix_manual_tags_customer_id_tag_id"))

    op.drop_table("manual_tags")
    op.drop_table("tag_definitions")
