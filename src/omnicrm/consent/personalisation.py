"""The "non-personalised marketing only" choice (PIPL art. 24), per address; the latest choice wins.

A customer counts as non-personalised when the latest choice on any of their addresses says so:
asking once, through any channel, is enough.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, insert, select

from omnicrm.consent.ledger import check_time, utc
from omnicrm.consent.subjects import check_source
from omnicrm.store.schema import personalisation_choices as choices
from omnicrm.store.state import StateStore, utcnow

__all__ = ["Choice", "choices_of", "latest_choices", "set_choice"]


@dataclass(frozen=True)
class Choice:
    id: int
    subject: str
    non_personalised: bool
    source: str
    wording: str | None
    detail: str | None
    recorded_by: str
    customer_id: int | None
    at: datetime
    recorded_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def set_choice(
    state: StateStore,
    *,
    subject: str,
    non_personalised: bool,
    source: str,
    by: str,
    wording: str | None = None,
    detail: str | None = None,
    customer_id: int | None = None,
    at: datetime | None = None,
) -> Choice:
    """Append a choice for an already canonical ``subject`` key."""
    check_source(source)
    now = utcnow()
    values: dict[str, Any] = {
        "subject": subject, "non_personalised": non_personalised, "source": source, "wording": wording,
        "detail": detail, "recorded_by": by, "customer_id": customer_id, "at": check_time(at, now), "recorded_at": now,
    }  # fmt: skip
    with state.begin() as conn:
        new_id = conn.execute(insert(choices).values(**values).returning(choices.c.id)).scalar_one()
    return Choice(id=int(new_id), **values)


def latest_choices(subjects: list[str] | None = None) -> Select:
    """SELECT of the latest choice per subject."""
    rank = func.row_number().over(partition_by=choices.c.subject, order_by=(choices.c.at.desc(), choices.c.id.desc()))
    inner = select(choices, rank.label("rank"))
    if subjects is not None:
        inner = inner.where(choices.c.subject.in_(subjects))
    ranked = inner.subquery()
    return select(*(ranked.c[c.name] for c in choices.columns)).where(ranked.c.rank == 1)


def choices_of(state: StateStore, subjects: list[str]) -> list[Choice]:
    """The current choice of each of these subject keys that has one."""
    if not subjects:
        return []
    with state.connect() as conn:
        rows = conn.execute(latest_choices(subjects)).all()
    return sorted(
        (Choice(r.id, r.subject, bool(r.non_personalised), r.source, r.wording, r.detail, r.recorded_by,
                r.customer_id, utc(r.at), utc(r.recorded_at)) for r in rows),
        key=lambda c: c.subject,
    )  # fmt: skip
