"""State-store tables (SQLAlchemy Core). Alembic migrations in ``migrations/`` create them.

Only mutable business state lives here; facts are Parquet and derived data is recomputable.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "api_keys",
    "campaign_links",
    "campaign_recipients",
    "campaigns",
    "consents",
    "console_sessions",
    "fact_batches",
    "identity_links",
    "import_files",
    "ingest_buffer",
    "journey_entries",
    "journeys",
    "link_clicks",
    "login_attempts",
    "manual_tags",
    "metadata",
    "personalisation_choices",
    "quarantine",
    "segment_snapshots",
    "segments",
    "sources",
    "tag_definitions",
    "users",
    "wechat_server_tokens",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Integer primary keys that autoincrement on SQLite (rowid) and are BIGINT on PostgreSQL.
Id = BigInteger().with_variant(Integer(), "sqlite")

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

consents = Table(
    "consents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("subject", String(512), nullable=False, comment="identifier key of the address, e.g. phone::+8613800138000"),
    Column("channel", String(16), nullable=False, comment="email, sms, wechat_oa, wechat_mp, wecom or app_push"),
    Column("purpose", String(16), nullable=False, comment="marketing or service"),
    Column("granted", Boolean, nullable=False, comment="true: granted; false: withdrawn"),
    Column("source", String(32), nullable=False, comment="signup_form, sms_reply, unsubscribe_link, wechat_event, ..."),
    Column("wording", String(64), nullable=True, comment="version of the wording the person saw"),
    Column("detail", Text, nullable=True, comment="e.g. the text of an SMS reply"),
    Column("recorded_by", String(128), nullable=False),
    Column("customer_id", BigInteger, nullable=True, comment="customer holding the subject then (for display only)"),
    Column("at", DateTime(timezone=True), nullable=False, comment="when the person gave or withdrew it"),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    # append-only: the current state of (subject, channel, purpose) is its latest record by (at, id)
    Index(None, "subject", "channel", "purpose", "at"),
    Index(None, "channel", "purpose", "at"),
)

personalisation_choices = Table(
    "personalisation_choices",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("subject", String(512), nullable=False, comment="identifier key of the person's address"),
    Column("non_personalised", Boolean, nullable=False, comment="true: marketing must not use their profile"),
    Column("source", String(32), nullable=False),
    Column("wording", String(64), nullable=True),
    Column("detail", Text, nullable=True),
    Column("recorded_by", String(128), nullable=False),
    Column("customer_id", BigInteger, nullable=True, comment="for display only"),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index(None, "subject", "at"),
)

wechat_server_tokens = Table(
    "wechat_server_tokens",
    metadata,
    Column("appid", String(64), primary_key=True, comment="app id of the official account or mini-program"),
    Column("token", String(64), nullable=False, comment="the server token set in the WeChat admin console"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

journeys = Table(
    "journeys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("status", String(16), nullable=False, comment="draft, live, stopped"),
    Column("trigger", Text, nullable=False, comment="JSON: the fact that enters a customer (first_order, order)"),
    Column("exit", Text, nullable=True, comment="JSON: what takes an entered customer out (purchase); null = none"),
    Column("steps", Text, nullable=False, comment="JSON: per step its campaign id, after_days and condition"),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True, comment="went live: facts before it never enter"),
    Column("evaluated_until", DateTime(timezone=True), nullable=True, comment="facts up to here were evaluated"),
    Index(None, "status"),
)

journey_entries = Table(
    "journey_entries",
    metadata,
    Column("journey_id", Id, ForeignKey("journeys.id"), primary_key=True),
    Column("customer_id", BigInteger, primary_key=True, comment="a customer enters a journey once"),
    Column("entered_at", DateTime(timezone=True), nullable=False, comment="when the trigger fact happened"),
    Column("step", Integer, nullable=False, default=0, comment="how many steps the customer has reached"),
    Column("next_at", DateTime(timezone=True), nullable=True, comment="when the next step is due; null = none"),
    Column("status", String(16), nullable=False, comment="active, exited, completed"),
    Column("exit_reason", String(32), nullable=True, comment="purchase, stopped"),
    Column("ended_at", DateTime(timezone=True), nullable=True, comment="exited or completed at"),
    Index(None, "journey_id", "status", "next_at"),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("status", String(16), nullable=False, comment="draft, scheduled, sending, done, cancelled"),
    Column("channel", String(64), nullable=False, comment="name of a configured channel ([channels.<name>])"),
    Column("consent_channel", String(16), nullable=False, comment="consent channel checked (email, sms, ...)"),
    Column("segment_id", Id, ForeignKey("segments.id"), nullable=False),
    Column("snapshot_id", Id, ForeignKey("segment_snapshots.id"), nullable=True, comment="frozen audience, at launch"),
    Column("content", Text, nullable=False, comment="JSON: templates per language (subject, body, html), coupon"),
    Column("holdout_share", Float, nullable=False, default=0.1, comment="share of the audience kept as control"),
    Column("stratify_by", String(64), nullable=True, comment="tag whose values stratify the holdout draw"),
    Column("use_global_control", Boolean, nullable=False, default=True),
    Column("cap_messages", Integer, nullable=True, comment="most marketing messages per person per cap_days"),
    Column("cap_days", Integer, nullable=True),
    Column("quiet_hours", String(16), nullable=True, comment="HH:MM-HH:MM in the person's time zone"),
    Column("conversion_days", Integer, nullable=False, default=14, comment="attribution window after the send"),
    Column("send_at", DateTime(timezone=True), nullable=True, comment="scheduled start; null = when launched"),
    Column("seed", String(64), nullable=False, comment="seed of the holdout draw (reproducible)"),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("launched_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("runner", String(64), nullable=True, comment="the sender process working on it"),
    Column("runner_seen_at", DateTime(timezone=True), nullable=True, comment="the runner's last heartbeat"),
    Column("journey_id", Id, ForeignKey("journeys.id"), nullable=True, comment="the journey this is a step of"),
    Index(None, "status", "send_at"),
)

campaign_recipients = Table(
    "campaign_recipients",
    metadata,
    Column("campaign_id", Id, ForeignKey("campaigns.id"), primary_key=True),
    Column("step", String(32), primary_key=True, default="1", comment="journey step, '1' for a campaign"),
    Column("customer_id", BigInteger, primary_key=True),
    Column("arm", String(16), nullable=False, comment="treatment, holdout or excluded"),
    Column("reason", String(32), nullable=True, comment="why excluded or held out (no_consent, capped, ...)"),
    Column("stratum", String(128), nullable=True),
    Column("address", String(512), nullable=True, comment="identifier key the message goes to"),
    Column("language", String(8), nullable=False, default="zh"),
    Column("timezone", String(64), nullable=True, comment="the person's time zone, if known (quiet hours)"),
    Column(
        "status",
        String(16),
        nullable=False,
        comment="pending, sending, sent, refused, failed, withdrawn, in_doubt, none",
    ),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("not_before", DateTime(timezone=True), nullable=True, comment="quiet hours or a retry delay"),
    Column("claimed_at", DateTime(timezone=True), nullable=True, comment="a sender took it (sending)"),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("provider_message_id", String(255), nullable=True),
    Column("units", Integer, nullable=False, default=0),
    Column("cost_micros", BigInteger, nullable=False, default=0, comment="cost in millionths of the currency unit"),
    Column("error", Text, nullable=True),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
    Index(None, "campaign_id", "step", "status", "not_before"),
    Index(None, "customer_id", "sent_at"),
)

campaign_links = Table(
    "campaign_links",
    metadata,
    Column("campaign_id", Id, ForeignKey("campaigns.id"), primary_key=True),
    Column("link_no", Integer, primary_key=True),
    Column("url", Text, nullable=False, comment="the destination a tracked link redirects to"),
)

link_clicks = Table(
    "link_clicks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign_id", Id, nullable=False),
    Column("step", String(32), nullable=False),
    Column("customer_id", BigInteger, nullable=False),
    Column("link_no", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("user_agent", String(512), nullable=True),
    Index(None, "campaign_id", "customer_id"),
)

# ---------------------------------------------------------------------------------------------------------------------
# Loyalty: the points ledger (lots, entries and the lots each entry draws from) and member tiers (omnicrm.loyalty).
# Balances are never stored: they are sums over point_entries; a lot's remaining points are its points less its draws.
# ---------------------------------------------------------------------------------------------------------------------

__all__ += [
    "loyalty_rules",
    "member_tiers",
    "point_accounts",
    "point_draws",
    "point_entries",
    "point_lots",
    "tier_changes",
]

loyalty_rules = Table(
    "loyalty_rules",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False, comment="rule version, part of a lot's key"),
    Column("definition", Text, nullable=False, comment="JSON: earn rules, tiers, expiry, point value, refund policy"),
    Column("note", Text, nullable=True),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

point_accounts = Table(
    "point_accounts",
    metadata,
    Column("customer_id", BigInteger, primary_key=True, autoincrement=False, comment="OneID customer"),
    Column("version", BigInteger, nullable=False, default=0, comment="bumped by every change; no balance is kept"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

point_lots = Table(
    "point_lots",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, ForeignKey("point_accounts.customer_id"), nullable=False),
    Column("points", BigInteger, nullable=False, comment="points earned; what is left is points less its draws"),
    Column("status", String(16), nullable=False, comment="pending, active, expired or reversed"),
    Column("source", String(64), nullable=False, comment="the order's source (tmall, pos-store-3, ...) or manual"),
    Column("order_id", String(255), nullable=True, comment="the order that earned it; null for adjustments"),
    Column("rule_version", Integer, nullable=True, comment="loyalty_rules version that computed it"),
    Column("idempotency_key", String(255), nullable=False, unique=True, comment="source:order id:rule version"),
    Column("spend_cents", BigInteger, nullable=False, default=0, comment="net paid of the order, in cents (fen)"),
    Column("earned_at", DateTime(timezone=True), nullable=False, comment="when the order was paid"),
    Column("activates_at", DateTime(timezone=True), nullable=False, comment="end of the return window"),
    Column("expires_at", DateTime(timezone=True), nullable=True, comment="null: never"),
    Column("activated_at", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True, comment="when it expired or was reversed"),
    Column("detail", Text, nullable=True, comment="JSON: how the points were computed"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # an order earns once, whatever the rule version (NULL order ids, adjustments, never collide)
    UniqueConstraint("source", "order_id"),
    Index(None, "customer_id", "status", "expires_at"),
    Index(None, "status", "activates_at"),
    Index(None, "status", "expires_at"),
)

point_entries = Table(
    "point_entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, ForeignKey("point_accounts.customer_id"), nullable=False),
    Column("kind", String(16), nullable=False, comment="earn, spend, expire, reverse or adjust"),
    Column("points", BigInteger, nullable=False, comment="signed; a member's balance is the sum"),
    Column("written_off", BigInteger, nullable=False, default=0, comment="reversed points forgiven, not taken"),
    Column("spend_cents", BigInteger, nullable=False, default=0, comment="order money earned on (+) or refunded (-)"),
    Column("lot_id", Id, ForeignKey("point_lots.id"), nullable=True, comment="the lot earned or the lot reversed"),
    Column("idempotency_key", String(255), nullable=True, unique=True, comment="a retried request finds its entry"),
    Column("reference", String(255), nullable=True, comment="e.g. the order or till receipt points were spent on"),
    Column("reason", Text, nullable=True, comment="why (required for adjustments)"),
    Column("recorded_by", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    # append-only: entries are never updated or deleted
    Index(None, "customer_id", "id"),
    Index(None, "lot_id"),
    Index(None, "kind", "at"),
)

point_draws = Table(
    "point_draws",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("entry_id", Id, ForeignKey("point_entries.id"), nullable=False),
    Column("lot_id", Id, ForeignKey("point_lots.id"), nullable=False),
    Column("points", BigInteger, nullable=False, comment="points the entry took from the lot (> 0)"),
    Index(None, "entry_id"),
    Index(None, "lot_id"),
)

member_tiers = Table(
    "member_tiers",
    metadata,
    Column("customer_id", BigInteger, ForeignKey("point_accounts.customer_id"), primary_key=True, autoincrement=False),
    Column("tier", String(32), nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
    Column("review_at", DateTime(timezone=True), nullable=False, comment="period end: a downgrade waits for it"),
    Column("grace_until", DateTime(timezone=True), nullable=True, comment="set when kept on grace after a period"),
    Column("rule_version", Integer, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

tier_changes = Table(
    "tier_changes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, nullable=False),
    Column("change", String(16), nullable=False, comment="upgrade, downgrade, grace or renewed"),
    Column("from_tier", String(32), nullable=True),
    Column("to_tier", String(32), nullable=False),
    Column("qualifying", BigInteger, nullable=False, comment="points or cents over the window"),
    Column("basis", String(8), nullable=False, comment="points or spend"),
    Column("rule_version", Integer, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index(None, "customer_id", "at"),
)

# ---------------------------------------------------------------------------------------------------------------------
# Coupons: templates (the budget), coupons issued from them and their redemptions (omnicrm.loyalty.coupons).
# What is left of a template's quantity is never stored: it is total_quantity less the coupons issued from it; an
# "expired" coupon is an unredeemed one past its expires_at. Redemptions are append-only, a reversal only marks one.
# ---------------------------------------------------------------------------------------------------------------------

__all__ += ["coupon_redemptions", "coupon_templates", "coupons"]

coupon_templates = Table(
    "coupon_templates",
    metadata,
    Column("id", String(64), primary_key=True, comment="the merchant's template id, as campaigns name it"),
    Column("name", String(255), nullable=False),
    Column("kind", String(16), nullable=False, comment="amount_off, percent_off or threshold"),
    Column("amount_off_fen", BigInteger, nullable=True, comment="amount_off and threshold: the discount, in fen"),
    Column("percent_off", Integer, nullable=True, comment="percent_off: 1-99"),
    Column("max_off_fen", BigInteger, nullable=True, comment="percent_off: a cap on the discount, in fen"),
    Column("min_spend_fen", BigInteger, nullable=False, default=0, comment="threshold: spend at least this"),
    Column("category", String(128), nullable=True, comment="only this category's amount counts; null: all"),
    Column("valid_from", DateTime(timezone=True), nullable=True, comment="fixed dates: usable from"),
    Column("valid_until", DateTime(timezone=True), nullable=True, comment="fixed dates: usable until (exclusive)"),
    Column("valid_days", Integer, nullable=True, comment="or: usable for N days from issue"),
    Column("total_quantity", BigInteger, nullable=False, comment="most coupons ever issued from it (the budget)"),
    Column("per_person_limit", Integer, nullable=False, comment="most coupons one customer gets from it"),
    Column("channels", String(64), nullable=False, comment="where redeemable: online, store or online,store"),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

coupons = Table(
    "coupons",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("code", String(16), nullable=False, unique=True, comment="short redeemable code (text or QR payload)"),
    Column("template_id", String(64), ForeignKey("coupon_templates.id"), nullable=False),
    Column("customer_id", BigInteger, nullable=False, comment="OneID customer"),
    Column("status", String(16), nullable=False, comment="issued or redeemed (expired is derived from expires_at)"),
    Column("idempotency_key", String(255), nullable=False, unique=True, comment="a repeated issue finds its coupon"),
    Column("campaign_id", String(64), nullable=True, comment="the campaign (or referral, ...) that issued it"),
    Column("store_code", String(64), nullable=True, comment="the store whose guide handed it out, if any"),
    Column("guide_id", String(64), nullable=True, comment="the store guide (导购) who handed it out, if any"),
    Column("issued_by", String(128), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("redeemed_at", DateTime(timezone=True), nullable=True, comment="set while a redemption stands"),
    Index(None, "template_id", "customer_id"),
    Index(None, "customer_id"),
    Index(None, "status", "expires_at"),
    Index(None, "store_code", "guide_id"),
)

coupon_redemptions = Table(
    "coupon_redemptions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("coupon_id", Id, ForeignKey("coupons.id"), nullable=False),
    Column("channel", String(16), nullable=False, comment="online or store"),
    Column("order_id", String(255), nullable=True, comment="the order (online) or till receipt (store)"),
    Column("store_code", String(64), nullable=True, comment="the store credited"),
    Column("guide_id", String(64), nullable=True, comment="the store guide (导购) credited"),
    Column("order_amount_fen", BigInteger, nullable=False),
    Column("eligible_fen", BigInteger, nullable=False, comment="the amount the coupon applied to"),
    Column("discount_fen", BigInteger, nullable=False),
    Column("redeemed_by", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reversed_at", DateTime(timezone=True), nullable=True, comment="set when the order was refunded"),
    Column("reversal_reason", Text, nullable=True),
    Index(None, "coupon_id"),
    Index(None, "store_code", "guide_id"),
    Index(None, "order_id"),
)
