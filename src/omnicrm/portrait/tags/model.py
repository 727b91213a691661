"""What a tag is: a declared definition (names, category, value type, the expression that computes it and
the basis columns that explain it), for built-in, merchant-defined (rule) and manual tags alike."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import pyarrow as pa

__all__ = [
    "CATEGORIES",
    "VALUE_TYPES",
    "Params",
    "TagDefinition",
    "arrow_type",
    "cast_value",
]

ValueType = Literal["bool", "category", "number", "list"]
VALUE_TYPES: tuple[str, ...] = ("bool", "category", "number", "list")
Origin = Literal["builtin", "rule", "manual"]
Refresh = Literal["every_refresh", "daily", "weekly", "manual"]
CATEGORIES: dict[str, tuple[str, str]] = {
    "attribute": ("属性", "Attributes"),
    "rfm": ("RFM", "RFM"),
    "lifecycle": ("生命周期", "Lifecycle"),
    "preference": ("偏好", "Preferences"),
    "promotion": ("促销行为", "Promotion behaviour"),
    "channel": ("渠道偏好", "Channel preference"),
    "need": ("近期需求", "Recent needs"),
    "interest": ("兴趣", "Interests"),
    "service": ("服务", "Service"),
    "value": ("价值预测", "Predicted value"),
    "custom": ("自定义", "Merchant-defined"),
}
_ID = re.compile(r"^[a-z][a-z0-9_]{1,62}$")


@dataclass(frozen=True)
class Params:
    """Values derived from the whole merchant before tags are computed (e.g. lifecycle thresholds)."""

    as_of: dt.datetime
    lifecycle_days: tuple[int, int, int]  # active ≤ a < cooling ≤ b < dormant ≤ c < churned
    lifecycle_basis: str  # how the thresholds were found, for the explanation
    extra: Mapping[str, Any] = field(default_factory=dict)


Expr = Callable[[ir.Table, Params], ir.Value]


@dataclass(frozen=True)
class TagDefinition:
    id: str
    name_zh: str
    name_en: str
    category: str
    value_type: ValueType
    inputs: tuple[str, ...]
    expr: Expr | None = None
    description_zh: str = ""
    description_en: str = ""
    values: tuple[str, ...] = ()  # the possible values of a category tag, in display order
    refresh: Refresh = "every_refresh"
    origin: Origin = "builtin"
    rule: Mapping[str, Any] | None = None  # merchant-defined tags: the rule they were compiled from

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"tag id {self.id!r}: use 2-63 lower-case letters, digits and _ starting with a letter")
        if self.value_type not in VALUE_TYPES:
            raise ValueError(f"tag {self.id}: value type {self.value_type!r} is not one of {', '.join(VALUE_TYPES)}")
        if self.category not in CATEGORIES:
            raise ValueError(f"tag {self.id}: category {self.category!r} is not one of {', '.join(CATEGORIES)}")

    def describe(self) -> dict[str, Any]:
        """The definition as data (for the catalogue file, the API and the console)."""
        return {
            "id": self.id,
            "name": {"zh": self.name_zh, "en": self.name_en},
            "description": {"zh": self.description_zh, "en": self.description_en},
            "category": self.category,
            "value_type": self.value_type,
            "values": list(self.values),
            "inputs": list(self.inputs),
            "refresh": self.refresh,
            "origin": self.origin,
            **({"rule": self.rule} if self.rule is not None else {}),
        }


def arrow_type(value_type: str) -> pa.DataType:
    return {"bool": pa.bool_(), "category": pa.string(), "number": pa.float64(), "list": pa.list_(pa.string())}[
        value_type
    ]


def cast_value(value: ir.Value, value_type: str) -> ir.Value:
    """The tag's value in its storage type (so every engine writes the same Parquet schema)."""
    if value_type == "bool":
        return value.cast("boolean")
    if value_type == "category":
        return value.cast("string")
    if value_type == "number":
        return value.cast("float64")
    return value.cast("array<string>")


def when_null(value: ir.Value, default: Any) -> ir.Value:
    return ibis.coalesce(value, ibis.literal(default))
