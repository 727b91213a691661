"""Merchant-defined tags: rules over other tags, as JSON, compiled to Ibis with values as literals.

A condition is ``{"tag": "monetary", "op": ">=", "value": 1000}``, or ``{"all": [...]}``, ``{"any": [...]}``,
``{"not": {...}}``. A bool tag is ``{"when": condition}``; a category or number tag is
``{"cases": [{"when": condition, "then": "gold"}, ...], "else": "regular"}``. Every field, operator and value is
checked against the tag it names before anything runs; a refusal names the place in the rule
(``rule.cases[1].when.all[0].value``) and what is wrong. A comparison with an empty value is false.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ibis
import ibis.expr.types as ir

from omnicrm.errors import InputError, Problem

__all__ = ["OPERATORS", "ConditionCompiler", "combine", "compile_condition", "compile_rule", "rule_fields"]

_ORDERED = ("=", "!=", ">", ">=", "<", "<=", "between")
OPERATORS: dict[str, tuple[str, ...]] = {
    "number": (*_ORDERED, "in", "not_in", "is_null", "not_null"),
    "category": ("=", "!=", "in", "not_in", "is_null", "not_null"),
    "bool": ("is_true", "is_false", "=", "!="),
    "list": ("contains", "any_of", "all_of", "is_empty", "not_empty"),
}
_NO_VALUE = {"is_null", "not_null", "is_true", "is_false", "is_empty", "not_empty"}


def combine(group: str, parts: list[ir.BooleanValue]) -> ir.BooleanValue:
    """``all`` (AND) or ``any`` (OR) of compiled conditions."""
    out = parts[0]
    for part in parts[1:]:
        out = (out & part) if group == "all" else (out | part)
    return out


class ConditionCompiler:
    def __init__(self, table: ir.Table, types: Mapping[str, str]) -> None:
        self.table = table
        self.types = types
        self.problems: list[Problem] = []

    def fail(self, where: str, reason: str) -> ir.BooleanValue:
        self.problems.append(Problem(f"{where}: {reason}", field=where))
        return ibis.literal(False)

    def condition(self, node: Any, where: str) -> ir.BooleanValue:
        if not isinstance(node, Mapping):
            return self.fail(where, "a condition must be an object")
        for group in ("all", "any"):
            if group in node:
                parts = node[group]
                if not isinstance(parts, list) or not parts:
                    return self.fail(f"{where}.{group}", "must be a non-empty list of conditions")
                return combine(group, [self.condition(p, f"{where}.{group}[{i}]") for i, p in enumerate(parts)])
        if "not" in node:
            return ~self.condition(node["not"], f"{where}.not")
        return self.compare(node, where)

    def _value(self, value: Any, vtype: str, where: str) -> Any:
        if vtype == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
            self.fail(where, f"must be a number, not {value!r}")
            return None
        if vtype in ("category", "list") and not isinstance(value, str):
            self.fail(where, f"must be text, not {value!r}")
            return None
        if vtype == "bool" and not isinstance(value, bool):
            self.fail(where, f"must be true or false, not {value!r}")
            return None
        return value

    def compare(self, node: Mapping[str, Any], where: str) -> ir.BooleanValue:
        field, op = node.get("tag"), node.get("op")
        if not isinstance(field, str) or field not in self.types:
            known = ", ".join(sorted(self.types)[:12])
            return self.fail(f"{where}.tag", f"unknown tag {field!r} (known tags include: {known}, ...)")
        vtype = self.types[field]
        if op not in OPERATORS[vtype]:
            return self.fail(
                f"{where}.op",
                f"{op!r} does not apply to {vtype} tag '{field}'; use one of {', '.join(OPERATORS[vtype])}",
            )
        col = self.table[field]
        if op in _NO_VALUE:
            return _unary(col, op)
        if "value" not in node:
            return self.fail(f"{where}.value", f"operator {op!r} needs a value")
        raw = node["value"]
        item_type = "category" if vtype == "list" else vtype
        if op in ("in", "not_in", "any_of", "all_of", "between"):
            if not isinstance(raw, list) or not raw or (op == "between" and len(raw) != 2):
                need = "a list of two values" if op == "between" else "a non-empty list"
                return self.fail(f"{where}.value", f"operator {op!r} needs {need}")
            values = [self._value(v, item_type, f"{where}.value[{i}]") for i, v in enumerate(raw)]
            if any(v is None for v in values):
                return ibis.literal(False)
            lits = [ibis.literal(v) for v in values]
            if op == "between":
                return (col >= lits[0]) & (col <= lits[1])
            if op in ("in", "not_in"):
                hit = col.isin(lits)
                return hit if op == "in" else ~hit
            checks = [col.contains(v) for v in lits]
            out = checks[0]
            for c in checks[1:]:
                out = (out | c) if op == "any_of" else (out & c)
            return out
        value = self._value(raw, item_type, f"{where}.value")
        if value is None:
            return ibis.literal(False)
        lit = ibis.literal(value)
        if op == "contains":
            return col.contains(lit)
        return {"=": col == lit, "!=": col != lit, ">": col > lit, ">=": col >= lit, "<": col < lit, "<=": col <= lit}[
            op
        ]


def _unary(col: ir.Value, op: str) -> ir.BooleanValue:
    if op == "is_null":
        return col.isnull()
    if op == "not_null":
        return col.notnull()
    if op == "is_true":
        return col.fill_null(False)
    if op == "is_false":
        return ~col.fill_null(True)
    if op == "is_empty":
        return col.isnull() | (col.length() == 0)
    return col.notnull() & (col.length() > 0)


def compile_condition(node: Any, table: ir.Table, types: Mapping[str, str], where: str = "rule") -> ir.BooleanValue:
    """A condition as an Ibis boolean (null counts as false); InputError lists every problem found."""
    c = ConditionCompiler(table, types)
    out = c.condition(node, where)
    if c.problems:
        raise InputError("the rule does not compile", c.problems)
    return out.fill_null(False)


def compile_rule(
    rule: Any, value_type: str, table: ir.Table, types: Mapping[str, str], where: str = "rule"
) -> ir.Value:
    """A rule tag's value expression (see the module docstring for the shapes)."""
    c = ConditionCompiler(table, types)
    out: ir.Value
    if not isinstance(rule, Mapping):
        c.fail(where, "a rule must be an object")
        out = ibis.literal(False)
    elif value_type == "bool":
        if "when" not in rule:
            c.fail(where, 'a bool tag\'s rule is {"when": condition}')
        out = c.condition(rule.get("when"), f"{where}.when").fill_null(False)
    elif value_type in ("category", "number"):
        out = _cases(c, rule, value_type, where)
    else:
        c.fail(f"{where}", f"rule tags are bool, category or number, not {value_type}")
        out = ibis.literal(False)
    if c.problems:
        raise InputError("the rule does not compile", c.problems)
    return out


def _cases(c: ConditionCompiler, rule: Mapping[str, Any], value_type: str, where: str) -> ir.Value:
    cases = rule.get("cases")
    if not isinstance(cases, list) or not cases:
        c.fail(f"{where}.cases", 'needs a non-empty list of {"when": condition, "then": value}')
        return ibis.literal(None)
    branches = []
    for i, case in enumerate(cases):
        at = f"{where}.cases[{i}]"
        if not isinstance(case, Mapping) or "when" not in case or "then" not in case:
            c.fail(at, 'each case is {"when": condition, "then": value}')
            continue
        then = c._value(case["then"], value_type, f"{at}.then")
        branches.append((c.condition(case["when"], f"{at}.when").fill_null(False), ibis.literal(then)))
    default = rule.get("else")
    if default is not None:
        default = c._value(default, value_type, f"{where}.else")
    dtype = "float64" if value_type == "number" else "string"
    if not branches:
        return ibis.literal(None, type=dtype)
    return ibis.cases(*branches, else_=ibis.literal(default, type=dtype)).cast(dtype)


def rule_fields(node: Any) -> set[str]:
    """The tags a rule reads (for the explanation of a rule tag's value)."""
    found: set[str] = set()
    if isinstance(node, Mapping):
        if isinstance(node.get("tag"), str):
            found.add(node["tag"])
        for v in node.values():
            found |= rule_fields(v)
    elif isinstance(node, list):
        for v in node:
            found |= rule_fields(v)
    return found
