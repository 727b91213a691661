"""inbox: contacts, conversations and messages, agents and teams, quick replies, SLA policies and calendars

Revision ID: 0017
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox_agents",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False, comment="as customers and colleagues see it"),
        sa.Column("username", sa.String(length=64), nullable=True, comment="the console user this agent signs in as"),
        sa.Column(
            "channels",
            sa.String(length=255),
            nullable=False,
            comment="channels they answer, comma-separated; empty: all",
        ),
        sa.Column(
            "languages", sa.String(length=64), nullable=False, comment="languages they write (zh,en); empty: all"
        ),
        sa.Column("max_open", sa.Integer(), nullable=True, comment="most open conversations at once; null: no limit"),
        sa.Column("active", sa.Boolean(), nullable=False, comment="inactive agents get no new conversations"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_agents")),
        sa.UniqueConstraint("username", name=op.f("uq_inbox_agents_username")),
    )
    op.create_table(
        "inbox_calendars",
        sa.Column("name", sa.String(length=64), nullable=False, comment="named by SLA policies"),
        sa.Column(
            "timezone", sa.String(length=64), nullable=False, comment="IANA zone the hours are in, e.g. Asia/Shanghai"
        ),
        sa.Column("hours", sa.Text(), nullable=False, comment='JSON: weekday → [["09:00", "18:00"], ...]'),
        sa.Column("exceptions", sa.Text(), nullable=False, comment="JSON: date → hours of that day; [] for a holiday"),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_inbox_calendars")),
    )
    op.create_table(
        "inbox_contacts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=True, comment="OneID customer; null while provisional"),
        sa.Column("name", sa.String(length=255), nullable=True, comment="the name the channel showed, if any"),
        sa.Column("language", sa.String(length=8), nullable=True, comment="zh or en, when known"),
        sa.Column(
            "merged_into", sa.BigInteger(), nullable=True, comment="the contact this one became when OneID joined them"
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_contacts")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_inbox_contacts_customer_id")),
    )
    op.create_table(
        "inbox_fact_exports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False, comment="messages in the batch"),
        sa.Column(
            "import_id", sa.BigInteger(), nullable=True, comment="the import (import_files.id) that wrote them as facts"
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True, comment="null: claimed, not yet written"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_fact_exports")),
    )
    op.create_table(
        "inbox_quick_replies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column(
            "shortcut", sa.String(length=64), nullable=False, comment="what an agent types to pick it, e.g. shipping"
        ),
        sa.Column("language", sa.String(length=8), nullable=False, comment="zh or en"),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column(
            "text", sa.Text(), nullable=False, comment="the reply, with {placeholders} filled in when it is used"
        ),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_quick_replies")),
        sa.UniqueConstraint("shortcut", "language", name=op.f("uq_inbox_quick_replies_shortcut_language")),
    )
    op.create_table(
        "inbox_teams",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column(
            "channels",
            sa.String(length=255),
            nullable=False,
            comment="channels routed here, comma-separated; empty: any",
        ),
        sa.Column(
            "last_agent_id",
            sa.BigInteger(),
            nullable=True,
            comment="round robin: the member who got the last conversation",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_teams")),
        sa.UniqueConstraint("name", name=op.f("uq_inbox_teams_name")),
    )
    op.create_table(
        "inbox_contact_keys",
        sa.Column(
            "key", sa.String(length=255), nullable=False, comment="identifier key type:scope:value, as OneID writes it"
        ),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["inbox_contacts.id"], name=op.f("fk_inbox_contact_keys_contact_id_inbox_contacts")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_inbox_contact_keys")),
    )
    with op.batch_alter_table("inbox_contact_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbox_contact_keys_contact_id"), ["contact_id"], unique=False)

    op.create_table(
        "inbox_conversations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "status", sa.String(length=16), nullable=False, comment="open, pending (waiting on the customer) or closed"
        ),
        sa.Column("priority", sa.String(length=16), nullable=False, comment="low, normal, high or urgent"),
        sa.Column(
            "channel", sa.String(length=32), nullable=False, comment="the channel it started on; decides its SLA policy"
        ),
        sa.Column(
            "last_channel", sa.String(length=32), nullable=False, comment="the channel the customer last wrote from"
        ),
        sa.Column("team_id", sa.BigInteger(), nullable=True),
        sa.Column("agent_id", sa.BigInteger(), nullable=True, comment="who owns it; null: queue"),
        sa.Column("complaint", sa.Boolean(), nullable=False, comment="a message in it read as a complaint"),
        sa.Column(
            "intent", sa.String(length=64), nullable=True, comment="what the latest customer message asks for, if read"
        ),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column(
            "calendar", sa.String(length=64), nullable=True, comment="business hours of its SLA; null: round the clock"
        ),
        sa.Column("response_target_s", sa.Integer(), nullable=True, comment="business seconds to answer; null: no SLA"),
        sa.Column(
            "resolution_target_s", sa.Integer(), nullable=True, comment="business seconds to close; null: no SLA"
        ),
        sa.Column(
            "first_message_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="first customer message: clocks start",
        ),
        sa.Column(
            "awaiting_since", sa.DateTime(timezone=True), nullable=True, comment="oldest customer message not answered"
        ),
        sa.Column("response_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "first_response_s", sa.Float(), nullable=True, comment="business seconds from first message to first reply"
        ),
        sa.Column("first_response_by", sa.BigInteger(), nullable=True, comment="the agent who sent the first reply"),
        sa.Column(
            "first_response_breached", sa.Boolean(), nullable=True, comment="null until answered (or without SLA)"
        ),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_s", sa.Float(), nullable=True, comment="business seconds from first message to closing"),
        sa.Column("resolution_breached", sa.Boolean(), nullable=True, comment="null until closed (or without SLA)"),
        sa.Column("closed_by", sa.String(length=128), nullable=True),
        sa.Column("reopened", sa.Integer(), nullable=False, comment="times a customer message reopened it"),
        sa.Column("merged_into", sa.BigInteger(), nullable=True, comment="the conversation it was merged into"),
        sa.Column("version", sa.Integer(), nullable=False, comment="bumped by every change"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["inbox_agents.id"], name=op.f("fk_inbox_conversations_agent_id_inbox_agents")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["inbox_contacts.id"], name=op.f("fk_inbox_conversations_contact_id_inbox_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["inbox_teams.id"], name=op.f("fk_inbox_conversations_team_id_inbox_teams")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_conversations")),
    )
    with op.batch_alter_table("inbox_conversations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbox_conversations_contact_id_status"), ["contact_id", "status"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_inbox_conversations_first_message_at"), ["first_message_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_inbox_conversations_status_agent_id"), ["status", "agent_id"], unique=False
        )

    op.create_table(
        "inbox_sla_policies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False, comment="a channel, or * for any"),
        sa.Column("priority", sa.String(length=16), nullable=False, comment="low, normal, high, urgent, or * for any"),
        sa.Column(
            "first_response_minutes", sa.Integer(), nullable=False, comment="business minutes to answer a message"
        ),
        sa.Column(
            "resolution_minutes", sa.Integer(), nullable=False, comment="business minutes from first message to closing"
        ),
        sa.Column("calendar", sa.String(length=64), nullable=True, comment="null: round the clock"),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["calendar"], ["inbox_calendars.name"], name=op.f("fk_inbox_sla_policies_calendar_inbox_calendars")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_sla_policies")),
        sa.UniqueConstraint("channel", "priority", name=op.f("uq_inbox_sla_policies_channel_priority")),
    )
    op.create_table(
        "inbox_team_members",
        sa.Column("team_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("agent_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["inbox_agents.id"], name=op.f("fk_inbox_team_members_agent_id_inbox_agents")
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["inbox_teams.id"], name=op.f("fk_inbox_team_members_team_id_inbox_teams")
        ),
        sa.PrimaryKeyConstraint("team_id", "agent_id", name=op.f("pk_inbox_team_members")),
    )
    op.create_table(
        "inbox_activity",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "action",
            sa.String(length=32),
            nullable=False,
            comment="opened, assigned, status, priority, reopened, merged",
        ),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["inbox_conversations.id"],
            name=op.f("fk_inbox_activity_conversation_id_inbox_conversations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_activity")),
    )
    with op.batch_alter_table("inbox_activity", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbox_activity_conversation_id_id"), ["conversation_id", "id"], unique=False
        )

    op.create_table(
        "inbox_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "direction",
            sa.String(length=8),
            nullable=False,
            comment="in (the customer), out (a reply), note (never sent)",
        ),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column(
            "account",
            sa.String(length=64),
            nullable=False,
            comment="the merchant's account on the channel: WeChat app id, ...",
        ),
        sa.Column(
            "address",
            sa.String(length=255),
            nullable=True,
            comment="where the customer is reached: openid, phone, nick, ...",
        ),
        sa.Column(
            "sender_key", sa.String(length=255), nullable=True, comment="the customer's identifier key on this message"
        ),
        sa.Column(
            "sender", sa.Text(), nullable=True, comment="JSON: the sender's identifiers as the channel gave them"
        ),
        sa.Column("agent_id", sa.BigInteger(), nullable=True, comment="replies and notes: the agent"),
        sa.Column("author", sa.String(length=128), nullable=True, comment="who wrote a note: agent, clerk, API key"),
        sa.Column("dedupe_key", sa.String(length=255), nullable=True, comment="channel:account:external id"),
        sa.Column("external_id", sa.String(length=255), nullable=True, comment="the channel's message id"),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True, comment="a reply's key: one send per key"),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=True, comment="email subject"),
        sa.Column("attachments", sa.Text(), nullable=True, comment="JSON list: name, type, size, url"),
        sa.Column("store_code", sa.String(length=64), nullable=True, comment="clerk notes: the store"),
        sa.Column(
            "sent_at", sa.DateTime(timezone=True), nullable=False, comment="when the channel says it was written"
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, comment="when omnicrm recorded it"),
        sa.Column(
            "delivery",
            sa.String(length=16),
            nullable=True,
            comment="replies: sending, sent, failed, refused or in_doubt",
        ),
        sa.Column("provider_message_id", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True, comment="why a reply was not delivered"),
        sa.Column("complaint_score", sa.Float(), nullable=True, comment="how strongly it reads as a complaint, 0-1"),
        sa.Column("intent", sa.String(length=64), nullable=True),
        sa.Column("fact_export_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["inbox_conversations.id"],
            name=op.f("fk_inbox_messages_conversation_id_inbox_conversations"),
        ),
        sa.ForeignKeyConstraint(
            ["fact_export_id"],
            ["inbox_fact_exports.id"],
            name=op.f("fk_inbox_messages_fact_export_id_inbox_fact_exports"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_messages")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_inbox_messages_dedupe_key")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_inbox_messages_idempotency_key")),
    )
    with op.batch_alter_table("inbox_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbox_messages_conversation_id_id"), ["conversation_id", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_inbox_messages_fact_export_id"), ["fact_export_id"], unique=False)

    op.create_table(
        "inbox_warnings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False, comment="response or resolution"),
        sa.Column("level", sa.String(length=16), nullable=False, comment="warning (close to the target) or breached"),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("warned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["inbox_conversations.id"],
            name=op.f("fk_inbox_warnings_conversation_id_inbox_conversations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_warnings")),
        sa.UniqueConstraint(
            "conversation_id",
            "kind",
            "level",
            "due_at",
            name=op.f("uq_inbox_warnings_conversation_id_kind_level_due_at"),
        ),
    )


def downgrade() -> None:
    op.drop_table("inbox_warnings")
    with op.batch_alter_table("inbox_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_messages_fact_export_id"))
        batch_op.drop_index(batch_op.f("ix_inbox_messages_conversation_id_id"))

    op.drop_table("inbox_messages")
    with op.batch_alter_table("inbox_activity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_activity_conversation_id_id"))

    op.drop_table("inbox_activity")
    op.drop_table("inbox_team_members")
    op.drop_table("inbox_sla_policies")
    with op.batch_alter_table("inbox_conversations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_conversations_status_agent_id"))
        batch_op.drop_index(batch_op.f("ix_inbox_conversations_first_message_at"))
        batch_op.drop_index(batch_op.f("ix_inbox_conversations_contact_id_status"))

    op.drop_table("inbox_conversations")
    with op.batch_alter_table("inbox_contact_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_contact_keys_contact_id"))

    op.drop_table("inbox_contact_keys")
    op.drop_table("inbox_teams")
    op.drop_table("inbox_quick_replies")
    op.drop_table("inbox_fact_exports")
    op.drop_table("inbox_contacts")
    op.drop_table("inbox_calendars")
    op.drop_table("inbox_agents")
