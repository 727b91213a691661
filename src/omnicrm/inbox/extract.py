"""Attributes customers state about themselves in messages, by shipped rules (``data/attributes.toml``), each with
the span of the message it came from.

'宝宝4个月' / 'my 4-month-old baby' give a child's age band (and ``has_infant`` under three years), '我住在西湖区' /
'I live in Xihu district' a district and city (``data/districts.toml``), and there are rules for pregnancy,
cats and dogs, height and weight (for size advice) and birthdays. A rule finds nothing in a negated clause
(我没有养猫, I'm not pregnant) nor in a sentence that names someone else of the groups the rule lists
(我朋友的宝宝4个月, buying for my husband: 183 cm). Numbers may be Chinese numerals (孩子三岁了, 一米六五,
一百二十斤) or English words (my two-year-old).

Spans index the original text: normalising (NFKC, lower case, straight quotes) keeps one position per
character, so ``text[start:end]`` is what the customer wrote.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from omnicrm.errors import InputError, Problem
from omnicrm.toml_files import validated_toml

__all__ = ["AGE_BANDS", "KINDS", "Extracted", "Rules", "extract", "load_rules", "number", "parse_rules"]

KINDS = ("child_age", "pregnancy", "pet", "residence", "height", "weight", "birthday")
AGE_BANDS = ("0_1", "1_3", "3_6", "6_12", "12_18")
"""Child age bands in years: 0_1 is under one year, 1_3 one and two, ... 12_18 twelve to seventeen."""
_BAND_MONTHS = (12, 36, 72, 144, 216)
INFANT_MONTHS = 36
HEIGHT_CM = (120.0, 220.0)
WEIGHT_KG = (30.0, 200.0)

_DATA = files("omnicrm.inbox").joinpath("data")
_CJK = re.compile(r"[\u3400-\u9fff]")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "″": '"', "′": "'"})
_CLAUSE = re.compile(r"[,，。!！?？;；:：\n…~～]|\.(?=\s|$)")
_SENTENCE = re.compile(r"[。!！?？;；\n]|\.(?=\s|$)")
_WORD = re.compile(r"[a-z']+")
_ZH_DIGITS = dict(zip("零〇一二两三四五六七八九", (0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9), strict=True))
_EN_NUMBERS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
)  # fmt: skip
_MONTHS_EN = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
              "november", "december")  # fmt: skip
_NUM = r"(?:\d{1,3}|[零〇一二两三四五六七八九十百]{1,5})"
_NUM_EN = r"(?:\d{1,2}|twenty-(?:one|two|three|four)|" + "|".join(sorted(_EN_NUMBERS[1:], key=len, reverse=True)) + ")"
_MONTH_EN = r"(?:" + "|".join(sorted({*_MONTHS_EN, *(m[:3] for m in _MONTHS_EN), "sept"}, key=len, reverse=True)) + r")"
_NOT_A_PLACE_AFTER = r"(?![路街巷弄村镇桥店]|大道|广场|小区|花园|公园)"


@dataclass(frozen=True)
class Extracted:
    """One attribute value found in a message, with where it was found and by which rule."""

    tag: str
    value: bool | str | float | list[str]
    start: int
    end: int
    quote: str
    rule: str


@dataclass(frozen=True)
class _Rule:
    id: str
    kind: str
    pattern: re.Pattern[str]
    skip_if: tuple[str, ...]
    value: str | None
    months: int | None


@dataclass(frozen=True)
class _Place:
    city: str
    district: str | None


class Rules:
    """The compiled rules with the word lists they use."""

    def __init__(self, raw: _FileModel, places: dict[str, list[_Place]], place_pattern: str) -> None:
        self._exclude = _phrases(raw.exclude)
        self._not_people = _phrases(raw.not_people)
        self._neg_zh = tuple(raw.negators.zh)
        self._neg_en = frozenset(raw.negators.en)
        self._people = {group: _phrases(words) for group, words in raw.people.items()}
        self._animals = {w: pet for pet, words in raw.pets.items() for w in words}
        self._places = places
        self._city_aliases = {a for a, ps in places.items() if any(p.district is None for p in ps)}
        fill = {
            "{num}": _NUM,
            "{num_en}": _NUM_EN,
            "{month_en}": _MONTH_EN,
            "{place}": place_pattern,
            "{animal_zh}": _alternation([w for w in self._animals if _CJK.search(w)]),
            "{animal_en}": _alternation([w for w in self._animals if not _CJK.search(w)]),
        }
        self.rules: list[_Rule] = []
        for r in raw.rules:
            text = r.pattern
            for key, value in fill.items():
                text = text.replace(key, value)
            self.rules.append(_Rule(r.id, r.kind, re.compile(text), tuple(r.skip_if), r.value, r.months))

    def extract(self, text: str) -> list[Extracted]:
        """Every attribute found in ``text``, in order of position (a tag may be found more than once)."""
        norm, where = _normalise(text)
        if self._exclude is not None:
            norm = self._exclude.sub(lambda m: " " * len(m.group()), norm)
        out: list[Extracted] = []
        for rule in self.rules:
            for m in rule.pattern.finditer(norm):
                if self._negated(norm, m) or self._about_others(norm, m, rule.skip_if):
                    continue
                start, end = where[m.start()], where[m.end() - 1] + 1
                for tag, value in self._values(rule, m):
                    out.append(Extracted(tag, value, start, end, text[start:end], rule.id))
        return _distinct(out)

    def _negated(self, norm: str, m: re.Match[str]) -> bool:
        """A negator in the clause just before the match, or inside it before its value."""
        head = norm[max(0, m.start() - 30) : m.start()]
        cut = max((c.end() for c in _CLAUSE.finditer(head)), default=0)
        value_at = min((m.start(g) for g in m.groupdict() if m.group(g) is not None), default=m.end())
        before = head[cut:] + norm[m.start() : value_at]
        if any(n in before[-6:] for n in self._neg_zh):
            return True
        return any(w in self._neg_en for w in _WORD.findall(before)[-3:])

    def _about_others(self, norm: str, m: re.Match[str], groups: tuple[str, ...]) -> bool:
        """Whether the sentence of the match names someone of ``groups`` (outside the match itself)."""
        starts = [s.end() for s in _SENTENCE.finditer(norm, 0, m.start())]
        begin = starts[-1] if starts else 0
        stop = _SENTENCE.search(norm, m.end())
        sentence = (
            norm[begin : m.start()] + " " * (m.end() - m.start()) + norm[m.end() : stop.start() if stop else None]
        )
        if self._not_people is not None:
            sentence = self._not_people.sub(" ", sentence)
        return any((p := self._people.get(g)) is not None and p.search(sentence) for g in groups)

    def _values(self, rule: _Rule, m: re.Match[str]) -> list[tuple[str, Any]]:
        kind = rule.kind
        if kind == "child_age":
            months = rule.months if rule.months is not None else _age_months(_group(m, "n"), _group(m, "unit"))
            if months is None or months >= _BAND_MONTHS[-1]:
                return []
            band = next(b for b, top in zip(AGE_BANDS, _BAND_MONTHS, strict=True) if months < top)
            return [("child_age_band", band)] + ([("has_infant", True)] if months < INFANT_MONTHS else [])
        if kind == "pregnancy":
            return [("pregnancy", rule.value or "pregnant")]
        if kind == "pet":
            pet = self._animals.get(_group(m, "animal") or "")
            return [("pet", [pet])] if pet else []
        if kind == "residence":
            return self._residence(_group(m, "place") or "")
        if kind == "height":
            cm = _height_cm(m)
            return [("height_cm", cm)] if cm is not None and HEIGHT_CM[0] <= cm <= HEIGHT_CM[1] else []
        if kind == "weight":
            kg = _weight_kg(_group(m, "n"), _group(m, "unit"))
            return [("weight_kg", kg)] if kg is not None and WEIGHT_KG[0] <= kg <= WEIGHT_KG[1] else []
        day = _birthday(m)
        return [("stated_birthday", day)] if day else []

    def _residence(self, span: str) -> list[tuple[str, Any]]:
        """District and city of a place span ('杭州西湖区', 'chaoyang, beijing'); an ambiguous district alone is
        dropped, keeping the city when one is named."""
        found = [a for a in sorted(self._places, key=len, reverse=True) if _contains(span, a)]
        cities = {p.city for a in found if a in self._city_aliases for p in self._places[a] if p.district is None}
        districts = {p for a in found for p in self._places[a] if p.district is not None}
        if cities:
            districts = {p for p in districts if p.city in cities}
        out: list[tuple[str, Any]] = []
        if len(districts) == 1:
            (place,) = districts
            return [("district", f"{place.city}{place.district}"), ("home_city", place.city)]
        if len(cities) == 1:
            out.append(("home_city", next(iter(cities))))
        return out


def _distinct(found: list[Extracted]) -> list[Extracted]:
    """In order of position; where two rules found the same tag in overlapping spans, the longer span alone."""
    kept: list[Extracted] = []
    for e in sorted(found, key=lambda e: (e.start, e.start - e.end, e.tag)):
        if not any(k.tag == e.tag and k.start < e.end and e.start < k.end for k in kept):
            kept.append(e)
    return sorted(kept, key=lambda e: (e.start, e.tag))


def _contains(span: str, alias: str) -> bool:
    if _CJK.search(alias):
        return alias in span
    return re.search(rf"(?<![a-z]){re.escape(alias)}(?![a-z])", span) is not None


def _group(m: re.Match[str], name: str) -> str | None:
    """The first of the groups ``name``, ``name2``, ``name3`` ... that matched."""
    for key in (name, *(f"{name}{i}" for i in range(2, 6))):
        if key in m.re.groupindex and m.group(key) is not None:
            return m.group(key)
    return None


def _normalise(text: str) -> tuple[str, list[int]]:
    """NFKC, lower case and straight quotes, character by character, with the source index of each output one."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        norm = unicodedata.normalize("NFKC", ch).lower().translate(_QUOTES)
        out.append(norm)
        where.extend([i] * len(norm))
    return "".join(out), where


def _phrases(words: list[str]) -> re.Pattern[str] | None:
    return re.compile(_alternation(words)) if words else None


def _alternation(words: list[str]) -> str:
    parts = []
    for w in sorted(set(words), key=lambda x: (-len(x), x)):
        body = re.escape(w)
        parts.append(body if _CJK.search(w) else rf"(?<![a-z]){body}(?![a-z])")
    return "(?:" + "|".join(parts) + ")"


def number(text: str | None) -> float | None:
    """An Arabic, Chinese (十八, 一百零五, 两) or English-word (eighteen, twenty-four) number; None if it is none."""
    if not text:
        return None
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if text in _EN_NUMBERS:
        return float(_EN_NUMBERS.index(text))
    if text.startswith("twenty-") and text[7:] in _EN_NUMBERS:
        return 20.0 + _EN_NUMBERS.index(text[7:])
    return _chinese_number(text)


def _chinese_number(text: str) -> float | None:
    total, current = 0, 0
    for ch in text:
        if ch in _ZH_DIGITS:
            current = _ZH_DIGITS[ch]
        elif ch in ("十", "百"):
            unit = 10 if ch == "十" else 100
            total += (current or 1) * unit
            current = 0
        else:
            return None
    return float(total + current)


def _age_months(n: str | None, unit: str | None) -> int | None:
    value = number(n)
    if value is None:
        return None
    unit = unit or "岁"
    if unit.startswith(("个", "month")):
        months = value + (0.5 if unit == "个半月" else 0)
    elif unit.startswith(("周", "week")) and unit != "周岁":
        months = value / 4.345
    else:
        months = value * 12 + (6 if unit == "岁半" else 0)
    return int(months)


def _height_cm(m: re.Match[str]) -> float | None:
    if (cm := number(_group(m, "cm"))) is not None:
        return cm
    metres, frac = _group(m, "m"), _group(m, "frac")
    if metres is not None and frac is not None:  # 一米六五, 1米7
        digits = "".join(str(_ZH_DIGITS.get(ch, ch)) for ch in frac)
        return 100.0 + float(digits.ljust(2, "0"))
    if metres is not None and (value := number(metres)) is not None:  # 1.65m
        return round(value * 100, 1)
    if (feet := number(_group(m, "ft"))) is not None:
        inches = number(_group(m, "inch")) or 0.0
        return round((feet * 12 + inches) * 2.54, 1)
    return None


def _weight_kg(n: str | None, unit: str | None) -> float | None:
    value = number(n)
    if value is None:
        return None
    if unit is None:  # 体重110: people give 斤 above 100 and kilograms below 75; between, it cannot be told
        return value / 2 if value >= 100 else value if value <= 75 else None
    if unit == "斤":
        return value / 2
    if unit.startswith(("lb", "pound")):
        return round(value * 0.45359237, 1)
    return value


def _birthday(m: re.Match[str]) -> str | None:
    name = _group(m, "mon")
    month = float(next(i for i, x in enumerate(_MONTHS_EN, 1) if x.startswith(name[:3]))) if name else None
    month = month or number(_group(m, "m"))
    day, year = number(_group(m, "d")), number(_group(m, "y"))
    if month is None or day is None:
        return None
    try:
        dt.date(int(year or 2000), int(month), int(day))  # 2000: a leap year, so 02-29 is a birthday
    except ValueError:
        return None
    return f"{int(year):04d}-{int(month):02d}-{int(day):02d}" if year else f"{int(month):02d}-{int(day):02d}"


# --- loading ---------------------------------------------------------------------------------------------------


class _Negators(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zh: list[str] = Field(min_length=1)
    en: list[str] = Field(min_length=1)


class _RuleModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: str
    pattern: str = Field(min_length=1)
    skip_if: list[str] = Field(default_factory=list)
    value: str | None = None
    months: int | None = None


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    exclude: list[str] = Field(default_factory=list)
    not_people: list[str] = Field(default_factory=list)
    negators: _Negators
    people: dict[str, list[str]]
    pets: dict[str, list[str]]
    rules: list[_RuleModel] = Field(min_length=1)


class _DistrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=2)
    zh: list[str] = Field(default_factory=list)
    en: list[str] = Field(default_factory=list)


class _CityModel(_DistrictModel):
    districts: list[_DistrictModel] = Field(default_factory=list)


class _PlacesModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cities: list[_CityModel] = Field(min_length=1)


def _places(model: _PlacesModel) -> tuple[dict[str, list[_Place]], str]:
    """Alias -> places (a city alias names the city alone) and the {place} pattern."""
    places: dict[str, list[_Place]] = {}
    city_aliases: list[str] = []
    district_aliases: list[str] = []
    for c in model.cities:
        for alias in {c.name, *c.zh, *(e.lower() for e in c.en)}:
            places.setdefault(alias, []).append(_Place(c.name, None))
            city_aliases.append(alias)
        for d in c.districts:
            short = re.sub(r"(新区|区)$", "", d.name)
            english = [e.lower() for e in d.en]
            for alias in {d.name, short, *d.zh, *english, *(f"{e} district" for e in english)}:
                places.setdefault(alias, []).append(_Place(c.name, d.name))
                district_aliases.append(alias)
    city, district = _alternation(city_aliases), _alternation(district_aliases)
    pattern = rf"(?:(?:{city})[\s,，]*)?{district}(?:[\s,，]+{city})?{_NOT_A_PLACE_AFTER}|{city}{_NOT_A_PLACE_AFTER}"
    return places, pattern


def parse_rules(rules_text: str, districts_text: str, *, source: str = "<string>") -> Rules:
    """Parse and validate the rules and the districts (TOML); InputError lists every problem, naming rule and field."""
    message = f"attribute rules {source} are not valid"
    raw = validated_toml(rules_text, _FileModel, message)
    places = validated_toml(districts_text, _PlacesModel, message)
    problems: list[Problem] = []
    seen: set[str] = set()
    for r in raw.rules:
        where = f"rules.{r.id}"
        if r.id in seen:
            problems.append(Problem(f"duplicate rule id '{r.id}'", field=f"{where}.id"))
        seen.add(r.id)
        if r.kind not in KINDS:
            problems.append(Problem(f"unknown kind '{r.kind}' (kinds: {', '.join(KINDS)})", field=f"{where}.kind"))
        problems += [
            Problem(f"unknown people group '{g}' (groups: {', '.join(raw.people)})", field=f"{where}.skip_if")
            for g in r.skip_if
            if g not in raw.people
        ]
    if problems:
        raise InputError(message, problems)
    alias_places, place_pattern = _places(places)
    try:
        return Rules(raw, alias_places, place_pattern)
    except re.error as e:
        raise InputError(message, [Problem(f"a pattern does not compile: {e}", field="rules.pattern")]) from e


@cache
def load_rules() -> Rules:
    """The shipped rules and districts, loaded once and shared."""
    rules = _DATA.joinpath("attributes.toml").read_text(encoding="utf-8")
    districts = _DATA.joinpath("districts.toml").read_text(encoding="utf-8")
    return parse_rules(rules, districts, source="omnicrm/inbox/data/attributes.toml")


def extract(text: str) -> list[Extracted]:
    """The attributes the shipped rules find in ``text`` (see the module docstring)."""
    return load_rules().extract(text)
