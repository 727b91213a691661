"""Send a launched campaign: claim, check, render, send, record; exactly once per recipient, even across crashes.

The send log (``campaign_recipients``) is the truth. A runner takes a campaign by a lease (one runner
per campaign; a crashed runner's lease lapses), claims a batch of pending rows by marking them
``sending`` in a committed transaction *before* any of them is sent, and records each result the
moment it is known. So after a crash only the rows still marked ``sending`` are in doubt; the next
runner settles them first: sends again where the provider recognises our idempotency key, asks the
provider where it can look a send up (``Channel.was_sent``), and otherwise marks them ``in_doubt`` for
a person to decide, never sending twice.

Right before sending, each recipient's consent is read again, so an opt-out that arrives mid-campaign
stops every later send to that address. Quiet hours and the channel's daily quota defer rows
(``not_before``) rather than skip them; a provider's "try again later" does the same.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.progress import Progress
from sqlalchemy import and_, func, or_, select, update

from omnicrm.campaigns.definition import Campaign, get_campaign, parse_quiet_hours
from omnicrm.campaigns.launch import Marketing
from omnicrm.campaigns.rendering import Renderer
from omnicrm.channels.base import Channel, Message, Outcome, SendResult
from omnicrm.consent.ledger import states
from omnicrm.errors import Conflict
from omnicrm.store.schema import campaign_recipients, campaigns
from omnicrm.store.state import StateStore, utcnow

__all__ = ["RunReport", "in_quiet_hours", "run_campaign"]

R = campaign_recipients.c
MAX_ROUNDS = 6  # rounds of "try again later" before a send is given up as failed
_OPEN = ("pending", "sending")


@dataclass
class RunReport:
    """What one run did, and why it stopped."""

    campaign_id: int
    counts: dict[str, int] = field(default_factory=dict)
    settled: dict[str, int] = field(default_factory=dict)  # in-doubt rows found at start, by how they were settled
    stopped: str = ""
    next_at: dt.datetime | None = None

    def add(self, status: str, n: int = 1) -> None:
        self.counts[status] = self.counts.get(status, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id, "counts": self.counts, "settled": self.settled, "stopped": self.stopped,
            "next_at": None if self.next_at is None else self.next_at.isoformat(),
        }  # fmt: skip


def in_quiet_hours(moment: dt.datetime, quiet: tuple[dt.time, dt.time] | None, zone: ZoneInfo) -> dt.datetime | None:
    """If ``moment`` falls in the quiet hours of ``zone``, the UTC moment they end; else None."""
    if quiet is None:
        return None
    start, end = quiet
    local = moment.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    crosses = start > end
    inside = (clock >= start or clock < end) if crosses else (start <= clock < end)
    if not inside:
        return None
    day = local.date() + dt.timedelta(days=1) if crosses and clock >= start else local.date()
    return dt.datetime.combine(day, end, zone).astimezone(dt.UTC)


@functools.lru_cache(maxsize=256)
def zone_of(name: str, default: ZoneInfo) -> ZoneInfo:
    """The person's declared time zone, or ``default`` when it is not one the system knows."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return default


class _Lease:
    """One runner per campaign: taken by compare-and-set, renewed each batch, lapses after ``seconds``."""

    def __init__(self, state: StateStore, campaign_id: int, seconds: float, clock: Callable[[], dt.datetime]) -> None:
        self.state, self.campaign_id, self.seconds, self.clock = state, campaign_id, seconds, clock
        self.name = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:64]

    def take(self) -> bool:
        now = self.clock()
        lapsed = now - dt.timedelta(seconds=self.seconds)
        c = campaigns.c
        with self.state.begin() as conn:
            return bool(
                conn.execute(
                    update(campaigns)
                    .where(
                        c.id == self.campaign_id,
                        c.status == "sending",
                        or_(c.runner.is_(None), c.runner == self.name, c.runner_seen_at < lapsed),
                    )
                    .values(runner=self.name, runner_seen_at=now)
                ).rowcount
            )

    def renew(self) -> None:
        if not self.take():
            raise Conflict(f"campaign {self.campaign_id}: another runner took it over, or it is no longer sending")

    def release(self) -> None:
        with self.state.begin() as conn:
            conn.execute(
                update(campaigns)
                .where(campaigns.c.id == self.campaign_id, campaigns.c.runner == self.name)
                .values(runner=None, runner_seen_at=None)
            )


def _record(state: StateStore, key: str, values: dict[str, Any]) -> None:
    state.group_commit(lambda conn: conn.execute(update(campaign_recipients).where(R.idempotency_key == key)
                                                 .values(**values)))  # fmt: skip


def _result_values(result: SendResult, attempts_done: int, now: dt.datetime) -> dict[str, Any]:
    """The send-log columns for a channel's result."""
    if result.outcome is Outcome.SENT:
        return {"status": "sent", "sent_at": now, "provider_message_id": result.provider_message_id,
                "units": result.units, "cost_micros": int(result.cost * 1_000_000), "error": None}  # fmt: skip
    if result.outcome is Outcome.REFUSED:
        return {"status": "refused", "error": result.error}
    if result.outcome is Outcome.IN_DOUBT:
        return {"status": "in_doubt", "error": result.error}
    if result.outcome is Outcome.FAILED_RETRYABLE and attempts_done < MAX_ROUNDS:
        delay = result.retry_after if result.retry_after is not None else 60.0 * 2 ** (attempts_done - 1)
        return {"status": "pending", "not_before": now + dt.timedelta(seconds=delay), "error": result.error}
    return {"status": "failed", "error": result.error}


class _Run:
    def __init__(self, system: Marketing, campaign: Campaign, clock: Callable[[], dt.datetime],
                 progress: Progress | None) -> None:  # fmt: skip
        self.system, self.campaign, self.clock = system, campaign, clock
        self.state = system.state
        self.channel: Channel = system.channels[campaign.channel]
        self.renderer = Renderer(system, campaign)
        coupon_channel = self.renderer.compiled.content.coupon_channel
        self.coupons: Channel | None = None if coupon_channel is None else system.channels[coupon_channel]
        self.quiet = parse_quiet_hours(campaign.quiet_hours)
        self.zone = ZoneInfo(system.settings.timezone)
        self.report = RunReport(campaign.id)
        self.progress = progress
        self.task = None
        if progress is not None:
            total, done = self._progress_counts()
            self.task = progress.add_task(f"campaign {campaign.id}: sending", total=total, completed=done)

    def _progress_counts(self) -> tuple[int, int]:
        with self.state.connect() as conn:
            rows = conn.execute(
                select(R.status, func.count()).where(R.campaign_id == self.campaign.id, R.arm == "treatment")
                .group_by(R.status)
            ).all()  # fmt: skip
        total = sum(int(n) for _, n in rows)
        return total, total - sum(int(n) for s, n in rows if s in _OPEN)

    def _where(self, *more: Any) -> Any:
        return and_(R.campaign_id == self.campaign.id, R.step == "1", R.arm == "treatment", *more)

    def compose(self, row: Any) -> tuple[Message | str, int]:
        """The row's message, after issuing its coupon when the content has one (the coupon service knows the
        idempotency key, so issuing again after a retry or a crash hands back the same coupon); and the coupon's
        cost in micros."""
        coupon = self.renderer.compiled.coupon_template
        if coupon is None:
            return self.renderer.message(row), 0
        channel = self.coupons
        assert channel is not None
        issued = channel.send(Message(channel=channel.name, address=str(row.customer_id),
                                      campaign_id=str(self.campaign.id), recipient=str(row.customer_id),
                                      step=f"{row.step}:coupon", template_id=coupon))  # fmt: skip
        if not issued.ok or not issued.provider_message_id:
            return f"customer {row.customer_id}: the coupon could not be issued: {issued.error or 'no coupon id'}", 0
        cost = int(issued.cost * 1_000_000)
        return self.renderer.message(row, {"coupon_code": issued.provider_message_id}), cost

    # -- settling rows left in doubt by a crashed runner ------------------------------------------------
    def settle(self) -> None:
        with self.state.connect() as conn:
            rows = conn.execute(select(campaign_recipients).where(self._where(R.status == "sending"))).all()
        self.renderer.prefetch(rows)
        for row in rows:
            message, _ = self.compose(row)
            if isinstance(message, str):
                verdict, values = "failed", {"status": "failed", "error": message}
            elif self.channel.resend_safe:
                verdict, values = "resent", {"status": "pending"}
            else:
                known = self.channel.was_sent(message)
                if known is True:
                    verdict, values = "found_sent", {"status": "sent", "sent_at": row.claimed_at,
                                                     "error": "sent before a crash; found at the provider"}  # fmt: skip
                elif known is False:
                    verdict, values = "not_sent", {"status": "pending"}
                else:
                    verdict, values = "in_doubt", {"status": "in_doubt",
                                                   "error": "a crash interrupted this send and the provider cannot "
                                                            "say whether it arrived; not sent again"}  # fmt: skip
            _record(self.state, row.idempotency_key, values)
            self.report.settled[verdict] = self.report.settled.get(verdict, 0) + 1

    # -- the sending loop ---------------------------------------------------------------------------------
    def _quota_left(self, now: dt.datetime) -> int | None:
        quota = self.channel.settings.daily_quota
        if quota is None:
            return None
        local_midnight = dt.datetime.combine(now.astimezone(self.zone).date(), dt.time(), self.zone)
        with self.state.connect() as conn:
            used = conn.execute(
                select(func.count()).select_from(campaign_recipients.join(campaigns, campaigns.c.id == R.campaign_id))
                .where(campaigns.c.channel == self.channel.name, R.status.in_(("sent", "sending", "in_doubt")),
                       func.coalesce(R.sent_at, R.claimed_at) >= local_midnight.astimezone(dt.UTC))
            ).scalar_one()  # fmt: skip
        return max(0, quota - int(used))

    def claim(self, limit: int, now: dt.datetime) -> list[Any]:
        with self.state.begin() as conn:
            # no ORDER BY: the (campaign, step, status, not_before) index hands out the first pending rows as fast at
            # the end of a million-recipient campaign as at its start (they come in send-log order, by customer id)
            keys = conn.execute(
                select(R.idempotency_key).where(self._where(R.status == "pending",
                                                            or_(R.not_before.is_(None), R.not_before <= now)))
                .limit(limit)
            ).scalars().all()  # fmt: skip
            if not keys:
                return []
            conn.execute(
                update(campaign_recipients).where(R.idempotency_key.in_(keys))
                .values(status="sending", claimed_at=now, attempts=R.attempts + 1)
            )  # fmt: skip
            return list(conn.execute(select(campaign_recipients).where(R.idempotency_key.in_(keys))
                                     .order_by(R.customer_id)).all())  # fmt: skip

    def withdrawn(self, rows: list[Any]) -> set[str]:
        """Addresses whose latest marketing consent on the channel is no longer a grant (read just now)."""
        subjects = sorted({r.address for r in rows if r.address})
        latest = {c.subject: c.granted for c in states(self.state, subjects)
                  if c.channel == self.campaign.consent_channel and c.purpose == "marketing"}  # fmt: skip
        return {s for s in subjects if not latest.get(s, False)}

    def send_one(self, row: Any, withdrawn: set[str]) -> str:
        now = self.clock()
        own_quiet = None if not row.timezone else in_quiet_hours(now, self.quiet, zone_of(row.timezone, self.zone))
        if own_quiet is not None:  # the person's own time zone says it is night there
            _record(self.state, row.idempotency_key, {"status": "pending", "not_before": own_quiet})
            return "pending"
        if row.address in withdrawn:
            _record(self.state, row.idempotency_key,
                    {"status": "withdrawn", "error": "consent withdrawn before the send"})  # fmt: skip
            return "withdrawn"
        message, coupon_cost = self.compose(row)
        if isinstance(message, str):
            _record(self.state, row.idempotency_key, {"status": "failed", "error": message})
            return "failed"
        values = _result_values(self.channel.send(message), int(row.attempts), self.clock())
        if values["status"] == "sent":
            values["sent_at"] = now
            values["cost_micros"] += coupon_cost
        _record(self.state, row.idempotency_key, values)
        return str(values["status"])

    def next_due(self) -> dt.datetime | None:
        with self.state.connect() as conn:
            value = conn.execute(select(func.min(R.not_before)).where(self._where(R.status == "pending"))).scalar()
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value

    def remaining(self) -> int:
        with self.state.connect() as conn:
            return int(conn.execute(select(func.count()).where(self._where(R.status.in_(_OPEN)))).scalar_one())


def run_campaign(
    system: Marketing,
    campaign_id: int,
    *,
    workers: int = 4,
    batch: int = 200,
    lease_seconds: float = 60.0,
    wait: bool = False,
    clock: Callable[[], dt.datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress | None = None,
) -> RunReport:
    """Send what is due now. With ``wait``, also wait out quiet hours, quotas and retry delays until done."""
    campaign = get_campaign(system.state, campaign_id)
    if campaign.status != "sending":
        raise Conflict(f"campaign {campaign_id} is {campaign.status}; launch it first")
    lease = _Lease(system.state, campaign_id, lease_seconds, clock)
    if not lease.take():
        raise Conflict(f"campaign {campaign_id} is being sent by another runner; try again in {lease_seconds:.0f}s")
    run = _Run(system, campaign, clock, progress)
    try:
        run.settle()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            while True:
                now = clock()
                if get_campaign(system.state, campaign_id).status != "sending":
                    run.report.stopped = "cancelled"
                    break
                lease.renew()
                quiet_end = in_quiet_hours(now, run.quiet, run.zone)
                quota = run._quota_left(now)
                rows = [] if quiet_end or quota == 0 else run.claim(batch if quota is None else min(batch, quota), now)
                if rows:
                    run.renderer.prefetch(rows)
                    for status in pool.map(run.send_one, rows, [run.withdrawn(rows)] * len(rows)):
                        run.report.add(status)
                        if progress is not None and run.task is not None and status != "pending":
                            progress.advance(run.task)
                    continue
                if run.remaining() == 0:
                    with system.state.begin() as conn:
                        # a journey's step is never done while its journey lives: entrants keep joining its send
                        # log (stopping the journey ends it); so it has only caught up
                        step_of = conn.execute(select(campaigns.c.journey_id)
                                               .where(campaigns.c.id == campaign_id)).scalar()  # fmt: skip
                        if step_of is None:
                            conn.execute(update(campaigns).where(campaigns.c.id == campaign_id,
                                                                 campaigns.c.status == "sending")
                                         .values(status="done", finished_at=clock(), updated_at=clock()))  # fmt: skip
                    run.report.stopped = "done" if step_of is None else "caught_up"
                    break
                if quiet_end is not None:
                    run.report.stopped, run.report.next_at = "quiet_hours", quiet_end
                elif quota == 0:
                    tomorrow = now.astimezone(run.zone).date() + dt.timedelta(days=1)
                    run.report.stopped = "daily_quota"
                    run.report.next_at = dt.datetime.combine(tomorrow, dt.time(), run.zone).astimezone(dt.UTC)
                else:
                    run.report.stopped, run.report.next_at = "waiting_retry", run.next_due() or now
                if not wait:
                    break
                sleep(max(0.0, (run.report.next_at - clock()).total_seconds()))
    finally:
        lease.release()
    return run.report
