"""The segment rule language: JSON trees, and a readable text form that parses to the same trees.

JSON::

    {"all": [...]} | {"any": [...]} | {"not": rule}
    {"tag": "p_alive", "op": ">", "value": 0.5}                       a tag of the portrait
    {"did": "purchase", "where": {"category": "连衣裙"}, "within_days": 90,
     "count": {"op": ">=", "value": 2}}                                  behaviour in a time window
    {"did": "order", "since": "2026-11-11", "count": {"op": "=", "value": 0}}
    {"consent": "wechat_oa", "purpose": "marketing"}                    may be sent on a channel now

Text (the same rules)::

    p_alive > 0.5 AND lifecycle_stage IN ("active", "new") AND interests CONTAINS "baking"
    bought category = "连衣裙" AT LEAST 2 TIMES IN LAST 90 DAYS AND NO order SINCE 2026-11-11

``did`` is one of ``BEHAVIOURS``; ``where`` narrows by the fields each behaviour has (``FILTERS``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from omnicrm.consent.subjects import CHANNELS, PURPOSES
from omnicrm.errors import InputError, Problem

__all__ = ["BEHAVIOURS", "FILTERS", "parse_text", "to_text", "validate_shape"]

# what a behaviour counts, and the fields its "where" may name
BEHAVIOURS = ("order", "purchase", "refund", "view", "search", "add_to_cart")
FILTERS: dict[str, tuple[str, ...]] = {
    "order": ("channel", "promotion", "source"),
    "purchase": ("category", "brand", "channel", "promotion", "source", "size", "colour"),
    "refund": ("category", "brand", "channel", "source"),
    "view": ("category", "brand", "source"),
    "search": ("query", "source"),
    "add_to_cart": ("category", "brand", "source"),
}
_VERB = {"order": "ordered", "purchase": "bought", "refund": "refunded", "view": "viewed", "search": "searched",
         "add_to_cart": "added"}  # fmt: skip
_VERBS = {v: k for k, v in _VERB.items()}
COUNT_OPS = ("=", "!=", ">", ">=", "<", "<=")


def _date(value: Any, where: str, problems: list[Problem]) -> None:
    if not isinstance(value, str):
        problems.append(Problem(f"{where}: a date is text YYYY-MM-DD, not {value!r}", field=where))
        return
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        problems.append(Problem(f"{where}: {value!r} is not a date (YYYY-MM-DD)", field=where))


def _behaviour(node: Mapping[str, Any], where: str, problems: list[Problem]) -> None:
    did = node["did"]
    if did not in BEHAVIOURS:
        problems.append(Problem(f"{where}.did: {did!r} is not one of {', '.join(BEHAVIOURS)}", field=f"{where}.did"))
        return
    unknown = set(node) - {"did", "where", "within_days", "since", "until", "count"}
    if unknown:
        problems.append(Problem(f"{where}: unknown key(s) {', '.join(sorted(unknown))}", field=where))
    filters = node.get("where", {})
    if not isinstance(filters, Mapping):
        problems.append(Problem(f"{where}.where: must be an object of field: value", field=f"{where}.where"))
        filters = {}
    for name, value in filters.items():
        if name not in FILTERS[did]:
            problems.append(
                Problem(
                    f"{where}.where.{name}: '{did}' has no field {name!r}; it has {', '.join(FILTERS[did])}",
                    field=f"{where}.where.{name}",
                )
            )
        elif not isinstance(value, str) or not value:
            problems.append(Problem(f"{where}.where.{name}: must be non-empty text", field=f"{where}.where.{name}"))
    days = node.get("within_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650):
        problems.append(Problem(f"{where}.within_days: a whole number of days 1..3650", field=f"{where}.within_days"))
    for key in ("since", "until"):
        if node.get(key) is not None:
            _date(node[key], f"{where}.{key}", problems)
    count = node.get("count", {"op": ">=", "value": 1})
    if not (
        isinstance(count, Mapping)
        and count.get("op") in COUNT_OPS
        and isinstance(count.get("value"), int)
        and not isinstance(count.get("value"), bool)
        and count["value"] >= 0
    ):
        problems.append(
            Problem(
                f'{where}.count: {{"op": one of {" ".join(COUNT_OPS)}, "value": a whole number ≥ 0}}',
                field=f"{where}.count",
            )
        )


def _consent(node: Mapping[str, Any], where: str, problems: list[Problem]) -> None:
    unknown = set(node) - {"consent", "purpose"}
    if unknown:
        problems.append(Problem(f"{where}: unknown key(s) {', '.join(sorted(unknown))}", field=where))
    for key, known, default in (("consent", CHANNELS, None), ("purpose", PURPOSES, "marketing")):
        value = node.get(key, default)
        if value not in known:
            reason = f"{where}.{key}: {value!r} is not one of {', '.join(known)}"
            problems.append(Problem(reason, field=f"{where}.{key}"))


def validate_shape(node: Any, where: str = "rule", problems: list[Problem] | None = None) -> list[Problem]:
    """Structural problems of a rule tree (tag names and value types are checked when it compiles)."""
    out = problems if problems is not None else []
    if not isinstance(node, Mapping):
        out.append(Problem(f"{where}: a rule is an object", field=where))
    elif "all" in node or "any" in node:
        group = "all" if "all" in node else "any"
        parts = node[group]
        if not isinstance(parts, list) or not parts:
            out.append(Problem(f"{where}.{group}: a non-empty list of rules", field=f"{where}.{group}"))
        else:
            for i, part in enumerate(parts):
                validate_shape(part, f"{where}.{group}[{i}]", out)
    elif "not" in node:
        validate_shape(node["not"], f"{where}.not", out)
    elif "did" in node:
        _behaviour(node, where, out)
    elif "consent" in node:
        _consent(node, where, out)
    elif "tag" not in node:
        out.append(Problem(f"{where}: expected all, any, not, tag, did or consent", field=where))
    return out


# ---- text form -------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<date>\d{4}-\d{2}-\d{2})(?![\w.])|(?P<num>-?\d+(?:\.\d+)?)(?![\w])"""
    r"""|(?P<op>>=|<=|!=|=|>|<)|(?P<punct>[(),])|(?P<word>[^\s"(),=<>!]+))"""
)
_KEYWORDS = {"and", "or", "not", "in", "contains", "is", "true", "false", "null", "empty", "at", "least", "most",
             "times", "time", "last", "days", "day", "since", "until", "no", "between", "consents", "to",
             "for"}  # fmt: skip


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise self.error(pos, f"cannot read {text[pos : pos + 12]!r}")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.i = 0

    def error(self, pos: int, reason: str) -> InputError:
        return InputError(f"segment text, at character {pos + 1}: {reason}", [Problem(reason, field="text")])

    def peek(self, word: str | None = None) -> bool:
        if self.i >= len(self.tokens):
            return False
        kind, value, _ = self.tokens[self.i]
        return word is None or (kind in ("word", "op", "punct") and value.lower() == word)

    def take(self, word: str | None = None) -> tuple[str, str, int]:
        if self.i >= len(self.tokens):
            raise self.error(len(self.text), f"expected {word or 'more'} at the end")
        tok = self.tokens[self.i]
        if word is not None and tok[1].lower() != word:
            raise self.error(tok[2], f"expected {word!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def value(self) -> Any:
        kind, text, pos = self.take()
        if kind == "str":
            return json.loads(text)
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "date":
            return text
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise self.error(pos, f'expected a value ("text", a number, true or false), found {text!r}')

    def expr(self) -> Any:
        parts = [self.conj()]
        while self.peek("or"):
            self.take()
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else {"any": parts}

    def conj(self) -> Any:
        parts = [self.unary()]
        while self.peek("and"):
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else {"all": parts}

    def unary(self) -> Any:
        if self.peek("not"):
            self.take()
            return {"not": self.unary()}
        if self.peek("("):
            self.take()
            inner = self.expr()
            self.take(")")
            return inner
        if self.peek("no"):
            self.take()
            node = self.behaviour(self.take()[1].lower(), negated=True)
            return node
        if self.peek("consents"):
            self.take()
            self.take("to")
            node = {"consent": self.take()[1].lower()}
            if self.peek("for"):
                self.take()
                node["purpose"] = self.take()[1].lower()
            return node
        kind, word, pos = self.take()
        if kind != "word" or word.lower() in _KEYWORDS:
            raise self.error(pos, f"expected a tag or a behaviour, found {word!r}")
        if word.lower() in _VERBS:
            return self.behaviour(word.lower())
        return self.condition(word)

    def condition(self, tag: str) -> Any:
        kind, op, pos = self.take()
        low = op.lower()
        if kind == "op":
            return {"tag": tag, "op": op, "value": self.value()}
        if low == "is":
            negate = self.peek("not") and bool(self.take())
            what = self.take()[1].lower()
            table = {"true": "is_true", "false": "is_false", "null": "is_null", "empty": "is_empty"}
            if what not in table:
                raise self.error(pos, f"IS takes TRUE, FALSE, NULL or EMPTY, not {what!r}")
            name = table[what]
            if negate:
                name = {"is_null": "not_null", "is_empty": "not_empty", "is_true": "is_false",
                        "is_false": "is_true"}[name]  # fmt: skip
            return {"tag": tag, "op": name}
        if low in ("in", "not_in") or (low == "not" and self.peek("in") and bool(self.take())):
            values = self.values()
            return {"tag": tag, "op": "in" if low == "in" else "not_in", "value": values}
        if low == "contains":
            if self.peek("any") or self.peek("all"):
                which = self.take()[1].lower()
                return {"tag": tag, "op": f"{which}_of", "value": self.values()}
            return {"tag": tag, "op": "contains", "value": self.value()}
        if low == "between":
            lo = self.value()
            self.take("and")
            return {"tag": tag, "op": "between", "value": [lo, self.value()]}
        raise self.error(pos, f"expected a comparison after {tag!r}, found {op!r}")

    def values(self) -> list[Any]:
        self.take("(")
        out = [self.value()]
        while self.peek(","):
            self.take()
            out.append(self.value())
        self.take(")")
        return out

    def behaviour(self, verb: str, negated: bool = False) -> Any:
        did = _VERBS.get(verb, verb if verb in BEHAVIOURS else None)
        if did is None:
            raise self.error(self.tokens[self.i - 1][2], f"expected a behaviour ({', '.join(_VERBS)}), found {verb!r}")
        node: dict[str, Any] = {"did": did}
        where: dict[str, Any] = {}
        while self.i < len(self.tokens) and self.tokens[self.i][0] == "word" and self.i + 1 < len(self.tokens) and \
                self.tokens[self.i + 1][1] == "=":  # fmt: skip
            field = self.take()[1]
            self.take("=")
            where[field] = self.value()
        if where:
            node["where"] = where
        count = {"op": "=", "value": 0} if negated else {"op": ">=", "value": 1}
        if self.peek("at"):
            self.take()
            bound = self.take()[1].lower()
            if bound not in ("least", "most"):
                raise self.error(self.tokens[self.i - 1][2], "AT LEAST n TIMES or AT MOST n TIMES")
            n = self.value()
            if not self.peek("times"):
                self.take("time")
            else:
                self.take()
            count = {"op": ">=" if bound == "least" else "<=", "value": n}
        while self.peek("in") or self.peek("since") or self.peek("until"):
            word = self.take()[1].lower()
            if word == "in":
                self.take("last")
                node["within_days"] = self.value()
                if not self.peek("day"):
                    self.take("days")
                else:
                    self.take()
            else:
                node[word] = self.value()
        node["count"] = count
        return node


def parse_text(text: str) -> Any:
    """The JSON rule a text rule means (InputError naming the character where it stops making sense)."""
    parser = _Parser(text)
    if not parser.tokens:
        raise InputError("segment text is empty", [Problem("empty", field="text")])
    rule = parser.expr()
    if parser.i != len(parser.tokens):
        _, word, pos = parser.tokens[parser.i]
        raise parser.error(pos, f"unexpected {word!r}")
    return rule


def _lit(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return value
        return json.dumps(value, ensure_ascii=False)
    return repr(value) if isinstance(value, float) else str(value)


def to_text(node: Any, top: bool = True) -> str:
    """The readable form of a JSON rule (``parse_text(to_text(r))`` gives ``r`` back)."""
    if "all" in node or "any" in node:
        group = "all" if "all" in node else "any"
        joined = f" {'AND' if group == 'all' else 'OR'} ".join(to_text(p, False) for p in node[group])
        return joined if top else f"({joined})"
    if "not" in node:
        return f"NOT {to_text(node['not'], False)}"
    if "consent" in node:
        purpose = f" FOR {node['purpose']}" if "purpose" in node else ""  # marketing when not said
        return f"CONSENTS TO {node['consent']}{purpose}"
    if "did" in node:
        count = node.get("count", {"op": ">=", "value": 1})
        where = " ".join(f"{k} = {_lit(v)}" for k, v in node.get("where", {}).items())
        head = f"NO {node['did']}" if count == {"op": "=", "value": 0} else _VERB[node["did"]]
        parts = [head] + ([where] if where else [])
        if count not in ({"op": ">=", "value": 1}, {"op": "=", "value": 0}):
            if count["op"] not in (">=", "<="):
                raise InputError("the text form writes counts as AT LEAST / AT MOST; use JSON for other counts")
            parts.append(f"AT {'LEAST' if count['op'] == '>=' else 'MOST'} {count['value']} TIMES")
        if node.get("within_days") is not None:
            parts.append(f"IN LAST {node['within_days']} DAYS")
        for key in ("since", "until"):
            if node.get(key) is not None:
                parts.append(f"{key.upper()} {node[key]}")
        return " ".join(parts)
    op, tag = node["op"], node["tag"]
    unary = {"is_true": "IS TRUE", "is_false": "IS FALSE", "is_null": "IS NULL", "not_null": "IS NOT NULL",
             "is_empty": "IS EMPTY", "not_empty": "IS NOT EMPTY"}  # fmt: skip
    if op in unary:
        return f"{tag} {unary[op]}"
    value = node["value"]
    if op in ("in", "not_in", "any_of", "all_of"):
        listed = "(" + ", ".join(_lit(v) for v in value) + ")"
        word = {"in": "IN", "not_in": "NOT IN", "any_of": "CONTAINS ANY", "all_of": "CONTAINS ALL"}[op]
        return f"{tag} {word} {listed}"
    if op == "between":
        return f"{tag} BETWEEN {_lit(value[0])} AND {_lit(value[1])}"
    if op == "contains":
        return f"{tag} CONTAINS {_lit(value)}"
    return f"{tag} {op} {_lit(value)}"
