"""State-store tables (SQLAlchemy Core), one module per domain. Alembic migrations in ``migrations/`` create them.

Only mutable business state lives here; facts are Parquet and derived data is recomputable. Every table belongs to
the one ``metadata`` of ``base``; a new domain's module is imported below so that Alembic and the tests see it.
"""

from __future__ import annotations

from omnicrm.store.schema.base import Id, metadata
from omnicrm.store.schema.community import (
    communities,
    community_checkins,
    community_events,
    community_members,
    community_signups,
)
from omnicrm.store.schema.core import (
    api_keys,
    console_sessions,
    fact_batches,
    identity_links,
    import_files,
    ingest_buffer,
    login_attempts,
    manual_tags,
    quarantine,
    segment_snapshots,
    segments,
    sources,
    tag_definitions,
    users,
)
from omnicrm.store.schema.giveaways import (
    giveaway_eligible,
    giveaway_entries,
    giveaway_packets,
    giveaway_prizes,
    giveaways,
)
from omnicrm.store.schema.loyalty import (
    coupon_redemptions,
    coupon_templates,
    coupons,
    loyalty_rules,
    member_tiers,
    point_accounts,
    point_draws,
    point_entries,
    point_lots,
    tier_changes,
)
from omnicrm.store.schema.marketing import (
    campaign_links,
    campaign_recipients,
    campaigns,
    consents,
    journey_entries,
    journeys,
    link_clicks,
    personalisation_choices,
    wechat_server_tokens,
)
from omnicrm.store.schema.referrals import referral_codes, referral_programmes, referral_visits, referrals
from omnicrm.store.schema.stored_value import stored_value_draws, stored_value_entries

__all__ = [
    "Id",
    "api_keys",
    "campaign_links",
    "campaign_recipients",
    "campaigns",
    "communities",
    "community_checkins",
    "community_events",
    "community_members",
    "community_signups",
    "consents",
    "console_sessions",
    "coupon_redemptions",
    "coupon_templates",
    "coupons",
    "fact_batches",
    "giveaway_eligible",
    "giveaway_entries",
    "giveaway_packets",
    "giveaway_prizes",
    "giveaways",
    "identity_links",
    "import_files",
    "ingest_buffer",
    "journey_entries",
    "journeys",
    "link_clicks",
    "login_attempts",
    "loyalty_rules",
    "manual_tags",
    "member_tiers",
    "metadata",
    "personalisation_choices",
    "point_accounts",
    "point_draws",
    "point_entries",
    "point_lots",
    "quarantine",
    "referral_codes",
    "referral_programmes",
    "referral_visits",
    "referrals",
    "segment_snapshots",
    "segments",
    "sources",
    "stored_value_draws",
    "stored_value_entries",
    "tag_definitions",
    "tier_changes",
    "users",
    "wechat_server_tokens",
]
