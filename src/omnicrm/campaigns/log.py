"""Reading the send log: counts by arm, status and reason; one page of recipients; deciding sends left in doubt."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import func, select, update

from omnicrm.campaigns.definition import get_campaign
from omnicrm.errors import InputError, Problem
from omnicrm.store.schema import campaign_recipients
from omnicrm.store.state import StateStore

__all__ = ["STATUSES", "log_summary", "recipients_page", "resolve_in_doubt"]

R = campaign_recipients.c
STATUSES = ("pending", "sending", "sent", "refused", "failed", "withdrawn", "in_doubt", "none")


def log_summary(state: StateStore, campaign_id: int) -> dict[str, Any]:
    """{arms: {arm: n}, statuses: {status: n} (treatment), excluded: {reason: n}, cost, units}."""
    get_campaign(state, campaign_id)
    with state.connect() as conn:
        rows = conn.execute(
            select(R.arm, R.status, R.reason, func.count(), func.sum(R.cost_micros), func.sum(R.units))
            .where(R.campaign_id == campaign_id).group_by(R.arm, R.status, R.reason)
        ).all()  # fmt: skip
    arms: dict[str, int] = {}
    statuses: dict[str, int] = {}
    excluded: dict[str, int] = {}
    cost = units = 0
    for arm, status, reason, n, micros, parts in rows:
        arms[arm] = arms.get(arm, 0) + int(n)
        if arm == "treatment":
            statuses[status] = statuses.get(status, 0) + int(n)
        elif arm == "excluded":
            excluded[reason] = excluded.get(reason, 0) + int(n)
        cost += int(micros or 0)
        units += int(parts or 0)
    return {"arms": arms, "statuses": statuses, "excluded": excluded, "cost": cost / 1_000_000, "units": units}


def recipients_page(
    state: StateStore, campaign_id: int, *, status: str | None = None, arm: str | None = None, limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    """One page of the send log (by customer id) and how many rows match."""
    get_campaign(state, campaign_id)
    if status is not None and status not in STATUSES:
        raise InputError(f"unknown status {status!r}", [Problem(f"use one of {', '.join(STATUSES)}", field="status")])
    if arm is not None and arm not in {"treatment", "holdout", "excluded"}:
        raise InputError(f"unknown arm {arm!r}", [Problem("use treatment, holdout or excluded", field="arm")])
    where = [R.campaign_id == campaign_id]
    if status is not None:
        where.append(R.status == status)
    if arm is not None:
        where.append(R.arm == arm)
    columns = [R.customer_id, R.step, R.arm, R.reason, R.stratum, R.status, R.attempts, R.sent_at, R.units,
               R.cost_micros, R.error, R.not_before]  # fmt: skip
    with state.connect() as conn:
        total = int(conn.execute(select(func.count()).where(*where)).scalar_one())
        rows = conn.execute(select(*columns).where(*where).order_by(R.customer_id).limit(limit).offset(offset)).all()
    page = []
    for r in rows:
        item = dict(r._mapping)
        item["cost"] = item.pop("cost_micros") / 1_000_000
        for key in ("sent_at", "not_before"):
            item[key] = None if item[key] is None else item[key].isoformat()
        page.append(item)
    return page, total


def resolve_in_doubt(state: StateStore, campaign_id: int, decision: Literal["resend", "mark_sent"]) -> int:
    """A person's decision on sends a crash left in doubt: send them again, or count them as sent."""
    get_campaign(state, campaign_id)
    values: dict[str, Any] = {"status": "pending", "not_before": None}
    if decision == "mark_sent":
        values = {"status": "sent", "sent_at": R.claimed_at, "error": "counted as sent by a person after a crash"}
    elif decision != "resend":
        raise InputError(f"unknown decision {decision!r}", [Problem("use resend or mark_sent", field="decision")])
    with state.begin() as conn:
        doubtful = update(campaign_recipients).where(R.campaign_id == campaign_id, R.status == "in_doubt")
        return int(conn.execute(doubtful.values(**values)).rowcount)
