"""Advancing live journeys on new facts: enter, exit, and queue each due step's messages in its send log.

``advance(system, now)`` evaluates every live journey against the orders as known at ``now`` (the portrait's own
per-order table, ``PortraitInputs.orders``: order lines and shop events of every channel, stores included, joined
to OneID; paid orders only), set-based in the engine:

1. **Enter.** Customers whose trigger order happened after the journey went live and by ``now``, and who have no
   entry yet, enter with ``entered_at`` = the order's time. Looking back to the start (not only since the last
   run) lets orders that arrive late — a marketplace export imported the next day, a buyer linked to a customer by
   a later OneID refresh — still enter; the primary key (journey, customer) keeps it to once.
2. **Exit.** With the ``purchase`` exit rule, active entries with a paid order after ``entered_at`` leave.
3. **Steps.** Entries whose next step is due (``next_at`` ≤ ``now``) and whose step condition holds get one row each
   in the step campaign's send log (``assigned_at = now``), drawn by ``audience.draw`` — global control,
   non-personalised, consent, shared address and frequency cap exclusions, and the step's own holdout, drawn per
   person (a step draws a few entrants at a time). The sender then sends them like any campaign's. An entry
   whose condition fails, or whose step campaign was cancelled, moves past the step without a message.

Steps are taken last to first, so one run moves an entry by one step at most, and a step is never due within a day
of the step before (or within the journey's own gap, if shorter): an entrant who entered late, their order
imported days after it was placed, gets the steps a day apart, not all at once.

Running ``advance`` again at the same ``now`` adds nothing: entries are inserted only for customers without one
(checked again in the writing transaction), and an entry's step moves in the same transaction that writes its
send-log rows, after checking (rows locked) that it is still at that step, so a run that got there first makes this
one skip the step. SQLite's single writer serialises two runs at once; on PostgreSQL the primary keys of entries and
send log stop the slower of two runs that raced past those checks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, and_, bindparam, insert, select, update

from omnicrm.campaigns.audience import draw
from omnicrm.campaigns.definition import get_campaign
from omnicrm.campaigns.journeys import Journey, TriggerSpec, list_journeys, utc
from omnicrm.campaigns.launch import Marketing, address_scope, summary_of, write_recipients
from omnicrm.errors import InputError, Problem
from omnicrm.portrait.inputs import PortraitInputs
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import campaign_recipients, journey_entries, journeys
from omnicrm.store.state import utcnow

__all__ = ["AdvanceReport", "advance", "triggered"]

E = journey_entries.c
_CHUNK = 5_000  # ids per IN (...) list
_ENTRIES = pa.schema([("customer_id", pa.int64()), ("entered_at", pa.timestamp("us", tz="UTC"))])


@dataclass
class AdvanceReport:
    """What one run did to one journey: entered, exited, and per step index the draw's counts."""

    journey_id: int
    entered: int = 0
    exited: int = 0
    steps: dict[int, dict[str, Any]] = field(default_factory=dict)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"journey_id": self.journey_id, "entered": self.entered, "exited": self.exited,
                "steps": {str(k): v for k, v in self.steps.items()}, "note": self.note}  # fmt: skip


def _moment(at: dt.datetime) -> ir.TimestampScalar:
    return ibis.timestamp(at.isoformat())


def triggered(orders: ir.Table, trigger: TriggerSpec, since: dt.datetime, now: dt.datetime) -> ir.Table:
    """(customer_id, triggered_at): each customer's earliest order in (since, now] that fires ``trigger``.

    ``orders``: paid orders with customer_id, created_at, promotion_kind, channel and source. ``first_order`` fires
    on a customer's first paid order ever (any channel), when that order has the trigger's fields."""
    o = orders
    if trigger.type == "first_order":
        first = o.group_by("customer_id").aggregate(first_at=o.created_at.min())
        o = o.join(first, "customer_id")
        o = o.filter(o.created_at == o.first_at).drop("first_at")
    wanted = [o.created_at > _moment(since), o.created_at <= _moment(now)]
    for name, value in (("promotion_kind", trigger.promotion), ("channel", trigger.channel),
                        ("source", trigger.source)):  # fmt: skip
        if value is not None:
            wanted.append(o[name] == ibis.literal(value))
    o = o.filter(*wanted)
    return o.group_by("customer_id").aggregate(triggered_at=o.created_at.min())


class _Facts:
    """The paid orders as known at ``now`` (computed once in the engine for all journeys of a run) and OneID's
    redirects, so entries made before a merge follow their customer."""

    def __init__(self, system: Marketing, identity: Path, now: dt.datetime) -> None:
        self.engine = Engine(FactsStore(system.settings.facts_dir))
        self.identity = identity
        o = PortraitInputs.from_snapshot(self.engine, identity, now).orders()
        o = o.filter(o.paid > 0).select("customer_id", "created_at", "promotion_kind", "channel", "source")
        self.orders = self.engine.materialise(o, "journey_orders")
        moved = self.engine.parquet([identity / "redirects.parquet"], "identity_redirects")
        self.moved = moved.select(old_id=moved.old_id, merged_into=moved.customer_id)

    def table(self, rows: pa.Table, name: str) -> ir.Table:
        """Entries (customer_id, entered_at) with ``buyer``: their customer id now, after any merge."""
        t = self.engine.table_from_arrow(rows, name)
        j = t.left_join(self.moved, t.customer_id == self.moved.old_id)
        # a table of its own (``view``): it is joined again to the orders
        return j.select("customer_id", "entered_at", buyer=ibis.coalesce(j.merged_into, j.customer_id)).view()

    def ordered_since_entry(self, rows: pa.Table) -> set[int]:
        """The entries' customer ids (as stored) with a paid order after their ``entered_at``."""
        if not rows.num_rows:
            return set()
        t, o = self.table(rows, "journey_entries"), self.orders
        hit = t.join(o, [t.buyer == o.customer_id, o.created_at > t.entered_at]).select(t.customer_id).distinct()
        return {int(c) for c in self.engine.to_arrow(hit).column("customer_id").to_pylist()}

    def now_ids(self, rows: pa.Table) -> pa.Table:
        """(customer_id, entry_id): the entries' customer ids now, with the id they entered under."""
        t = self.table(rows, "journey_due")
        return self.engine.to_arrow(t.select(customer_id=t.buyer, entry_id=t.customer_id))


def _entries(conn: Connection, journey_id: int, *where: Any) -> pa.Table:
    rows = conn.execute(select(E.customer_id, E.entered_at).where(E.journey_id == journey_id, *where)).all()
    return pa.table({"customer_id": pa.array([int(r[0]) for r in rows], pa.int64()),
                     "entered_at": pa.array([utc(r[1]) for r in rows], _ENTRIES.field("entered_at").type)})  # fmt: skip


def _chunks(ids: Sequence[int]) -> list[list[int]]:
    return [list(ids[i : i + _CHUNK]) for i in range(0, len(ids), _CHUNK)]


def _next_at(entered: dt.datetime, days: list[int], step: int, now: dt.datetime) -> dt.datetime:
    """When step ``step`` (0-based) is due for an entry that entered at ``entered`` and, for a later step, took
    the one before at ``now``: on its day after entry, but never within a day of the step before (or within their
    gap, if the journey puts them closer), so a late entrant does not get two messages at once."""
    on_day = entered + dt.timedelta(days=days[step])
    if step == 0:
        return on_day
    return max(on_day, now + min(dt.timedelta(days=days[step] - days[step - 1]), dt.timedelta(days=1)))


def _enter(system: Marketing, facts: _Facts, journey: Journey, now: dt.datetime) -> int:
    """Enter the customers whose trigger fired since the journey went live; returns how many."""
    assert journey.started_at is not None
    trigger = TriggerSpec.model_validate(journey.trigger)
    with system.state.connect() as conn:
        known = _entries(conn, journey.id)
    fired = triggered(facts.orders, trigger, journey.started_at, now)
    entered = facts.table(known, "journey_known")
    ids = ibis.union(entered.select(customer_id=entered.customer_id), entered.select(customer_id=entered.buyer))
    new = facts.engine.to_arrow(fired.anti_join(ids, "customer_id").order_by("customer_id")).to_pylist()
    days = [s.after_days for s in journey.steps]
    with system.state.begin() as conn:
        taken: set[int] = set()
        for chunk in _chunks([int(r["customer_id"]) for r in new]):  # entered meanwhile by another run
            taken |= set(conn.execute(select(E.customer_id).where(E.journey_id == journey.id,
                                                                  E.customer_id.in_(chunk))).scalars())  # fmt: skip
        rows = [
            {"journey_id": journey.id, "customer_id": int(r["customer_id"]), "entered_at": r["triggered_at"],
             "step": 0, "next_at": _next_at(r["triggered_at"], days, 0, now), "status": "active"}
            for r in new if int(r["customer_id"]) not in taken
        ]  # fmt: skip
        if rows:
            conn.execute(insert(journey_entries), rows)
        conn.execute(update(journeys).where(journeys.c.id == journey.id, journeys.c.status == "live")
                     .values(evaluated_until=now))  # fmt: skip
    return len(rows)


def _exit(system: Marketing, facts: _Facts, journey: Journey, now: dt.datetime) -> int:
    """Take out the active entries that bought after entering (the ``purchase`` exit rule); returns how many."""
    if (journey.exit or {}).get("on") != "purchase":
        return 0
    with system.state.connect() as conn:
        active = _entries(conn, journey.id, E.status == "active")
    bought = sorted(facts.ordered_since_entry(active))
    done = 0
    with system.state.begin() as conn:
        for chunk in _chunks(bought):
            leaving = and_(E.journey_id == journey.id, E.status == "active", E.customer_id.in_(chunk))
            out = update(journey_entries).where(leaving)
            done += conn.execute(
                out.values(status="exited", exit_reason="purchase", ended_at=now, next_at=None)
            ).rowcount
    return done


def _step(system: Marketing, facts: _Facts, journey: Journey, k: int, now: dt.datetime) -> dict[str, Any] | None:
    """Queue step ``k`` for the entries it is due for; returns the draw's counts (None when nobody was due)."""
    step, days, last = journey.steps[k], [s.after_days for s in journey.steps], k == len(journey.steps) - 1
    with system.state.connect() as conn:
        due = _entries(conn, journey.id, E.status == "active", E.step == k, E.next_at <= now)
    if not due.num_rows:
        return None
    skipped = facts.ordered_since_entry(due) if step.condition == "no_order_since_entry" else set()
    campaign = get_campaign(system.state, step.campaign_id)
    keep = due.filter(pc.invert(pc.is_in(due["customer_id"], pa.array(sorted(skipped), pa.int64()))))
    drawn = pa.table({"customer_id": pa.array([], pa.int64())})
    if campaign.status == "sending" and keep.num_rows:
        members = facts.now_ids(keep).select(["customer_id"])
        drawn = draw(
            campaign, members=members, state=system.state, identity=facts.identity,
            portrait=system.derived.current("portrait"), now=now, global_share=system.settings.global_control_share,
            secret=system.settings.secret_key, address_scope=address_scope(system, campaign), per_person=True,
        )  # fmt: skip
    moves: list[dict[str, Any]] = [
        {"c": int(c), "step": k + 1, "next": None if last else _next_at(utc(at) or now, days, k + 1, now),
         "status": "completed" if last else "active", "ended": now if last else None}
        for c, at in zip(due["customer_id"].to_pylist(), due["entered_at"].to_pylist(), strict=True)
    ]  # fmt: skip
    with system.state.begin() as conn:
        at_step = and_(E.journey_id == journey.id, E.status == "active", E.step == k)
        still = set()
        for chunk in _chunks([int(m["c"]) for m in moves]):
            found = select(E.customer_id).where(at_step, E.customer_id.in_(chunk)).with_for_update()
            still |= {int(c) for c in conn.execute(found).scalars()}
        if len(still) != len(moves):
            return {"skipped_race": len(moves) - len(still)}  # another run moved them first; it wrote their rows
        if drawn.num_rows:
            drawn = _not_logged(conn, campaign.id, drawn)
            write_recipients(conn, campaign.id, drawn, now)
        conn.execute(
            update(journey_entries).where(at_step, E.customer_id == bindparam("c"))
            .values(step=bindparam("step"), next_at=bindparam("next"), status=bindparam("status"),
                    ended_at=bindparam("ended")),
            moves,
        )  # fmt: skip
    counts = summary_of(drawn) if "arm" in drawn.column_names else {"members": 0, "arms": {}, "excluded": {}}
    return {**counts, "due": len(moves), "condition_failed": len(skipped),
            "campaign_not_sending": 0 if campaign.status == "sending" else keep.num_rows}  # fmt: skip


def _not_logged(conn: Connection, campaign_id: int, drawn: pa.Table) -> pa.Table:
    """The drawn rows whose customer has no row in the campaign's send log yet."""
    r = campaign_recipients.c
    ids = drawn["customer_id"].to_pylist()
    logged: set[int] = set()
    for chunk in _chunks(ids):
        found = select(r.customer_id).where(r.campaign_id == campaign_id, r.customer_id.in_(chunk))
        logged |= {int(c) for c in conn.execute(found).scalars()}
    if not logged:
        return drawn
    return drawn.filter(pc.invert(pc.is_in(drawn["customer_id"], pa.array(sorted(logged), pa.int64()))))


def advance(system: Marketing, now: dt.datetime | None = None, *, journey_ids: Sequence[int] | None = None
            ) -> list[AdvanceReport]:  # fmt: skip
    """Advance every live journey (or only ``journey_ids``) to ``now`` (default: the current time): enter, exit,
    queue due steps. Safe to run again: nothing is entered or queued twice (see the module's docstring)."""
    if now is not None and now.tzinfo is None:
        raise InputError("now must carry a time zone", [Problem("naive datetime", field="now")])
    now = (now or utcnow()).astimezone(dt.UTC)
    live, _ = list_journeys(system.state, status="live", limit=None)
    if journey_ids is not None:
        live = [j for j in live if j.id in set(journey_ids)]
    if not live:
        return []
    identity = system.derived.current("identity")
    if identity is None:
        return [AdvanceReport(j.id, note="no identity snapshot yet: run `omnicrm refresh`") for j in live]
    facts = _Facts(system, identity, now)
    reports = []
    for journey in live:
        report = AdvanceReport(journey.id)
        report.entered = _enter(system, facts, journey, now)
        report.exited = _exit(system, facts, journey, now)
        for k in reversed(range(len(journey.steps))):  # last first: one step per entry per run
            done = _step(system, facts, journey, k, now)
            if done is not None:
                report.steps[k] = done
        reports.append(report)
    return reports
