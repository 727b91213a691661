"""The content library: items (articles, lectures, videos by link), the share links customers make, and views."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, ForeignKey, Index, Integer, String, Table, Text

from omnicrm.store.schema.base import Id, metadata

__all__ = ["content_items", "content_shares", "content_views"]

# ---------------------------------------------------------------------------------------------------------------------
# Content (omnicrm.content): what the merchant shares, who shared it and who opened it. Views are also written to the
# facts as "Content Viewed" events, so the portrait's interests see them; these rows are what the reports count.
# ---------------------------------------------------------------------------------------------------------------------

content_items = Table(
    "content_items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False, comment="article, lecture or video"),
    Column("title_zh", String(200), nullable=False, comment="the Chinese title (required)"),
    Column("title_en", String(200), nullable=True, comment="the English title, if any"),
    Column("summary_zh", Text, nullable=True, comment="a few sentences in Chinese"),
    Column("summary_en", Text, nullable=True, comment="a few sentences in English"),
    Column("url", String(2048), nullable=False, comment="where a view is sent: an http(s) address"),
    Column("topics", String(1024), nullable=False, comment="JSON list of interest ids of the shipped taxonomy"),
    Column("topics_derived", Boolean, nullable=False, comment="true: topics were found in the title and summary"),
    Column("store_code", String(64), nullable=True, comment="the store it belongs to, if any"),
    Column("community", String(64), nullable=True, comment="the interest community it belongs to, if any"),
    Column("status", String(16), nullable=False, comment="draft, published or archived"),
    Column("publish_at", DateTime(timezone=True), nullable=True, comment="live from (set when first published)"),
    Column("end_at", DateTime(timezone=True), nullable=True, comment="live until (exclusive); null: no end"),
    Column("version", Integer, nullable=False, comment="bumped by every change (an edit names the one it read)"),
    Column("idempotency_key", String(255), nullable=True, unique=True, comment="a repeated create finds its item"),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "status", "publish_at"),
)

content_shares = Table(
    "content_shares",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("item_id", Id, ForeignKey("content_items.id"), nullable=False),
    Column("customer_id", BigInteger, nullable=False, comment="OneID customer who shared it (the referrer)"),
    Column("channel", String(32), nullable=False, comment="where it was shared: wechat, weibo, link, ..."),
    Column("idempotency_key", String(255), nullable=False, unique=True, comment="a repeated share finds its link"),
    Column("at", DateTime(timezone=True), nullable=False),
    Index(None, "item_id", "at"),
    Index(None, "at"),
)

content_views = Table(
    "content_views",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("item_id", Id, ForeignKey("content_items.id"), nullable=False),
    Column("customer_id", BigInteger, nullable=True, comment="OneID customer, when the link was sent to them"),
    Column("visitor", String(32), nullable=True, comment="random id of the browser (a cookie), for unique viewers"),
    Column("channel", String(32), nullable=False, comment="the channel the link was made for"),
    Column("referrer_id", BigInteger, nullable=True, comment="OneID customer whose share brought the view"),
    Column("share_id", Id, ForeignKey("content_shares.id"), nullable=True, comment="the share link opened, if one"),
    Column("message_id", String(64), nullable=False, unique=True, comment="messageId of its Content Viewed event"),
    Column("at", DateTime(timezone=True), nullable=False),
    Index(None, "item_id", "at"),
    Index(None, "customer_id", "item_id"),
    Index(None, "at"),
)
