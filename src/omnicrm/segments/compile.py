"""Compile a segment rule to an Ibis query of member customer ids (values as literals, never pasted SQL).

Tag conditions read the portrait snapshot (one row per customer), only the tags the rule names. Each behaviour
condition becomes a count per customer over the facts (orders, order lines or events) in its time window,
left-joined to the portrait, so "no order since 2026-11-11" is a count of 0 — customers with no facts at all
count 0 too.

Behaviour over orders reads the portrait's own order lines and orders (``PortraitInputs``: the latest version of
each line, refunds after the moment not yet made), built only from the order lines near the window and of the
orders that may count (see "order lines near a window" below), so that a count reads a few days of facts rather
than all of them; where comparing versions cannot change the answer, it is not done.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import ibis
import ibis.expr.types as ir

from omnicrm.errors import InputError
from omnicrm.identity.extract import record_key
from omnicrm.portrait.inputs import CHINA, PortraitInputs, json_text, order_channel, promotion_kind
from omnicrm.portrait.tags.rules import ConditionCompiler, combine, rule_fields
from omnicrm.segments.language import validate_shape
from omnicrm.store.engine import Engine
from omnicrm.store.facts import TIME_COLUMN

__all__ = ["SegmentQuery", "behaviours", "compile_segment"]

_LINE_FIELDS = {"category", "brand", "size", "colour"}
_EVENTS = {"view": "Product Viewed", "add_to_cart": "Product Added", "search": "Products Searched"}
_SLACK = dt.timedelta(days=1)  # how far apart an order's lines (and their re-exports) may be created
_COMPARE = {"=": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge, "<": operator.lt,
            "<=": operator.le}  # fmt: skip


@dataclass
class SegmentQuery:
    members: ir.Table  # customer_id
    behaviours: int  # how many behaviour counts the rule needed


def _local_midnight(day: dt.date) -> dt.datetime:
    """The first moment (UTC) of a calendar day in China time."""
    return dt.datetime.combine(day, dt.time(), CHINA).astimezone(dt.UTC)


def _bounds(node: Mapping[str, Any], now: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The behaviour's window [start, end) as moments (None: open), on calendar days in China time.

    "In the last n days" counts today as the first of them: a moment is in it when its calendar day is at most
    n - 1 days before today's, i.e. from the midnight that began that day."""
    starts = []
    if node.get("within_days") is not None:
        today = now.astimezone(CHINA).date()
        starts.append(_local_midnight(today - dt.timedelta(days=int(node["within_days"]) - 1)))
    if node.get("since") is not None:
        starts.append(_local_midnight(dt.date.fromisoformat(node["since"])))
    end = None
    if node.get("until") is not None:
        end = _local_midnight(dt.date.fromisoformat(node["until"]) + dt.timedelta(days=1))
    return (max(starts) if starts else None), end


def _moment(at: dt.datetime) -> ir.TimestampScalar:
    return ibis.timestamp(at.isoformat())


def _in_window(at: ir.TimestampValue, node: Mapping[str, Any], now: dt.datetime) -> ir.BooleanValue:
    """Whether ``at`` is in the behaviour's window and not after ``now``: plain comparisons of the timestamp, so
    that the Parquet reader skips row groups outside the window."""
    start, end = _bounds(node, now)
    out = at <= _moment(now)
    if start is not None:
        out &= at >= _moment(start)
    if end is not None:
        out &= at < _moment(end)
    return out


def _window(t: ir.Table, at: ir.TimestampValue, node: Mapping[str, Any], now: dt.datetime) -> ir.Table:
    return t.filter(_in_window(at, node, now))


# ---- order lines near a window ------------------------------------------------------------------------------
#
# An order's time is its first line's, and each line counts in its latest version (a re-export supersedes an
# earlier row of the same line); both need every version of every line of the order. An order's lines and their
# re-exports carry created times within a day of each other (an order is created once; a re-export repeats its
# time), so the lines created within a day of a window hold all of them for every order in the window, and an
# order outside the window cannot move into it. Facts are kept in a folder per day of that time (UTC), so the
# files of other days are not even opened.


class _WithLines:
    """The engine, reading ``lines`` as its order-line facts (so that ``PortraitInputs`` builds on them)."""

    def __init__(self, engine: Engine, lines: ir.Table) -> None:
        self._engine, self._lines = engine, lines

    def fact_table(self, kind: str, files: Iterable[Path] | None = None) -> ir.Table:
        if kind == "order_line" and files is None:
            return self._lines
        return self._engine.fact_table(kind, files)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def _with_lines(inputs: PortraitInputs, lines: ir.Table) -> PortraitInputs:
    out = PortraitInputs(cast(Engine, _WithLines(inputs.engine, lines)), inputs.records, inputs.as_of)
    if "events" in inputs._cache:
        out._cache["events"] = inputs._cache["events"]
    return out


def _near_lines(engine: Engine, node: Mapping[str, Any], now: dt.datetime) -> ir.Table:
    """The order-line facts created within a day of the behaviour's window (and at most a day after ``now``)."""
    start, end = _bounds(node, now)
    end = min(end, now) if end is not None else now
    first = (start - _SLACK).date() if start is not None else None
    last = (end + _SLACK).date()
    kind = "order_line"
    t = engine.fact_table(kind, [f for f in engine.facts.files(kind) if _on_days(f, first, last)])
    at = t[TIME_COLUMN[kind]]
    if start is not None:
        t = t.filter(at >= _moment(start - _SLACK))
    return t.filter(at < _moment(end + _SLACK))


def _on_days(path: Path, first: dt.date | None, last: dt.date) -> bool:
    """Whether a facts file (in its ``date=YYYY-MM-DD`` folder) may hold times from ``first`` to ``last`` (UTC)."""
    try:
        day = dt.date.fromisoformat(path.parent.name.removeprefix("date="))
    except ValueError:
        return True
    return (first is None or day >= first) and day <= last


def _line_conditions(t: ir.Table, did: str, where: Mapping[str, Any]) -> list[ir.BooleanValue]:
    """Conditions that at least one row (some version of some line) of every order that counts meets: each line
    field, and each order field (an order's channel and promotion are the greatest of its lines')."""
    out = []
    for name, value in where.items():
        if name == "channel":
            out.append(order_channel("order_line", t) == ibis.literal(value))
        elif name == "promotion":
            online = order_channel("order_line", t) != "store"
            out.append(promotion_kind(t.promotion, t.created_at, online) == ibis.literal(value))
        else:
            out.append(t[name] == ibis.literal(value))
    if did == "refund":  # refunded money, now or later
        out.append(t.refunded_amount > 0)
    return out


def _cached(inputs: PortraitInputs) -> bool:
    """Whether the order lines are already there (given, computed or shared): then they are read as they are."""
    given = set(inputs._cache) | set(inputs._computed)
    return bool({"order_lines", "orders"} & given) or "order_line" in inputs._facts


def _narrowed(inputs: PortraitInputs, node: Mapping[str, Any], now: dt.datetime) -> PortraitInputs:
    """``inputs`` reading only the lines, near the window, of the orders that may count for ``node``.

    A line counted (a purchase or refund of a category, brand, size or colour) is itself in the window and meets
    every condition. An order counted has, for each condition, a line in force that meets it, created no earlier
    than the order and within a day of it: so, in its window or up to a day after."""
    near = _near_lines(inputs.engine, node, now)
    did, where = node["did"], node.get("where", {})
    conditions = _line_conditions(near, did, where)
    if not conditions:
        return _with_lines(inputs, near)
    columns = ["source", "order_id"]
    if did in ("purchase", "refund") and _LINE_FIELDS & set(where):  # every version of those lines
        columns.append("line_no")
        keys = near.filter(_in_window(near.created_at, node, now), *conditions).select(columns).distinct()
    else:
        start, end = _bounds(node, now)
        reach = [near.created_at >= _moment(start)] if start is not None else []
        reach += [near.created_at < _moment(end + _SLACK)] if end is not None else []
        found = [near.filter(*reach, c).select(columns).distinct() for c in conditions]
        keys = found[0]
        for more in found[1:]:
            keys = keys.semi_join(more, columns)
    return _with_lines(inputs, near.semi_join(keys, columns))


def _ordered(inputs: PortraitInputs, node: Mapping[str, Any], now: dt.datetime) -> ir.Table:
    """(customer_id, n): how many orders each customer placed in the window with the ``where`` fields.

    Versions need not be compared for most orders: an order counts when every row of it (every version of every
    line) is in the window and has the fields asked for, and does not when, for some condition, no row meets it.
    Only the orders in between (across a window's edge, lines of several channels or promotions) go through the
    latest versions, with the shop's orders from events."""
    near = _near_lines(inputs.engine, node, now)
    near = near.filter(near.created_at <= inputs.cutoff)
    checks = [_in_window(near.created_at, node, now), *_line_conditions(near, "order", node.get("where", {}))]
    per = near.group_by(["source", "order_id"]).aggregate(
        rows=near.count(), **{f"met_{i}": near.count(where=c) for i, c in enumerate(checks)}
    )
    met = [per[f"met_{i}"] for i in range(len(checks))]
    every = combine("all", [m == per.rows for m in met])
    some = combine("all", [m > 0 for m in met])
    sure = per.filter(every).select("source", "order_id")
    sure = sure.mutate(record_key=record_key("order_line", sure)).join(inputs.records, "record_key")
    unsure = per.filter(some & ~every).select("source", "order_id")
    # the lines of those read again (a second reading of the files costs less than keeping the first one)
    again = _near_lines(inputs.engine, node, now)
    t = _with_lines(inputs, again.semi_join(unsure, ["source", "order_id"])).orders()
    t = _window(t, t.created_at, node, now)
    for name, value in node.get("where", {}).items():
        t = t.filter(t["promotion_kind" if name == "promotion" else name] == ibis.literal(value))
    columns = ["customer_id", "source", "order_id"]
    sure, slow = sure.select(columns), t.select(columns).distinct()
    # an order in both (the shop's events may repeat an imported order) counts once
    both = sure.semi_join(slow, columns)
    one = ibis.literal(1, "int64")
    counted = ibis.union(sure.mutate(n=one), slow.mutate(n=one), both.mutate(n=-one))
    return counted.group_by("customer_id").aggregate(n=counted.n.sum())


def behaviour_counts(inputs: PortraitInputs, node: Mapping[str, Any], now: dt.datetime) -> ir.Table:
    """(customer_id, n): how many times each customer did what ``node`` describes."""
    did, where = node["did"], dict(node.get("where", {}))
    if did in _EVENTS:
        ev = inputs.events()
        t = ev.filter(ev.event == _EVENTS[did])
        t = _window(t, t.timestamp, node, now)
        t = t.mutate(
            category=json_text(t.properties, "category"),
            brand=json_text(t.properties, "brand"),
            query=json_text(t.properties, "query"),
        )
        for name, value in where.items():
            t = t.filter(t.query.contains(ibis.literal(value)) if name == "query" else t[name] == ibis.literal(value))
        return t.group_by("customer_id").aggregate(n=t.count())
    if did == "order" and not _cached(inputs):
        return _ordered(inputs, node, now)
    if not _cached(inputs):
        inputs = _narrowed(inputs, node, now)
    lines = did in ("purchase", "refund") and bool(_LINE_FIELDS & set(where))
    t = inputs.order_lines() if lines else inputs.orders()
    t = _window(t, t.created_at, node, now)
    for name, value in where.items():
        column = "promotion_kind" if name == "promotion" else name
        t = t.filter(t[column] == ibis.literal(value))
    if lines:
        kept = t.paid_amount > t.refunded_amount.fill_null(0)
        t = t.filter(kept if did == "purchase" else t.refunded_amount.fill_null(0) > 0)
    elif did == "purchase":
        t = t.filter(t.net > 0)
    elif did == "refund":
        t = t.filter(t.refunded > 0)
    orders = t.select("customer_id", "source", "order_id").distinct()
    return orders.group_by("customer_id").aggregate(n=orders.count())


class _Walker:
    """The condition of a rule over the frame of tags and behaviour counts.

    A comparison with an empty value is false. Where a condition is not under a NOT, an empty (null) result already
    acts as false: AND and OR are monotone, and the filter keeps only true rows. So only conditions under a NOT
    turn null into false, and the others stay plain comparisons, which the database can push into the scan of
    the tags (and a behaviour count that must be at least 1 turns the join of the counts into an inner one)."""

    def __init__(self, tags: ir.Table, types: Mapping[str, str]) -> None:
        self.compiler = ConditionCompiler(tags, types)
        self.behaviours: list[Mapping[str, Any]] = []
        self.consents: list[tuple[str, str]] = []

    def walk(self, node: Mapping[str, Any], where: str, negated: bool = False) -> ir.BooleanValue:
        for group in ("all", "any"):
            if group in node:
                parts = [self.walk(p, f"{where}.{group}[{i}]", negated) for i, p in enumerate(node[group])]
                return combine(group, parts)
        if "not" in node:
            return ~self.walk(node["not"], f"{where}.not", not negated)
        if "did" in node:
            self.behaviours.append(node)
            n = self.compiler.table[f"_behaviour_{len(self.behaviours) - 1}"]
            count = node.get("count", {"op": ">=", "value": 1})
            op, value = count["op"], int(count["value"])
            none_counts = {"=": value == 0, "!=": value != 0, ">": False, ">=": value == 0, "<": value > 0, "<=": True}
            if negated or none_counts[op]:  # customers without any such fact count 0
                n = n.fill_null(0)
            return _COMPARE[op](n, ibis.literal(value))
        if "consent" in node:
            pair = (node["consent"], node.get("purpose", "marketing"))
            if pair not in self.consents:
                self.consents.append(pair)
            return self.compiler.table[f"_consent_{self.consents.index(pair)}"].notnull()  # never empty
        known = len(self.compiler.problems)
        condition = self.compiler.compare(node, where)
        if not negated:
            return condition
        if node.get("op") == "=" and len(self.compiler.problems) == known:
            # the same as an empty value counting as false, in a form the database pushes into the scan
            return self.compiler.table[node["tag"]].identical_to(ibis.literal(node["value"]))
        return condition.fill_null(False)


def compile_segment(
    rule: Any,
    tags: ir.Table,
    types: Mapping[str, str],
    inputs: PortraitInputs | None,
    now: dt.datetime,
    consented: Callable[[str, str], ir.Table] | None = None,
) -> SegmentQuery:
    """The members of ``rule`` among the customers of ``tags``; InputError lists every problem in the rule.

    ``consented(channel, purpose)`` gives the customers who may be sent ``purpose`` on ``channel`` now (one
    ``customer_id`` column), for CONSENTS TO conditions."""
    problems = validate_shape(rule)
    if problems:
        raise InputError("the segment rule is not valid", problems)
    # only the tags the rule names (a narrow frame compiles faster); unknown names are reported by the walker
    named = rule_fields(rule)
    tags = tags.select("customer_id", *(c for c in tags.columns if c in named and c != "customer_id"))
    # behaviour counts are joined first, so that conditions can name them as columns
    probe = _Walker(tags, types)
    _collect(rule, probe.behaviours)
    if probe.behaviours and inputs is None:
        raise InputError("behaviour conditions need the facts; this context has only tags")
    frame = tags
    for i, node in enumerate(probe.behaviours):
        assert inputs is not None
        counts = behaviour_counts(inputs, node, now).rename({f"_behaviour_{i}": "n"})
        frame = frame.left_join(counts, "customer_id").drop("customer_id_right")
    for i, (channel, purpose) in enumerate(_consents(rule)):
        if consented is None:
            raise InputError("consent conditions need the consent ledger; this context has none")
        who = consented(channel, purpose).select("customer_id").distinct().mutate(**{f"_consent_{i}": True})
        frame = frame.left_join(who, "customer_id").drop("customer_id_right")
    walker = _Walker(frame, types)
    condition = walker.walk(rule, "rule")
    if walker.compiler.problems:
        raise InputError("the segment rule does not compile", walker.compiler.problems)
    return SegmentQuery(frame.filter(condition).select("customer_id"), len(probe.behaviours))


def behaviours(rule: Any) -> list[Mapping[str, Any]]:
    """The behaviour conditions of a rule (a rule without any needs only the tags)."""
    found: list[Mapping[str, Any]] = []
    _collect(rule, found)
    return found


def _consents(node: Any) -> list[tuple[str, str]]:
    """(channel, purpose) of the consent leaves, each once, in the order ``_Walker.walk`` meets them."""
    out: list[tuple[str, str]] = []

    def visit(n: Any) -> None:
        if not isinstance(n, Mapping):
            return
        for group in ("all", "any"):
            for part in n.get(group, []):
                visit(part)
        if "not" in n:
            visit(n["not"])
        if "consent" in n:
            pair = (n["consent"], n.get("purpose", "marketing"))
            if pair not in out:
                out.append(pair)

    visit(node)
    return out


def _collect(node: Any, out: list[Mapping[str, Any]]) -> None:
    """Behaviour leaves in the order ``_Walker.walk`` meets them."""
    if not isinstance(node, Mapping):
        return
    for group in ("all", "any"):
        if group in node:
            for part in node[group]:
                _collect(part, out)
            return
    if "not" in node:
        _collect(node["not"], out)
    elif "did" in node:
        out.append(node)
