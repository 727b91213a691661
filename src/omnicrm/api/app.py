"""The FastAPI application: routers assembled in one place, stores opened once per process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from omnicrm import __version__
from omnicrm.api import (
    analytics,
    campaigns,
    community,
    consents,
    content,
    coupons,
    customers,
    giveaways,
    inbox,
    inbox_attributes,
    ingest,
    journeys,
    links,
    loyalty,
    loyalty_coupons,
    loyalty_till,
    referrals,
    segments,
    stored_value,
    tags,
)
from omnicrm.api.errors import install_error_handlers
from omnicrm.api.responses import JSONBody
from omnicrm.console import mount as mount_console
from omnicrm.ingest.receive import Receiver
from omnicrm.ingest.sources import SourceKeys
from omnicrm.ingest.worker import LoaderThread
from omnicrm.logs import configure_logging
from omnicrm.settings import Settings, get_settings
from omnicrm.store.derived import DerivedStore
from omnicrm.store.facts import FactsStore
from omnicrm.store.state import StateStore

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (default: the process settings)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    state = StateStore(settings.state_database_url)
    facts = FactsStore(settings.facts_dir)
    receiver = Receiver(
        state=state,
        keys=SourceKeys(state),
        max_message_bytes=settings.max_message_bytes,
        max_batch_bytes=settings.max_batch_bytes,
        buffer_high_water=settings.buffer_high_water,
    )

    def _backlog(count: int) -> None:
        receiver.buffered = count

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loader = None
        if settings.loader_interval_seconds > 0:
            loader = LoaderThread(
                state,
                facts,
                interval=settings.loader_interval_seconds,
                batch_size=settings.loader_batch_size,
                dedupe_days=settings.dedupe_days,
                on_backlog=_backlog,
            )
            loader.start()
        sender = None
        if settings.campaign_interval_seconds > 0:
            from omnicrm.campaigns.launch import Marketing
            from omnicrm.campaigns.worker import CampaignWorker

            sender = CampaignWorker(Marketing.of(settings, state),
                                    interval=settings.campaign_interval_seconds)  # fmt: skip
            sender.start()
        yield
        if sender is not None:
            sender.stop()
            sender.system.channels.close()
        if loader is not None:
            loader.stop()
        state.dispose()

    app = FastAPI(
        title="omnicrm",
        version=__version__,
        description="Omni-channel customer platform: Segment-compatible ingest, OneID, portraits, campaigns.",
        default_response_class=JSONBody,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.state_store = state
    app.state.facts = facts
    app.state.derived = DerivedStore(settings.derived_dir)
    app.state.receiver = receiver
    install_error_handlers(app)
    app.include_router(ingest.router)
    app.include_router(customers.router)
    app.include_router(tags.router)
    app.include_router(segments.router)
    app.include_router(analytics.router)
    app.include_router(consents.router)
    app.include_router(links.router)
    app.include_router(campaigns.router)
    app.include_router(coupons.router)
    app.include_router(journeys.router)
    app.include_router(community.router)
    app.include_router(content.router)
    app.include_router(loyalty.router)
    app.include_router(loyalty_coupons.router)
    app.include_router(loyalty_till.router)
    app.include_router(stored_value.router)
    app.include_router(giveaways.router)
    app.include_router(referrals.router)
    app.include_router(inbox.router)
    app.include_router(inbox_attributes.router)
    mount_console(app)

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, object]:
        return {"status": "ok", "version": __version__, "buffered": receiver.buffered}

    return app
