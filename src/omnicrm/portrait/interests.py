"""Interests from Chinese and English texts (search queries, service chats, store-clerk notes) for the portrait.

A shipped taxonomy (``data/interests.toml``) lists interests with Chinese and English keywords. Texts are cut
with jieba (precise mode) on a private tokenizer that also knows the keywords, so the global jieba state is left
alone. Texts repeat a lot (search queries), so each *distinct* text is matched once in Python and the rows are
joined back and aggregated per customer in DuckDB: a million rows with a few thousand distinct texts take about
a second.

How a text is matched:

1. normalise: NFKC (full-width letters and digits become ASCII), lower case, ``n't`` becomes `` not``;
   the taxonomy's ``exclude`` phrases (咖啡色 is a colour, 面包服 a puffer jacket) are blanked out;
2. cut with jieba; at each token, the longest run of tokens that spells a keyword wins ("trail running");
   failing that, a Chinese keyword of two or more characters inside a longer word (跑步 in 跑步机), or an
   English plural (cats -> cat);
3. negation: a hit is dropped when the one to three tokens right before it spell a negator from ``NEGATORS``
   (不, 没有, 不喜欢, 讨厌, not, never, "not like" ...). "不喜欢跑步" is no running; "不跑步，喜欢瑜伽" is yoga.
   Nothing smarter: no scope over a clause, no double negation.

Hobbies from store-clerk notes are ``text_interests`` over the ``clerk_note`` rows: the caller filters.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from omnicrm.errors import InputError, Problem
from omnicrm.tokenizer import CJK, private_tokenizer
from omnicrm.toml_files import validated_toml

__all__ = [
    "DECAY_DAYS",
    "NEGATORS",
    "Group",
    "Interest",
    "Taxonomy",
    "keywords",
    "load_taxonomy",
    "parse_taxonomy",
    "text_interests",
]

DECAY_DAYS = 90.0
"""A text's weight in ``score`` is exp(-age_days / DECAY_DAYS): a mention 90 days old counts 0.37."""

NEGATORS = frozenset({
    "不", "没", "没有", "不是", "并不", "从不", "从来不", "不喜欢", "不爱", "不想", "不太喜欢", "讨厌", "不感兴趣",
    "not", "no", "never", "hate", "hates", "dislike", "dislikes", "not like", "not into", "not enjoy",
})  # fmt: skip
"""Token sequences that, right before a keyword, cancel that hit (English ``n't`` is read as ``not``)."""

_NUMBER = re.compile(r"^[\d.,:%+\-/零〇一二三四五六七八九十百千万亿两]+$")
_NOT = re.compile(r"n['’]t\b")
_SPACE = re.compile(r"\s+")

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_DATA = files("omnicrm.portrait").joinpath("data")


def _normalise(text: str) -> str:
    """NFKC, lower case, ``n't`` -> `` not``, one space for any run of whitespace."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACE.sub(" ", _NOT.sub(" not", text)).strip()


def _distinct(words: list[str]) -> tuple[str, ...]:
    """Normalised words, duplicates dropped, in their order."""
    return tuple(dict.fromkeys(map(_normalise, words)))


@dataclass(frozen=True)
class Group:
    """A parent group of interests (sport, family, ...)."""

    id: str
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class Interest:
    """One interest with its normalised keywords."""

    id: str
    name_zh: str
    name_en: str
    parent: str
    keywords_zh: tuple[str, ...]
    keywords_en: tuple[str, ...]


class Taxonomy:
    """Validated interests with a keyword index and a private jieba tokenizer, built on first use."""

    def __init__(self, groups: dict[str, Group], interests: tuple[Interest, ...], exclude: tuple[str, ...]) -> None:
        self.groups = groups
        self.interests = interests
        self.exclude = exclude
        self._by_id = {it.id: it for it in interests}
        index: dict[str, list[str]] = {}
        for it in interests:
            for kw in dict.fromkeys(it.keywords_zh + it.keywords_en):
                index.setdefault(kw, []).append(it.id)
        self._index = {kw: tuple(ids) for kw, ids in index.items()}
        longest_first = sorted(exclude, key=len, reverse=True)
        self._mask = re.compile("|".join(map(re.escape, longest_first))) if exclude else None
        self._tokenizer: Any = None  # a jieba.Tokenizer
        self._span = 1
        self._lock = threading.Lock()

    def interest(self, interest_id: str) -> Interest:
        """The interest with this id (KeyError if there is none)."""
        return self._by_id[interest_id]

    def _cutter(self) -> Any:
        """The jieba tokenizer, with the Chinese keywords and exclude phrases added as words (once, thread-safe)."""
        with self._lock:
            if self._tokenizer is None:
                tok = private_tokenizer([*self._index, *self.exclude])
                self._span = max(len(tok.lcut(kw)) for kw in self._index)
                self._tokenizer = tok
            return self._tokenizer

    def tokens(self, text: str) -> list[str]:
        """Normalised jieba tokens (precise mode), spaces kept as single " " tokens."""
        text = _normalise(text)
        return self._cutter().lcut(text) if text else []

    def match(self, text: str) -> dict[str, list[str]]:
        """Interest id -> sorted distinct keywords found in ``text`` (negated hits left out)."""
        text = _normalise(text)
        if self._mask is not None:
            text = self._mask.sub(" ", text)
        toks = self._cutter().lcut(text) if text.strip() else []
        found: dict[str, set[str]] = {}
        i, n = 0, len(toks)
        while i < n:
            hit = self._hit(toks, i)
            if hit is None:
                i += 1
                continue
            kw, end = hit
            if not _negated(toks, i):
                for interest_id in self._index[kw]:
                    found.setdefault(interest_id, set()).add(kw)
            i = end
        return {k: sorted(v) for k, v in sorted(found.items())}

    def _hit(self, toks: list[str], i: int) -> tuple[str, int] | None:
        """The keyword starting at token i and the token after it: longest run, then inside the token."""
        if toks[i] == " ":
            return None
        for j in range(min(len(toks), i + self._span), i, -1):
            if toks[j - 1] != " " and (cand := "".join(toks[i:j])) in self._index:
                return cand, j
        tok = toks[i]
        if CJK.search(tok):
            for size in range(len(tok) - 1, 1, -1):
                for start in range(len(tok) - size + 1):
                    if (sub := tok[start : start + size]) in self._index:
                        return sub, i + 1
        elif len(tok) > 3 and tok.endswith("s") and tok[:-1] in self._index:
            return tok[:-1], i + 1
        return None


def _negated(toks: list[str], i: int) -> bool:
    """Whether the one to three words right before token i spell a negator."""
    before = [t for t in toks[max(0, i - 6) : i] if t != " "][-3:]
    return any("".join(before[-k:]) in NEGATORS or " ".join(before[-k:]) in NEGATORS for k in range(1, len(before) + 1))


# --- loading and validating the taxonomy ----------------------------------------------------------


class _GroupModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)


class _InterestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    id: str
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    parent: str
    keywords_zh: list[str] = Field(default_factory=list)
    keywords_en: list[str] = Field(default_factory=list)


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    exclude: list[str] = Field(default_factory=list)
    groups: dict[str, _GroupModel]
    interests: list[_InterestModel] = Field(min_length=1)


def _where(raw: dict[str, Any], loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a field path that names the interest by id where it has one."""
    parts = [str(p) for p in loc]
    if len(loc) >= 2 and loc[0] == "interests" and isinstance(loc[1], int):
        entries = raw.get("interests")
        entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
        name = entry.get("id") if isinstance(entry, dict) else None
        parts[:2] = [f"interests.{name}" if isinstance(name, str) and name else f"interests[{loc[1]}]"]
    return ".".join(parts)


def _check(model: _FileModel) -> list[Problem]:
    """Cross-field problems: ids, duplicates, unknown parents, empty keywords."""
    problems: list[Problem] = []
    groups = sorted(model.groups)
    problems += [
        Problem(f"group id '{g}' must be ascii snake_case (a-z, 0-9, _)", field=f"groups.{g}")
        for g in groups
        if not _ID.match(g)
    ]
    seen: dict[str, int] = {}
    for i, it in enumerate(model.interests):
        where = f"interests.{it.id}" if it.id else f"interests[{i}]"
        if not _ID.match(it.id):
            problems.append(Problem(f"id '{it.id}' must be ascii snake_case (a-z, 0-9, _)", field=f"{where}.id"))
        if it.id in seen:
            reason = f"duplicate id '{it.id}': entries {seen[it.id]} and {i} (counting from 0) use it"
            problems.append(Problem(reason, field=f"{where}.id"))
        seen.setdefault(it.id, i)
        if it.parent not in model.groups:
            close = difflib.get_close_matches(it.parent, groups, n=1)
            hint = f" — did you mean '{close[0]}'?" if close else ""
            reason = f"interest '{it.id}' has unknown parent '{it.parent}'{hint} (groups: {', '.join(groups)})"
            problems.append(Problem(reason, field=f"{where}.parent"))
        for name, words in (("keywords_zh", it.keywords_zh), ("keywords_en", it.keywords_en)):
            if not words:
                reason = f"interest '{it.id}' has no {name}; list at least one word or phrase"
                problems.append(Problem(reason, field=f"{where}.{name}"))
            for k, word in enumerate(words):
                if not _normalise(word):
                    problems.append(Problem(f"keyword {k} of interest '{it.id}' is empty", field=f"{where}.{name}"))
    problems += [Problem(f"entry {k} is empty", field="exclude") for k, w in enumerate(model.exclude) if not w.strip()]
    return problems


def parse_taxonomy(text: str, *, source: str = "<string>") -> Taxonomy:
    """Parse and validate a taxonomy in TOML; InputError lists every problem, each naming interest and field."""
    message = f"interest taxonomy {source} is not valid"
    model = validated_toml(text, _FileModel, message, _where)
    problems = _check(model)
    if problems:
        raise InputError(message, problems)
    groups = {g: Group(g, m.name_zh, m.name_en) for g, m in model.groups.items()}
    interests = tuple(
        Interest(it.id, it.name_zh, it.name_en, it.parent, _distinct(it.keywords_zh), _distinct(it.keywords_en))
        for it in model.interests
    )
    return Taxonomy(groups, interests, _distinct(model.exclude))


@cache
def _shipped() -> Taxonomy:
    text = _DATA.joinpath("interests.toml").read_text(encoding="utf-8")
    return parse_taxonomy(text, source="omnicrm/portrait/data/interests.toml")


@cache
def _stopwords() -> frozenset[str]:
    lines = _DATA.joinpath("stopwords.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(w for line in lines if not line.startswith("#") for w in line.split())


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """The taxonomy in ``path``, or the shipped one (loaded once and shared) when no path is given."""
    if path is None:
        return _shipped()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read interest taxonomy {path}", [Problem(str(e), field="path")]) from e
    return parse_taxonomy(text, source=str(path))


def keywords(text: str, taxonomy: Taxonomy | None = None) -> list[str]:
    """jieba tokens of ``text`` (precise mode, Latin lower-cased) without stopwords, punctuation and numbers."""
    toks, stop = (taxonomy or load_taxonomy()).tokens(text), _stopwords()
    return [t for t in toks if t != " " and any(ch.isalnum() for ch in t) and not _NUMBER.match(t) and t not in stop]


# --- interests per customer ---------------------------------------------------------------------------

_WORDS = pa.list_(pa.string())
_MATCHES = pa.schema([("idx", pa.int32()), ("interest_id", pa.string()), ("keywords", _WORDS)])
_INPUT = {"customer_id": "an integer", "text": "a string", "channel": "a string", "at": "a timestamp"}

_AGGREGATE = """
WITH r AS (
    SELECT customer_id, idx, channel, count(*) AS n, sum(exp(($as_of - at_us) / -86400e6 / $decay)) AS w,
           max(at_us) AS last_us
    FROM hits_in
    WHERE customer_id IS NOT NULL AND at_us <= $as_of AND idx IN (SELECT idx FROM matches)
    GROUP BY customer_id, idx, channel
)
SELECT r.customer_id, m.interest_id, sum(r.n)::BIGINT AS hits, sum(r.w) AS score,
       list_sort(list_distinct(flatten(list(m.keywords)))) AS keywords,
       list_sort(list_distinct(list(r.channel))) AS channels, max(r.last_us) AS last_us
FROM r JOIN matches m USING (idx)
GROUP BY r.customer_id, m.interest_id
ORDER BY r.customer_id, m.interest_id
"""


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_text(t.value_type)
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _at_type(texts: pa.Table) -> pa.TimestampType:
    """Check the input columns (all problems at once) and return the type of ``at``."""
    checks = {"customer_id": pa.types.is_integer, "text": _is_text, "channel": _is_text, "at": pa.types.is_timestamp}
    problems: list[Problem] = []
    for name, kind in _INPUT.items():
        if name not in texts.schema.names:
            have = ", ".join(texts.schema.names) or "no columns"
            problems.append(Problem(f"missing column '{name}' ({kind}); the table has: {have}", field=name))
        elif not checks[name](typ := texts.schema.field(name).type):
            problems.append(Problem(f"column '{name}' must be {kind}, not {typ}", field=name))
    if problems:
        raise InputError("texts cannot be read for interests", problems)
    at_type: pa.TimestampType = texts.schema.field("at").type
    return at_type


def _schema(at_type: pa.DataType) -> pa.Schema:
    """The output columns; ``last_at`` has the type of the input's ``at``."""
    names = ["customer_id", "interest_id", "hits", "score", "keywords", "channels", "last_at"]
    types = [pa.int64(), pa.string(), pa.int64(), pa.float64(), _WORDS, _WORDS, at_type]
    return pa.schema(zip(names, types, strict=True))


def text_interests(texts: pa.Table, taxonomy: Taxonomy | None = None, *, as_of: dt.datetime | None = None) -> pa.Table:
    """Interests per customer from texts: one row per (customer_id, interest_id), ordered by both.

    ``texts`` has ``customer_id`` (integer), ``text``, ``channel`` (strings) and ``at`` (timestamp). ``hits`` counts
    the texts that mention the interest (a query searched three times counts three), ``score`` sums
    exp(-age_days / DECAY_DAYS) with ages taken at ``as_of`` (default: the latest ``at`` in the input; rows after
    ``as_of`` are left out, so a portrait can be computed as of a past day), ``keywords`` and ``channels`` are the
    distinct matched keywords and channels, sorted, and ``last_at`` is the latest mention. Rows with a null or
    empty text, customer id or time are ignored. Naive timestamps are compared with ``as_of`` as they are.
    """
    tax = taxonomy or load_taxonomy()
    at_type = _at_type(texts)
    schema = _schema(at_type)
    text = texts["text"]
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        text = text.cast(pa.large_string())
    distinct = pc.unique(text).drop_null()
    found = [
        {"idx": i, "interest_id": interest_id, "keywords": kws}
        for i, value in enumerate(distinct.to_pylist())
        for interest_id, kws in tax.match(value).items()
    ]
    at_us = pc.cast(pc.cast(texts["at"], pa.timestamp("us", at_type.tz), safe=False), pa.int64())
    top = pc.max(at_us).as_py() if as_of is None else pa.scalar(as_of, pa.timestamp("us", at_type.tz)).value
    if not found or top is None:
        return schema.empty_table()
    matches = pa.Table.from_pylist(found, schema=_MATCHES)
    hits_in = pa.table(
        {
            "customer_id": pc.cast(texts["customer_id"], pa.int64()),
            "idx": pc.index_in(text, value_set=distinct),
            "channel": pc.cast(texts["channel"], pa.string()),
            "at_us": at_us,
        }
    )
    con = duckdb.connect()
    try:
        con.register("hits_in", hits_in)
        con.register("matches", matches)
        out = con.sql(_AGGREGATE, params={"as_of": top, "decay": DECAY_DAYS}).to_arrow_table()
    finally:
        con.close()
    last_at = pc.cast(pc.cast(out["last_us"], pa.timestamp("us", at_type.tz)), at_type)
    columns = [out[name] for name in schema.names[:-1]] + [last_at]
    return pa.Table.from_arrays(columns, names=schema.names).cast(schema)
