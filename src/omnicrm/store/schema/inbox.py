"""The service inbox: contacts, conversations and their messages, agents and teams, quick replies, SLA policies and
business-hours calendars (omnicrm.inbox)."""

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
    UniqueConstraint,
)

from omnicrm.store.schema.base import Id, metadata

__all__ = [
    "inbox_activity",
    "inbox_agents",
    "inbox_calendars",
    "inbox_contact_keys",
    "inbox_contacts",
    "inbox_conversations",
    "inbox_fact_exports",
    "inbox_messages",
    "inbox_quick_replies",
    "inbox_sla_policies",
    "inbox_team_members",
    "inbox_teams",
    "inbox_warnings",
]

# ---------------------------------------------------------------------------------------------------------------------
# Who writes: a contact is the person behind conversations as the inbox knows them, keyed by identifier keys in
# OneID's spelling. A contact without a customer id is provisional until an identity refresh joins its identifiers.
# ---------------------------------------------------------------------------------------------------------------------

inbox_contacts = Table(
    "inbox_contacts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, nullable=True, unique=True, comment="OneID customer; null while provisional"),
    Column("name", String(255), nullable=True, comment="the name the channel showed, if any"),
    Column("language", String(8), nullable=True, comment="zh or en, when known"),
    Column("merged_into", BigInteger, nullable=True, comment="the contact this one became when OneID joined them"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

inbox_contact_keys = Table(
    "inbox_contact_keys",
    metadata,
    Column("key", String(255), primary_key=True, comment="identifier key type:scope:value, as OneID writes it"),
    Column("contact_id", BigInteger, ForeignKey("inbox_contacts.id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "contact_id"),
)

# ---------------------------------------------------------------------------------------------------------------------
# Agents, teams and what they answer.
# ---------------------------------------------------------------------------------------------------------------------

inbox_agents = Table(
    "inbox_agents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, comment="as customers and colleagues see it"),
    Column("username", String(64), nullable=True, unique=True, comment="the console user this agent signs in as"),
    Column("channels", String(255), nullable=False, comment="channels they answer, comma-separated; empty: all"),
    Column("languages", String(64), nullable=False, comment="languages they write (zh,en); empty: all"),
    Column("max_open", Integer, nullable=True, comment="most open conversations at once; null: no limit"),
    Column("active", Boolean, nullable=False, comment="inactive agents get no new conversations"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

inbox_teams = Table(
    "inbox_teams",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("channels", String(255), nullable=False, comment="channels routed here, comma-separated; empty: any"),
    Column("last_agent_id", BigInteger, nullable=True, comment="round robin: the member who got the last conversation"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

inbox_team_members = Table(
    "inbox_team_members",
    metadata,
    Column("team_id", BigInteger, ForeignKey("inbox_teams.id"), primary_key=True, autoincrement=False),
    Column("agent_id", BigInteger, ForeignKey("inbox_agents.id"), primary_key=True, autoincrement=False),
)

inbox_quick_replies = Table(
    "inbox_quick_replies",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("shortcut", String(64), nullable=False, comment="what an agent types to pick it, e.g. shipping"),
    Column("language", String(8), nullable=False, comment="zh or en"),
    Column("title", String(255), nullable=False),
    Column("text", Text, nullable=False, comment="the reply, with {placeholders} filled in when it is used"),
    Column("updated_by", String(128), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("shortcut", "language"),
)

# ---------------------------------------------------------------------------------------------------------------------
# SLAs: business hours and the targets per channel and priority.
# ---------------------------------------------------------------------------------------------------------------------

inbox_calendars = Table(
    "inbox_calendars",
    metadata,
    Column("name", String(64), primary_key=True, comment="named by SLA policies"),
    Column("timezone", String(64), nullable=False, comment="IANA zone the hours are in, e.g. Asia/Shanghai"),
    Column("hours", Text, nullable=False, comment='JSON: weekday → [["09:00", "18:00"], ...]'),
    Column("exceptions", Text, nullable=False, comment="JSON: date → hours of that day; [] for a holiday"),
    Column("updated_by", String(128), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

inbox_sla_policies = Table(
    "inbox_sla_policies",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(32), nullable=False, comment="a channel, or * for any"),
    Column("priority", String(16), nullable=False, comment="low, normal, high, urgent, or * for any"),
    Column("first_response_minutes", Integer, nullable=False, comment="business minutes to answer a message"),
    Column("resolution_minutes", Integer, nullable=False, comment="business minutes from first message to closing"),
    Column("calendar", String(64), ForeignKey("inbox_calendars.name"), nullable=True, comment="null: round the clock"),
    Column("updated_by", String(128), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("channel", "priority"),
)

# ---------------------------------------------------------------------------------------------------------------------
# Conversations and messages. Facts of kind "message" are written from these rows in export batches.
# ---------------------------------------------------------------------------------------------------------------------

inbox_conversations = Table(
    "inbox_conversations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contact_id", BigInteger, ForeignKey("inbox_contacts.id"), nullable=False),
    Column("status", String(16), nullable=False, comment="open, pending (waiting on the customer) or closed"),
    Column("priority", String(16), nullable=False, comment="low, normal, high or urgent"),
    Column("channel", String(32), nullable=False, comment="the channel it started on; decides its SLA policy"),
    Column("last_channel", String(32), nullable=False, comment="the channel the customer last wrote from"),
    Column("team_id", BigInteger, ForeignKey("inbox_teams.id"), nullable=True),
    Column("agent_id", BigInteger, ForeignKey("inbox_agents.id"), nullable=True, comment="who owns it; null: queue"),
    Column("complaint", Boolean, nullable=False, comment="a message in it read as a complaint"),
    Column("intent", String(64), nullable=True, comment="what the latest customer message asks for, if read"),
    Column("language", String(8), nullable=True),
    Column("calendar", String(64), nullable=True, comment="business hours of its SLA; null: round the clock"),
    Column("response_target_s", Integer, nullable=True, comment="business seconds to answer; null: no SLA"),
    Column("resolution_target_s", Integer, nullable=True, comment="business seconds to close; null: no SLA"),
    Column("first_message_at", DateTime(timezone=True), nullable=True, comment="first customer message: clocks start"),
    Column("awaiting_since", DateTime(timezone=True), nullable=True, comment="oldest customer message not answered"),
    Column("response_due_at", DateTime(timezone=True), nullable=True),
    Column("resolution_due_at", DateTime(timezone=True), nullable=True),
    Column("first_response_at", DateTime(timezone=True), nullable=True),
    Column("first_response_s", Float, nullable=True, comment="business seconds from first message to first reply"),
    Column("first_response_by", BigInteger, nullable=True, comment="the agent who sent the first reply"),
    Column("first_response_breached", Boolean, nullable=True, comment="null until answered (or without SLA)"),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("resolution_s", Float, nullable=True, comment="business seconds from first message to closing"),
    Column("resolution_breached", Boolean, nullable=True, comment="null until closed (or without SLA)"),
    Column("closed_by", String(128), nullable=True),
    Column("reopened", Integer, nullable=False, comment="times a customer message reopened it"),
    Column("merged_into", BigInteger, nullable=True, comment="the conversation it was merged into"),
    Column("version", Integer, nullable=False, comment="bumped by every change"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "contact_id", "status"),
    Index(None, "status", "agent_id"),
    Index(None, "first_message_at"),
)

inbox_fact_exports = Table(
    "inbox_fact_exports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("messages", Integer, nullable=False, comment="messages in the batch"),
    Column("import_id", BigInteger, nullable=True, comment="the import (import_files.id) that wrote them as facts"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("done_at", DateTime(timezone=True), nullable=True, comment="null: claimed, not yet written"),
)

inbox_messages = Table(
    "inbox_messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation_id", BigInteger, ForeignKey("inbox_conversations.id"), nullable=False),
    Column("direction", String(8), nullable=False, comment="in (the customer), out (a reply), note (never sent)"),
    Column("channel", String(32), nullable=False),
    Column("account", String(64), nullable=False, comment="the merchant's account on the channel: WeChat app id, ..."),
    Column("address", String(255), nullable=True, comment="where the customer is reached: openid, phone, nick, ..."),
    Column("sender_key", String(255), nullable=True, comment="the customer's identifier key on this message"),
    Column("sender", Text, nullable=True, comment="JSON: the sender's identifiers as the channel gave them"),
    Column("agent_id", BigInteger, nullable=True, comment="replies and notes: the agent"),
    Column("author", String(128), nullable=True, comment="who wrote a note: agent, clerk, API key"),
    Column("dedupe_key", String(255), nullable=True, unique=True, comment="channel:account:external id"),
    Column("external_id", String(255), nullable=True, comment="the channel's message id"),
    Column("idempotency_key", String(255), nullable=True, unique=True, comment="a reply's key: one send per key"),
    Column("text", Text, nullable=False),
    Column("subject", String(255), nullable=True, comment="email subject"),
    Column("attachments", Text, nullable=True, comment="JSON list: name, type, size, url"),
    Column("store_code", String(64), nullable=True, comment="clerk notes: the store"),
    Column("sent_at", DateTime(timezone=True), nullable=False, comment="when the channel says it was written"),
    Column("created_at", DateTime(timezone=True), nullable=False, comment="when omnicrm recorded it"),
    Column("delivery", String(16), nullable=True, comment="replies: sending, sent, failed, refused or in_doubt"),
    Column("provider_message_id", String(255), nullable=True),
    Column("error", Text, nullable=True, comment="why a reply was not delivered"),
    Column("complaint_score", Float, nullable=True, comment="how strongly it reads as a complaint, 0-1"),
    Column("intent", String(64), nullable=True),
    Column("fact_export_id", BigInteger, ForeignKey("inbox_fact_exports.id"), nullable=True),
    Index(None, "conversation_id", "id"),
    Index(None, "fact_export_id"),
)

inbox_activity = Table(
    "inbox_activity",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation_id", BigInteger, ForeignKey("inbox_conversations.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("action", String(32), nullable=False, comment="opened, assigned, status, priority, reopened, merged"),
    Column("detail", Text, nullable=True),
    Column("by", String(128), nullable=False),
    Index(None, "conversation_id", "id"),
)

inbox_warnings = Table(
    "inbox_warnings",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation_id", BigInteger, ForeignKey("inbox_conversations.id"), nullable=False),
    Column("kind", String(16), nullable=False, comment="response or resolution"),
    Column("level", String(16), nullable=False, comment="warning (close to the target) or breached"),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("warned_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("conversation_id", "kind", "level", "due_at"),
)
