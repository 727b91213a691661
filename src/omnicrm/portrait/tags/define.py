"""Small constructors the built-in catalogue is written with (so each tag reads as one declaration)."""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir

from omnicrm.portrait.tags.model import TagDefinition

__all__ = ["as_list", "or_default", "or_unknown", "tag"]


def tag(
    id: str, zh: str, en: str, category: str, value_type: str, inputs: tuple[str, ...], expr: Any, **kw: Any
) -> TagDefinition:
    return TagDefinition(id, zh, en, category, value_type, inputs, expr, **kw)  # type: ignore[arg-type]


def or_default(name: str, default: object) -> Any:
    """The basis column ``name``, ``default`` where the customer has none."""
    return lambda b, _: ibis.coalesce(b[name], ibis.literal(default))


def or_unknown(name: str) -> Any:
    return lambda b, _: ibis.coalesce(b[name].cast("string"), ibis.literal("unknown"))


def as_list(col: ir.Value) -> ir.Value:
    """A list column, empty (not null) where the customer has none."""
    return ibis.coalesce(col, ibis.literal([], type="array<string>"))
