"""Consent, campaigns, journeys and tracked links: the tables of precision marketing."""

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
    String,
    Table,
    Text,
)

from omnicrm.store.schema.base import Id, metadata

__all__ = [
    "campaign_links",
    "campaign_recipients",
    "campaigns",
    "consents",
    "journey_entries",
    "journeys",
    "link_clicks",
    "personalisation_choices",
    "wechat_server_tokens",
]

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
