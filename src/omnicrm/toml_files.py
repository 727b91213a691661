"""Shipped or merchant-written TOML files read into pydantic models, with every problem named by its field."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from omnicrm.errors import InputError, Problem

__all__ = ["validated_toml"]

M = TypeVar("M", bound=BaseModel)


def validated_toml(
    text: str, model: type[M], message: str, where: Callable[[dict[str, Any], tuple[Any, ...]], str] | None = None
) -> M:
    """``text`` (TOML) as ``model``; else InputError(``message``) listing each problem, its field named by ``where``
    (the parsed TOML and pydantic's location; default: the location joined by dots)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(message, [Problem(f"not valid TOML: {e}")]) from e
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        name = where or (lambda _, loc: ".".join(map(str, loc)))
        raise InputError(message, [Problem(err["msg"], field=name(raw, err["loc"])) for err in e.errors()]) from e
