"""The console's two languages: message catalogues shipped in the package, picked per request.

A user's choice is kept in a cookie; without one, the browser's Accept-Language decides (Chinese for any
``zh``, else English). Each language's messages are JSON files in ``locales/<lang>/``, one per console area
(``console.json`` for the shared pages, ``campaigns.json`` ...); a key defined in two files is an error. A message
missing from a catalogue falls back to English, then to its key, so a page never breaks for a missing translation
(a test checks the catalogues have the same keys).
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
    folder = resources.files("omnicrm.console").joinpath("locales", lang)
    data: dict[str, str] = {}
    for part in sorted((f for f in folder.iterdir() if f.name.endswith(".json")), key=lambda f: f.name):
        messages: dict[str, str] = json.loads(part.read_text(encoding="utf-8"))
        twice = sorted(set(messages) & set(data))
        if twice:
            raise ValueError(f"console messages {lang}/{part.name}: {', '.join(twice[:5])} defined in another file too")
        data.update(messages)
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
