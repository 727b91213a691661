"""Interest communities, their members, store events with sign-ups and check-ins (omnicrm.community)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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

__all__ = ["communities", "community_checkins", "community_events", "community_members", "community_signups"]

# ---------------------------------------------------------------------------------------------------------------------
# Communities built from portrait interests, and who belongs to them. A member is a row without left_at; leaving keeps
# the row (how and when they came stays known), joining again clears left_at.
# ---------------------------------------------------------------------------------------------------------------------

communities = Table(
    "communities",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name_zh", String(128), nullable=False, unique=True, comment="the name in Chinese, unique"),
    Column("name_en", String(128), nullable=False, comment="the name in English"),
    Column("interests", String(512), nullable=False, comment="interest ids of the taxonomy, sorted, comma-separated"),
    Column("description", Text, nullable=True, comment="what the community is about, shown to staff"),
    Column("status", String(16), nullable=False, comment="active or archived (archived takes no new members)"),
    Column("created_by", String(128), nullable=False, comment="who created it (console:<user> or api:<key>)"),
    Column("created_at", DateTime(timezone=True), nullable=False, comment="when it was created"),
    Column("updated_at", DateTime(timezone=True), nullable=False, comment="when its status or text last changed"),
)

community_members = Table(
    "community_members",
    metadata,
    Column("community_id", Id, ForeignKey("communities.id"), primary_key=True, comment="the community"),
    Column("customer_id", BigInteger, primary_key=True, autoincrement=False, comment="OneID customer"),
    Column("source", String(16), nullable=False, comment="how they last became a member: invited, joined, checked_in"),
    Column("joined_at", DateTime(timezone=True), nullable=False, comment="when they last became a member"),
    Column("left_at", DateTime(timezone=True), nullable=True, comment="set when they left; null: a member"),
    Column("recorded_by", String(128), nullable=False, comment="who recorded the last change"),
    Index(None, "customer_id"),
    Index(None, "community_id", "left_at"),
)

# ---------------------------------------------------------------------------------------------------------------------
# Events at a store or venue. Seats taken are never stored: they are the confirmed sign-ups plus the walk-ins who
# checked in without one, counted while the event's row is locked. The waiting list is the waiting sign-ups by seq.
# ---------------------------------------------------------------------------------------------------------------------

community_events = Table(
    "community_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("community_id", Id, ForeignKey("communities.id"), nullable=True, comment="the community; null: none"),
    Column("title_zh", String(200), nullable=False, comment="the title in Chinese"),
    Column("title_en", String(200), nullable=True, comment="the title in English; null: the Chinese one"),
    Column("store_code", String(64), nullable=True, comment="the store it is held at, if at a store"),
    Column("venue", String(255), nullable=True, comment="where it is held, in words (an address, a park)"),
    Column("starts_at", DateTime(timezone=True), nullable=False, comment="when it starts"),
    Column("ends_at", DateTime(timezone=True), nullable=False, comment="when it ends"),
    Column("capacity", Integer, nullable=False, comment="seats: confirmed sign-ups plus walk-ins never exceed it"),
    Column("signup_opens_at", DateTime(timezone=True), nullable=False, comment="sign-up opens"),
    Column("signup_closes_at", DateTime(timezone=True), nullable=False, comment="sign-up closes (exclusive)"),
    Column("checkin_opens_at", DateTime(timezone=True), nullable=False, comment="check-in opens"),
    Column("checkin_closes_at", DateTime(timezone=True), nullable=False, comment="check-in closes (exclusive)"),
    Column("status", String(16), nullable=False, comment="scheduled or cancelled"),
    Column("cancelled_at", DateTime(timezone=True), nullable=True, comment="when it was cancelled"),
    Column("cancel_reason", Text, nullable=True, comment="why it was cancelled"),
    Column("created_by", String(128), nullable=False, comment="who created it"),
    Column("created_at", DateTime(timezone=True), nullable=False, comment="when it was created"),
    Index(None, "community_id", "starts_at"),
    Index(None, "store_code", "starts_at"),
    Index(None, "starts_at"),
)

community_signups = Table(
    "community_signups",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", Id, ForeignKey("community_events.id"), nullable=False, comment="the event"),
    Column("customer_id", BigInteger, nullable=False, comment="OneID customer"),
    Column("status", String(16), nullable=False, comment="confirmed, waiting or cancelled"),
    Column(
        "seq", BigInteger, nullable=False, comment="place in the event's sign-up order; the waiting list follows it"
    ),
    Column("signed_up_at", DateTime(timezone=True), nullable=False, comment="when they (last) signed up"),
    Column("confirmed_at", DateTime(timezone=True), nullable=True, comment="when the seat became theirs"),
    Column("cancelled_at", DateTime(timezone=True), nullable=True, comment="when they cancelled"),
    Column("recorded_by", String(128), nullable=False, comment="who recorded the last change"),
    # one sign-up per person and event: signing up twice is the same sign-up
    UniqueConstraint("event_id", "customer_id"),
    UniqueConstraint("event_id", "seq"),
    Index(None, "event_id", "status", "seq"),
    Index(None, "customer_id"),
)

community_checkins = Table(
    "community_checkins",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", Id, ForeignKey("community_events.id"), nullable=False, comment="the event"),
    Column(
        "signup_id",
        Id,
        ForeignKey("community_signups.id"),
        nullable=True,
        unique=True,
        comment="the sign-up (ticket) used, once; null: a walk-in who took a free seat",
    ),
    Column("customer_id", BigInteger, nullable=True, comment="OneID customer, when known at check-in"),
    Column("phone_key", String(64), nullable=True, comment="walk-ins: their phone as an identifier key"),
    Column("method", String(16), nullable=False, comment="ticket (scanned by a clerk) or walk_in (venue QR code)"),
    Column("message_id", String(255), nullable=True, comment="walk-ins: the identify fact written to ingest"),
    Column("idempotency_key", String(255), nullable=True, unique=True, comment="a retried check-in finds its row"),
    Column("recorded_by", String(128), nullable=False, comment="the clerk, or the walk-in page"),
    Column("at", DateTime(timezone=True), nullable=False, comment="when they checked in"),
    # a person checks in once per event, known by customer or by phone (NULLs never collide)
    UniqueConstraint("event_id", "customer_id"),
    UniqueConstraint("event_id", "phone_key"),
    Index(None, "event_id", "at"),
)
