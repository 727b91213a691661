"""The shipped lexicon of customers' messages: negators, intensifiers, complaint, praise, sarcasm and waiting
words, and words of each intent (``data/lexicon.toml``), with the tokenizer the classifier reads.

Text is normalised (NFKC, lower case, curly quotes straightened, English ``n't`` read as `` not``) and cut with
jieba (precise mode) on a private tokenizer that also knows the lexicon's Chinese phrases, so the global jieba
state is left alone. A phrase is found where it stands in the text, the longest first; an English phrase only
on word boundaries. A hit is negated by a negator just before it in its clause (不满意, not happy, no
complaints) or, in Chinese, by 都没有 / 也不 just after it (一点色差都没有).

``baseline`` is the lexicon alone deciding complaint and intent: the yardstick the classifier is measured
against in ``benchmarks/complaints.py``.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from omnicrm.errors import InputError, Problem
from omnicrm.tokenizer import CJK, private_tokenizer
from omnicrm.toml_files import validated_toml

__all__ = [
    "CATEGORIES",
    "INTENTS",
    "Hit",
    "Lexicon",
    "baseline",
    "load_lexicon",
    "normalise",
    "parse_lexicon",
]

INTENTS: tuple[str, ...] = (
    "complaint",
    "refund_return",
    "logistics",
    "product_question",
    "size_advice",
    "price_promotion",
    "praise",
    "other",
)
"""What a customer's message is mainly about; ``complaint`` is a grievance with no more specific request."""

CATEGORIES: tuple[str, ...] = ("complaint", "praise", "sarcasm", "waiting")
"""Lexicon lists that are not intents of their own (besides ``intensifiers`` and the negators)."""


_SPACE = re.compile(r"\s+")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "＂": '"'})
_CONTRACTIONS = ((re.compile(r"\bcan['’]t\b"), "can not"), (re.compile(r"\bwon['’]t\b"), "will not"))
_NOT = re.compile(r"n['’]t\b")
_CLAUSE = re.compile(r"[,，。.!！?？;；:：\n…~～]")
_ENGLISH_WORD = re.compile(r"[a-z0-9']+")
# 不 in these words does not negate what follows (不过 = but, 不到 = less than)
_NOT_NEGATING = re.compile(r"不过|不但|不仅|不得不|不管|不到|不久|不少|不停|不断|不同")
_RHETORICAL = ("不是", "难道")
_DATA = files("omnicrm.inbox").joinpath("data")


def normalise(text: str) -> str:
    """NFKC, lower case, straight quotes, ``can't``/``won't``/``n't`` -> `` not``, one space for any whitespace."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_QUOTES)
    for pattern, plain in _CONTRACTIONS:
        text = pattern.sub(plain, text)
    return _SPACE.sub(" ", _NOT.sub(" not", text)).strip()


@dataclass(frozen=True)
class Hit:
    """One lexicon phrase found in a normalised text."""

    category: str  # complaint, praise, sarcasm, waiting or an intent
    phrase: str
    start: int
    end: int
    negated: bool
    intensified: bool


def _alternation(phrases: list[str]) -> re.Pattern[str] | None:
    """One regex for a list: longest first, English phrases only between word boundaries."""
    if not phrases:
        return None
    parts = []
    for p in sorted(set(phrases), key=lambda w: (-len(w), w)):
        body = re.escape(p)
        parts.append(body if CJK.search(p) else rf"(?<![a-z0-9]){body}(?![a-z0-9])")
    return re.compile("|".join(parts))


class Lexicon:
    """The validated word lists with one compiled pattern per list and a private jieba tokenizer."""

    def __init__(self, lists: dict[str, list[str]], negators_zh: list[str], negators_en: list[str],
                 post_negators_zh: list[str], intensifiers: list[str]) -> None:  # fmt: skip
        self.lists = {k: tuple(dict.fromkeys(normalise(w) for w in v)) for k, v in lists.items()}
        self._patterns = {k: _alternation(list(v)) for k, v in self.lists.items()}
        self._neg_zh = tuple(sorted({normalise(w) for w in negators_zh}, key=len, reverse=True))
        self._neg_en = frozenset(normalise(w) for w in negators_en)
        self._post_zh = tuple(normalise(w) for w in post_negators_zh)
        self._intense_zh = tuple(w for w in map(normalise, intensifiers) if CJK.search(w))
        self._intense_en = frozenset(w for w in map(normalise, intensifiers) if not CJK.search(w))
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @property
    def negators(self) -> frozenset[str]:
        """Chinese and English negators (as tokens), for negation marks on the classifier's tokens."""
        return frozenset(self._neg_zh) | self._neg_en

    def _cutter(self) -> Any:
        """The jieba tokenizer with the lexicon's Chinese phrases added as words (built once, thread-safe)."""
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = private_tokenizer(w for words in self.lists.values() for w in words)
            return self._tokenizer

    def tokens(self, normalised: str) -> list[str]:
        """jieba tokens (precise mode) of an already normalised text, without spaces."""
        if not normalised:
            return []
        return [t for t in self._cutter().lcut(normalised) if not t.isspace()]

    def hits(self, normalised: str) -> list[Hit]:
        """Every lexicon phrase in an already normalised text, in order, with negation and intensity."""
        out: list[Hit] = []
        for category, pattern in self._patterns.items():
            if pattern is None:
                continue
            for m in pattern.finditer(normalised):
                prefix = _clause_before(normalised, m.start())
                zh = bool(CJK.search(m.group()))
                negated = self._negated_zh(prefix, normalised, m.end()) if zh else self._negated_en(prefix)
                out.append(Hit(category, m.group(), m.start(), m.end(), negated, self._intensified(prefix, zh)))
        return sorted(out, key=lambda h: (h.start, h.category))

    def _negated_zh(self, prefix: str, text: str, end: int) -> bool:
        near = _NOT_NEGATING.sub("", prefix)[-4:]
        after = text[end : end + 4]
        if any(after.startswith(p) for p in self._post_zh):
            return True
        if any(r in prefix for r in _RHETORICAL) and _clause_after(text, end).endswith(("吗", "嘛")):
            return False  # 这不是虚假宣传吗: a question that asserts
        return any(n in near for n in self._neg_zh)

    def _negated_en(self, prefix: str) -> bool:
        return any(w in self._neg_en for w in _ENGLISH_WORD.findall(prefix)[-3:])

    def _intensified(self, prefix: str, zh: bool) -> bool:
        if zh:
            return any(w in prefix[-3:] for w in self._intense_zh)
        return any(w in self._intense_en for w in _ENGLISH_WORD.findall(prefix)[-2:])


def _clause_after(text: str, end: int) -> str:
    """The rest of the clause after ``end``, without trailing spaces."""
    m = _CLAUSE.search(text, end)
    return text[end : m.start() if m else len(text)].rstrip()


def _clause_before(text: str, start: int) -> str:
    """The text of the clause up to ``start`` (back to the last comma, full stop, question mark ...)."""
    head = text[max(0, start - 40) : start]
    cut = max((m.end() for m in _CLAUSE.finditer(head)), default=0)
    return head[cut:]


# --- loading -----------------------------------------------------------------------------------------


class _LexiconModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    negators_zh: list[str] = Field(min_length=1)
    negators_en: list[str] = Field(min_length=1)
    post_negators_zh: list[str] = Field(default_factory=list)
    intensifiers: list[str] = Field(default_factory=list)
    complaint: list[str] = Field(min_length=1)
    praise: list[str] = Field(min_length=1)
    sarcasm: list[str] = Field(default_factory=list)
    waiting: list[str] = Field(default_factory=list)
    intents: dict[str, list[str]]


def parse_lexicon(text: str, *, source: str = "<string>") -> Lexicon:
    """Parse and validate a lexicon in TOML; InputError lists every problem, naming the list."""
    message = f"lexicon {source} is not valid"
    model = validated_toml(text, _LexiconModel, message)
    problems = [
        Problem(
            f"'{k}' is not an intent with its own words (use one of {', '.join(INTENTS[1:-2])}, other)", f"intents.{k}"
        )
        for k in model.intents
        if k not in INTENTS or k in ("complaint", "praise")
    ]
    lists = {"complaint": model.complaint, "praise": model.praise, "sarcasm": model.sarcasm, "waiting": model.waiting}
    lists |= model.intents
    problems += [
        Problem(f"entry {i} is empty", field=name)
        for name, words in lists.items()
        for i, w in enumerate(words)
        if not w.strip()
    ]
    if problems:
        raise InputError(message, problems)
    return Lexicon(lists, model.negators_zh, model.negators_en, model.post_negators_zh, model.intensifiers)


@cache
def load_lexicon() -> Lexicon:
    """The shipped lexicon, loaded once and shared."""
    text = _DATA.joinpath("lexicon.toml").read_text(encoding="utf-8")
    return parse_lexicon(text, source="omnicrm/inbox/data/lexicon.toml")


# --- the lexicon-only baseline ---------------------------------------------------------------------------


def baseline(text: str, lexicon: Lexicon | None = None) -> tuple[bool, str]:
    """Complaint and intent by the lexicon alone.

    Complaint: more complaint evidence (complaint words not negated, negated praise, sarcasm beside praise) than
    none. Intent: complaint when it is one and no other intent word is found, else the intent with the most
    words (ties in the order of ``INTENTS``), praise when only praise words are found, else other.
    """
    lex = lexicon or load_lexicon()
    found = lex.hits(normalise(text))
    count = Counter((h.category, h.negated) for h in found)
    praise = count["praise", False]
    complaint = count["complaint", False] + count["praise", True] + (count["sarcasm", False] if praise else 0) >= 1
    intents = {i: count[i, False] + count[i, True] for i in INTENTS if i not in ("complaint", "praise", "other")}
    best = max(intents, key=lambda i: (intents[i], -INTENTS.index(i)))
    if intents[best] > 0:
        return complaint, best
    if complaint:
        return True, "complaint"
    return False, "praise" if praise else "other"
