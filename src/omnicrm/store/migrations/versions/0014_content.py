"""content: the content library, share links customers make, and views

Revision ID: 0014
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0017"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "content_items",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False, comment="article, lecture or video"),
        sa.Column("title_zh", sa.String(length=200), nullable=False, comment="the Chinese title (required)"),
        sa.Column("title_en", sa.String(length=200), nullable=True, comment="the English title, if any"),
        sa.Column("summary_zh", sa.Text(), nullable=True, comment="a few sentences in Chinese"),
        sa.Column("summary_en", sa.Text(), nullable=True, comment="a few sentences in English"),
        sa.Column("url", sa.String(length=2048), nullable=False, comment="where a view is sent: an http(s) address"),
        sa.Column(
            "topics",
            sa.String(length=1024),
            nullable=False,
            comment="JSON list of interest ids of the shipped taxonomy",
        ),
        sa.Column(
            "topics_derived",
            sa.Boolean(),
            nullable=False,
            comment="true: topics were found in the title and summary",
        ),
        sa.Column("store_code", sa.String(length=64), nullable=True, comment="the store it belongs to, if any"),
        sa.Column(
            "community", sa.String(length=64), nullable=True, comment="the interest community it belongs to, if any"
        ),
        sa.Column("status", sa.String(length=16), nullable=False, comment="draft, published or archived"),
        sa.Column(
            "publish_at", sa.DateTime(timezone=True), nullable=True, comment="live from (set when first published)"
        ),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True, comment="live until (exclusive); null: no end"),
        sa.Column(
            "version",
            sa.Integer(),
            nullable=False,
            comment="bumped by every change (an edit names the one it read)",
        ),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True, comment="a repeated create finds its item"),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_items")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_content_items_idempotency_key")),
    )
    with op.batch_alter_table("content_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_content_items_status_publish_at"), ["status", "publish_at"], unique=False)

    op.create_table(
        "content_shares",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("item_id", ID, nullable=False),
        sa.Column(
            "customer_id", sa.BigInteger(), nullable=False, comment="OneID customer who shared it (the referrer)"
        ),
        sa.Column(
            "channel", sa.String(length=32), nullable=False, comment="where it was shared: wechat, weibo, link, ..."
        ),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False, comment="a repeated share finds its link"),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["content_items.id"], name=op.f("fk_content_shares_item_id_content_items")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_shares")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_content_shares_idempotency_key")),
    )
    with op.batch_alter_table("content_shares", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_content_shares_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_content_shares_item_id_at"), ["item_id", "at"], unique=False)

    op.create_table(
        "content_views",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("item_id", ID, nullable=False),
        sa.Column(
            "customer_id", sa.BigInteger(), nullable=True, comment="OneID customer, when the link was sent to them"
        ),
        sa.Column(
            "visitor",
            sa.String(length=32),
            nullable=True,
            comment="random id of the browser (a cookie), for unique viewers",
        ),
        sa.Column("channel", sa.String(length=32), nullable=False, comment="the channel the link was made for"),
        sa.Column("referrer_id", sa.BigInteger(), nullable=True, comment="OneID customer whose share brought the view"),
        sa.Column("share_id", ID, nullable=True, comment="the share link opened, if one"),
        sa.Column("message_id", sa.String(length=64), nullable=False, comment="messageId of its Content Viewed event"),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["content_items.id"], name=op.f("fk_content_views_item_id_content_items")),
        sa.ForeignKeyConstraint(
            ["share_id"], ["content_shares.id"], name=op.f("fk_content_views_share_id_content_shares")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_views")),
        sa.UniqueConstraint("message_id", name=op.f("uq_content_views_message_id")),
    )
    with op.batch_alter_table("content_views", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_content_views_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_content_views_customer_id_item_id"), ["customer_id", "item_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_content_views_item_id_at"), ["item_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("content_views", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_content_views_item_id_at"))
        batch_op.drop_index(batch_op.f("ix_content_views_customer_id_item_id"))
        batch_op.drop_index(batch_op.f("ix_content_views_at"))

    op.drop_table("content_views")
    with op.batch_alter_table("content_shares", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_content_shares_item_id_at"))
        batch_op.drop_index(batch_op.f("ix_content_shares_at"))

    op.drop_table("content_shares")
    with op.batch_alter_table("content_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_content_items_status_publish_at"))

    op.drop_table("content_items")
