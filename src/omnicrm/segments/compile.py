"""Compile a segment rule to an Ibis query of member customer ids (values as literals, never pasted SQL).

Tag conditions read the portrait snapshot (one row per customer). Each behaviour condition becomes a count
per customer over the facts (orders, order lines or events) in its time window, left-joined to the portrait,
so "no order since 2026-11-11" is a count of 0 — customers with no facts at all count 0 too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir

from omnicrm.errors import InputError
from omnicrm.portrait.bases import days_since
from omnicrm.portrait.inputs import CHINA, PortraitInputs, json_text
from omnicrm.portrait.tags.rules import ConditionCompiler, combine
from omnicrm.segments.language import validate_shape

__all__ = ["SegmentQuery", "compile_segment"]

_LINE_FIELDS = {"category", "brand", "size", "colour"}
_EVENTS = {"view": "Product Viewed", "add_to_cart": "Product Added", "search": "Products Searched"}


@dataclass
class SegmentQuery:
    members: ir.Table  # customer_id
    behaviours: int  # how many behaviour counts the rule needed


def _local_midnight(day: str) -> ir.TimestampScalar:
    moment = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), CHINA).astimezone(dt.UTC)
    return ibis.timestamp(moment.isoformat())


def _window(t: ir.Table, at: ir.TimestampValue, node: Mapping[str, Any], now: dt.datetime) -> ir.Table:
    if node.get("within_days") is not None:
        t = t.filter(days_since(now, at) < int(node["within_days"]))
    if node.get("since") is not None:
        t = t.filter(at >= _local_midnight(node["since"]))
    if node.get("until") is not None:
        until = (dt.date.fromisoformat(node["until"]) + dt.timedelta(days=1)).isoformat()
        t = t.filter(at < _local_midnight(until))
    return t.filter(at <= ibis.timestamp(now.isoformat()))


def behaviour_counts(inputs: PortraitInputs, node: Mapping[str, Any], now: dt.datetime) -> ir.Table:
    """(customer_id, n): how many times each customer did what ``node`` describes."""
    did, where = node["did"], dict(node.get("where", {}))
    if did in _EVENTS:
        ev = inputs.events()
        t = ev.filter(ev.event == _EVENTS[did]).mutate(
            category=json_text(ev.properties, "category"),
            brand=json_text(ev.properties, "brand"),
            query=json_text(ev.properties, "query"),
        )
        for name, value in where.items():
            t = t.filter(t.query.contains(ibis.literal(value)) if name == "query" else t[name] == ibis.literal(value))
        t = _window(t, t.timestamp, node, now)
        return t.group_by("customer_id").aggregate(n=t.count())
    lines = did in ("purchase", "refund") and bool(_LINE_FIELDS & set(where))
    t = inputs.order_lines() if lines else inputs.orders()
    if lines:
        kept = t.paid_amount > t.refunded_amount.fill_null(0)
        t = t.filter(kept if did == "purchase" else t.refunded_amount.fill_null(0) > 0)
    elif did == "purchase":
        t = t.filter(t.net > 0)
    elif did == "refund":
        t = t.filter(t.refunded > 0)
    for name, value in where.items():
        column = "promotion_kind" if name == "promotion" else name
        t = t.filter(t[column] == ibis.literal(value))
    t = _window(t, t.created_at, node, now)
    orders = t.select("customer_id", "source", "order_id").distinct()
    return orders.group_by("customer_id").aggregate(n=orders.count())


class _Walker:
    def __init__(self, tags: ir.Table, types: Mapping[str, str]) -> None:
        self.compiler = ConditionCompiler(tags, types)
        self.behaviours: list[Mapping[str, Any]] = []

    def walk(self, node: Mapping[str, Any], where: str) -> ir.BooleanValue:
        for group in ("all", "any"):
            if group in node:
                return combine(group, [self.walk(p, f"{where}.{group}[{i}]") for i, p in enumerate(node[group])])
        if "not" in node:
            return ~self.walk(node["not"], f"{where}.not")
        if "did" in node:
            self.behaviours.append(node)
            n = self.compiler.table[f"_behaviour_{len(self.behaviours) - 1}"].fill_null(0)
            count = node.get("count", {"op": ">=", "value": 1})
            lit = ibis.literal(int(count["value"]))
            return {"=": n == lit, "!=": n != lit, ">": n > lit, ">=": n >= lit, "<": n < lit, "<=": n <= lit}[
                count["op"]
            ]
        return self.compiler.compare(node, where).fill_null(False)


def compile_segment(
    rule: Any,
    tags: ir.Table,
    types: Mapping[str, str],
    inputs: PortraitInputs | None,
    now: dt.datetime,
) -> SegmentQuery:
    """The members of ``rule`` among the customers of ``tags``; InputError lists every problem in the rule."""
    problems = validate_shape(rule)
    if problems:
        raise InputError("the segment rule is not valid", problems)
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
    walker = _Walker(frame, types)
    condition = walker.walk(rule, "rule")
    if walker.compiler.problems:
        raise InputError("the segment rule does not compile", walker.compiler.problems)
    return SegmentQuery(frame.filter(condition.fill_null(False)).select("customer_id"), len(probe.behaviours))


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
