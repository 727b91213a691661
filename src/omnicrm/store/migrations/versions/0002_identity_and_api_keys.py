"""identity operator links, source user id types, API keys

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False, comment="who or what uses the key"),
        sa.Column("key_hash", sa.String(length=64), nullable=False, comment="sha256 of the key"),
        sa.Column("key_hint", sa.String(length=12), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False, comment="space-separated, e.g. customers:read customers:write"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "identity_links",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False, comment="must (join) or cannot (split)"),
        sa.Column("key_a", sa.String(length=512), nullable=False, comment="identifier key, e.g. phone::+8613800138001"),
        sa.Column("key_b", sa.String(length=512), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_links")),
    )
    with op.batch_alter_table("identity_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_links_kind_revoked_at"), ["kind", "revoked_at"], unique=False)

    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "user_id_type",
                sa.String(length=32),
                nullable=True,
                comment="what this source's userId is (e.g. member_card); default: a user id of its own",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("user_id_type")

    with op.batch_alter_table("identity_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_links_kind_revoked_at"))

    op.drop_table("identity_links")
    op.drop_table("api_keys")
