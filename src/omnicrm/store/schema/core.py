"""Ingest, access, identity, tags and segments: the tables the data pipeline and the console keep."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from omnicrm.store.schema.base import Id, metadata

__all__ = [
    "api_keys",
    "console_sessions",
    "fact_batches",
    "identity_links",
    "import_files",
    "ingest_buffer",
    "login_attempts",
    "manual_tags",
    "quarantine",
    "segment_snapshots",
    "segments",
    "sources",
    "tag_definitions",
    "users",
]

sources = Table(
    "sources",
    metadata,
    Column("name", String(64), primary_key=True, comment="channel id, e.g. tmall, pos-store-3, web"),
    Column("kind", String(32), nullable=False, comment="marketplace, pos, web, app, wechat, sms, email, ..."),
    Column("write_key_hash", String(64), nullable=False, unique=True, comment="sha256 of the write key"),
    Column("write_key_hint", String(12), nullable=False, comment="first characters, for people"),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column(
        "user_id_type",
        String(32),
        nullable=True,
        comment="what this source's userId is (e.g. member_card); default: a user id of its own",
    ),
)

ingest_buffer = Table(
    "ingest_buffer",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("message_id", String(255), nullable=False),
    Column("type", String(16), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("payload", Text, nullable=True, comment="the normalised message as JSON; emptied once loaded"),
    Column("batch_id", Id, nullable=True, comment="fact batch that claimed this row"),
    # The row outlives its payload for the dedupe window, so a re-sent messageId stays a no-op.
    UniqueConstraint("source", "message_id"),
    Index(None, "batch_id"),
    Index(None, "received_at"),
)

fact_batches = Table(
    "fact_batches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False, comment="event, order_line, person, message"),
    Column("origin", String(16), nullable=False, comment="loader or import"),
    Column("status", String(16), nullable=False, comment="writing, then committed"),
    Column("rows", BigInteger, nullable=False, default=0),
    Column("files", Text, nullable=False, default="[]", comment="JSON list of paths under facts/"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("committed_at", DateTime(timezone=True), nullable=True),
    Index(None, "status"),
)

import_files = Table(
    "import_files",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("file_name", String(1024), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("mapping", String(128), nullable=False),
    Column("status", String(16), nullable=False, comment="running, committed or failed"),
    Column("rows_total", BigInteger, nullable=False, default=0),
    Column("rows_accepted", BigInteger, nullable=False, default=0),
    Column("rows_quarantined", BigInteger, nullable=False, default=0),
    Column("batch_id", Id, ForeignKey("fact_batches.id"), nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index(None, "source", "kind", "sha256"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, comment="who or what uses the key"),
    Column("key_hash", String(64), nullable=False, unique=True, comment="sha256 of the key"),
    Column("key_hint", String(12), nullable=False),
    Column("scopes", Text, nullable=False, comment="space-separated, e.g. customers:read customers:write"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(128), nullable=False),
    Column("role", String(32), nullable=False, comment="admin, marketer, service_agent or store_clerk"),
    Column("password_hash", String(255), nullable=False, comment="scrypt$n$r$p$salt$hash"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled_at", DateTime(timezone=True), nullable=True),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True, comment="sha256 of the cookie's token"),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
)

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False),
    Column("address", String(64), nullable=False, comment="client address"),
    Column("succeeded", Boolean, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index(None, "username", "at"),
    Index(None, "address", "at"),
)

identity_links = Table(
    "identity_links",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False, comment="must (join) or cannot (split)"),
    Column("key_a", String(512), nullable=False, comment="identifier key, e.g. phone::+8613800138001"),
    Column("key_b", String(512), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index(None, "kind", "revoked_at"),
)

tag_definitions = Table(
    "tag_definitions",
    metadata,
    Column("id", String(64), primary_key=True, comment="tag id, e.g. vip_candidate"),
    Column("origin", String(8), nullable=False, comment="rule (computed from other tags) or manual (set by staff)"),
    Column("name_zh", String(128), nullable=False),
    Column("name_en", String(128), nullable=False),
    Column("description_zh", Text, nullable=False, default=""),
    Column("description_en", Text, nullable=False, default=""),
    Column("value_type", String(16), nullable=False, comment="bool, category, number or list"),
    Column("rule", Text, nullable=True, comment="JSON rule of a rule tag"),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
)

manual_tags = Table(
    "manual_tags",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, nullable=False),
    Column("tag_id", String(64), ForeignKey("tag_definitions.id"), nullable=False),
    Column("value", Text, nullable=False, comment="JSON value in the tag's type"),
    Column("source", String(16), nullable=False, comment="staff or import"),
    Column("set_by", String(128), nullable=False),
    Column("note", Text, nullable=True),
    Column("set_at", DateTime(timezone=True), nullable=False),
    Column("cleared_at", DateTime(timezone=True), nullable=True),
    Index(None, "customer_id", "tag_id"),
    Index(None, "tag_id", "cleared_at"),
)

segments = Table(
    "segments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("rule", Text, nullable=False, comment="JSON rule (the text form is derived from it)"),
    Column("schedule", String(16), nullable=False, default="daily", comment="daily, weekly or manual snapshots"),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
)

segment_snapshots = Table(
    "segment_snapshots",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("segment_id", Id, ForeignKey("segments.id"), nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Column("members", BigInteger, nullable=False),
    Column("file", String(1024), nullable=False, comment="member ids, Parquet, under derived/segments/"),
    Column("rule", Text, nullable=False, comment="the rule as it was when the snapshot was taken"),
    Index(None, "segment_id", "taken_at"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("origin", String(16), nullable=False, comment="http or import"),
    Column("source", String(64), nullable=True),
    Column("ref", String(64), nullable=True, comment="request id or import id"),
    Column("file", String(1024), nullable=True),
    Column("line", BigInteger, nullable=True),
    Column("message_index", Integer, nullable=True),
    Column("field", String(255), nullable=True),
    Column("reason", Text, nullable=False),
    Column("raw", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "origin", "ref"),
)
