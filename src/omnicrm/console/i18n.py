"""The console's two languages: message catalogues shipped in the package, picked per request.

A user's choice is kept in a cookie; without one, the browser's Accept-Language decides (Chinese for any
``zh``, else English). A message missing from a catalogue falls back to English, then to its key, so a
page never breaks for a missing translation (a test checks the catalogues have the same keys).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["COOKIE", "LANGUAGES", "catalogue", "pick_language", "translator"]

LANGUAGES = {"zh-CN": "中文", "en": "English"}
COOKIE = "omnicrm_lang"


@cache
def catalogue(lang: str) -> dict[str, str]:
    text = resources.files("omnicrm.console").joinpath("locales", f"{lang}.json").read_text(encoding="utf-8")
    data: dict[str, str] = json.loads(text)
    return data


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return str(cookie)
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return "zh-CN"


def translator(lang: str) -> Callable[..., str]:
    """``t(key, **values)``: the message in ``lang`` with ``{name}`` placeholders filled."""
    own, english = catalogue(lang), catalogue("en")

    def t(key: str, **values: Any) -> str:
        text = own.get(key) or english.get(key) or key
        return text.format(**values) if values else text

    return t
