"""Business hours: a weekly calendar in a time zone with holidays and make-up working days, and exact arithmetic on
it — business time elapsed between two moments, and the moment a span of business time ends — vectorised over many
rows with numpy.

A calendar lists, per weekday, the hours it is open (``09:00-12:00`` and ``13:30-18:00``, say); ``exceptions`` give
the hours of particular dates instead: ``[]`` for a public holiday, hours for a weekend day worked in exchange (调休).
Times are the calendar's wall-clock times, so a daylight-saving change moves them in UTC as it should.

The arithmetic lays the open intervals out as UTC microseconds over the range needed, with the cumulative business
time at the start of each; the business time from the origin to a moment ``t`` is then one binary search
(``F(t)``), elapsed time is ``F(end) - F(start)``, and the moment a span ends is the inverse search on the cumulative
sums. Microseconds are integers, so every figure is exact.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from omnicrm.errors import InputError, Problem

__all__ = ["ALWAYS", "WEEKDAYS", "Calendar", "from_micros", "parse_calendar", "to_micros"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
_US = 1_000_000
_DAY_US = 86_400 * _US
_MAX_DAYS = 3_700  # ten years: a span that does not end within them means the calendar is (nearly) never open

Span = tuple[int, int]  # minutes from midnight, start < end
Micros = npt.NDArray[np.int64]


def to_micros(values: Sequence[datetime]) -> Micros:
    """Aware datetimes as UTC microseconds since the epoch."""
    return np.array([_us(v) for v in values], dtype=np.int64)


def _us(value: datetime) -> int:
    delta = value.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


def from_micros(value: int) -> datetime:
    """UTC microseconds since the epoch as an aware datetime."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(value))


@dataclass(frozen=True)
class Calendar:
    """Open hours per weekday (0 = Monday) and per exceptional date, in ``timezone``; ``None`` hours: always open."""

    name: str
    timezone: str = "UTC"
    week: tuple[tuple[Span, ...], ...] | None = None
    exceptions: Mapping[date, tuple[Span, ...]] = field(default_factory=dict)

    @property
    def always_open(self) -> bool:
        return self.week is None

    def as_dict(self) -> dict[str, Any]:
        def clock(m: int) -> str:
            return f"{m // 60:02d}:{m % 60:02d}"

        if self.week is None:
            return {"name": self.name, "timezone": self.timezone, "hours": None, "exceptions": {}}
        return {
            "name": self.name,
            "timezone": self.timezone,
            "hours": {WEEKDAYS[d]: [[clock(a), clock(b)] for a, b in spans] for d, spans in enumerate(self.week)},
            "exceptions": {
                d.isoformat(): [[clock(a), clock(b)] for a, b in spans] for d, spans in sorted(self.exceptions.items())
            },
        }

    def spans_of(self, day: date) -> tuple[Span, ...]:
        """The open hours of one local date."""
        assert self.week is not None
        found = self.exceptions.get(day)
        return found if found is not None else self.week[day.weekday()]

    def intervals(self, start_us: int, end_us: int) -> tuple[Micros, Micros]:
        """Open intervals (UTC microseconds, sorted, disjoint) covering every local date from a day before
        ``start_us`` to a day after ``end_us``."""
        assert self.week is not None
        zone = ZoneInfo(self.timezone)
        first = from_micros(start_us).astimezone(zone).date() - timedelta(days=1)
        last = from_micros(end_us).astimezone(zone).date() + timedelta(days=1)
        starts: list[int] = []
        ends: list[int] = []
        day = first
        while day <= last:
            for a, b in self.spans_of(day):
                starts.append(_us(_local(day, a, zone)))
                ends.append(_us(_local(day, b, zone)))
            day += timedelta(days=1)
        return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)

    def elapsed(self, starts: Micros, ends: Micros) -> Micros:
        """Business microseconds from each start to its end (0 where the end is not after the start)."""
        starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
        if starts.size == 0:
            return np.zeros(0, dtype=np.int64)
        if self.week is None:
            return np.maximum(ends - starts, 0)
        opens, closes = self.intervals(int(min(starts.min(), ends.min())), int(max(starts.max(), ends.max())))
        cum = _cumulative(opens, closes)
        return np.maximum(_business_at(ends, opens, closes, cum) - _business_at(starts, opens, closes, cum), 0)

    def add(self, starts: Micros, spans: Micros) -> Micros:
        """The moment each span of business microseconds ends, counted from its start (a span of 0 ends at the
        start, even outside business hours)."""
        starts, spans = np.asarray(starts, dtype=np.int64), np.asarray(spans, dtype=np.int64)
        if starts.size == 0:
            return np.zeros(0, dtype=np.int64)
        if self.week is None:
            return starts + spans
        lo, days = int(starts.min()), 14
        while True:
            hi = int(starts.max()) + days * _DAY_US
            opens, closes = self.intervals(lo, hi)
            cum = _cumulative(opens, closes)
            total = cum[-1] + (closes[-1] - opens[-1]) if opens.size else 0
            target = _business_at(starts, opens, closes, cum) + spans
            if opens.size and int(target.max()) <= int(total):
                break
            if days > _MAX_DAYS:
                raise InputError(
                    f"business-hours calendar {self.name!r} has no open hours for ten years",
                    [Problem("give it open hours", "hours")],
                )
            days *= 4
        ends_cum = cum + (closes - opens)
        index = np.searchsorted(ends_cum, target, side="left")
        due = opens[index] + (target - cum[index])
        return np.where(spans <= 0, starts, due)

    def elapsed_one(self, start: datetime, end: datetime) -> float:
        """Business seconds between two moments."""
        return int(self.elapsed(to_micros([start]), to_micros([end]))[0]) / _US

    def add_one(self, start: datetime, seconds: float) -> datetime:
        """The moment ``seconds`` of business time after ``start`` have passed."""
        return from_micros(int(self.add(to_micros([start]), np.array([round(seconds * _US)], dtype=np.int64))[0]))


ALWAYS = Calendar("always")


def _local(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    if minutes == 1440:
        return datetime.combine(day + timedelta(days=1), time(0), zone)
    return datetime.combine(day, time(minutes // 60, minutes % 60), zone)


def _cumulative(opens: Micros, closes: Micros) -> Micros:
    """Business microseconds before each interval starts."""
    lengths = closes - opens
    return np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(lengths)[:-1]]) if lengths.size else lengths


def _business_at(moments: Micros, opens: Micros, closes: Micros, cum: Micros) -> Micros:
    """F(t): business microseconds from the first interval's start to each moment."""
    if opens.size == 0:
        return np.zeros_like(moments)
    index = np.searchsorted(opens, moments, side="right") - 1
    inside = np.clip(moments - opens[np.maximum(index, 0)], 0, (closes - opens)[np.maximum(index, 0)])
    return np.where(index < 0, 0, cum[np.maximum(index, 0)] + inside)


def _spans(value: Any, where: str) -> tuple[Span, ...]:
    if not isinstance(value, list | tuple):
        raise InputError("open hours must be a list", [Problem('write [["09:00", "18:00"], ...]', where)])
    spans: list[Span] = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if isinstance(item, str) and "-" in item:
            item = item.split("-", 1)
        if not isinstance(item, list | tuple) or len(item) != 2 or not all(isinstance(x, str) for x in item):
            raise InputError("open hours are pairs of times", [Problem('write ["09:00", "18:00"]', at)])
        minutes = []
        for text in item:
            m = _CLOCK.match(text.strip())
            if m is None:
                raise InputError(f"{text!r} is not a time of day", [Problem("write HH:MM, 00:00 to 24:00", at)])
            minutes.append(1440 if text.strip() == "24:00" else int(m.group(1)) * 60 + int(m.group(2)))
        if minutes[0] >= minutes[1]:
            raise InputError(
                "open hours must end after they start", [Problem(f"{item[0]} is not before {item[1]}", at)]
            )
        spans.append((minutes[0], minutes[1]))
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start < end:
            raise InputError("open hours overlap", [Problem("give each part of the day once", where)])
    return tuple(spans)


def parse_calendar(
    name: str, timezone: str, hours: Mapping[str, Any], exceptions: Mapping[str, Any] | None = None
) -> Calendar:
    """A calendar from its written form, or an InputError naming the field: ``hours`` maps mon…sun to lists of
    ``["HH:MM", "HH:MM"]`` (a missing day is closed), ``exceptions`` maps ISO dates to the same (``[]``: closed)."""
    if not name or len(name) > 64 or not re.fullmatch(r"[\w.-]+", name):
        raise InputError("a calendar needs a name", [Problem("1-64 letters, digits, '.', '_' or '-'", "name")])
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"unknown time zone {timezone!r}", [Problem("use an IANA zone, e.g. Asia/Shanghai", "timezone")]
        ) from None
    unknown = sorted(set(hours) - set(WEEKDAYS))
    if unknown:
        raise InputError(f"unknown weekday {unknown[0]!r}", [Problem(f"use {', '.join(WEEKDAYS)}", "hours")])
    week = tuple(_spans(hours.get(d, []), f"hours.{d}") for d in WEEKDAYS)
    special: dict[date, tuple[Span, ...]] = {}
    for key, value in (exceptions or {}).items():
        try:
            day = date.fromisoformat(str(key))
        except ValueError:
            raise InputError(f"{key!r} is not a date", [Problem("write YYYY-MM-DD", f"exceptions.{key}")]) from None
        special[day] = _spans(value, f"exceptions.{key}")
    return Calendar(name, timezone, week, special)
