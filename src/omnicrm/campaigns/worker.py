"""The server's campaign worker: advances live journeys, launches scheduled campaigns when due and sends the
launched ones.

Each round first advances the live journeys (at most once a ``journey_interval``: it reads every order), so the
steps it queues go out in the same round; then it launches what is due and gives every sending campaign one
``run_campaign`` pass (without waiting for quiet hours or retry delays: the next round comes back). A campaign
another runner holds (``omnicrm campaigns run`` in a shell) is left to it.
"""

from __future__ import annotations

import threading
import time

from omnicrm.campaigns.journey_flow import advance
from omnicrm.campaigns.launch import Marketing, launch_due
from omnicrm.campaigns.sender import run_campaign
from omnicrm.errors import Conflict
from omnicrm.logs import get_logger
from omnicrm.store.schema import campaigns

__all__ = ["CampaignWorker", "sending_campaigns"]

log = get_logger(__name__)


def sending_campaigns(system: Marketing) -> list[int]:
    from sqlalchemy import select

    with system.state.connect() as conn:
        ids = conn.execute(select(campaigns.c.id).where(campaigns.c.status == "sending").order_by(campaigns.c.id))
        return [int(i) for i in ids.scalars().all()]


class CampaignWorker(threading.Thread):
    """Runs a round every ``interval`` seconds until stopped."""

    def __init__(self, system: Marketing, *, interval: float, journey_interval: float = 60.0) -> None:
        super().__init__(name="omnicrm-campaigns", daemon=True)
        self.system, self.interval, self.journey_interval = system, interval, journey_interval
        self._halt = threading.Event()
        self._journeys_at: float | None = None

    def round(self) -> None:
        if self._journeys_at is None or time.monotonic() - self._journeys_at >= self.journey_interval:
            self._journeys_at = time.monotonic()
            for moved in advance(self.system):
                if moved.entered or moved.exited or moved.steps:
                    log.info("journey round", **moved.as_dict())
        for campaign_id in launch_due(self.system):
            log.info("launched a scheduled campaign", campaign=campaign_id)
        for campaign_id in sending_campaigns(self.system):
            if self._halt.is_set():
                return
            try:
                report = run_campaign(self.system, campaign_id)
                if report.counts:
                    log.info("campaign round", campaign=campaign_id, **report.counts, stopped=report.stopped)
            except Conflict:
                continue  # another runner holds it, or it was cancelled meanwhile

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.round()
            except Exception as exc:  # keep going after a transient failure; the send log makes a retry safe
                log.exception("campaign round failed; will retry", error=repr(exc))
            self._halt.wait(self.interval)

    def stop(self, timeout: float = 30.0) -> None:
        self._halt.set()
        self.join(timeout)
