"""Business-hours arithmetic against hand counts: lunch breaks, a weekend, a public holiday, a make-up working day,
a daylight-saving change; the vectorised form equals the one-by-one form; bad calendars are named."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from omnicrm.errors import InputError
from omnicrm.inbox.hours import ALWAYS, parse_calendar, to_micros
from tests.inbox.conftest import EXCEPTIONS, WORKDAYS, cn

OFFICE = parse_calendar("office", "Asia/Shanghai", WORKDAYS, EXCEPTIONS)


@pytest.mark.parametrize(
    ("start", "end", "minutes"),
    [
        (cn(5, 9, 0), cn(5, 18, 0), 480),  # Monday: 09-12 and 13-18
        (cn(5, 11, 30), cn(5, 13, 30), 60),  # across lunch: 30 + 30
        (cn(5, 7, 0), cn(5, 9, 10), 10),  # from before opening
        (cn(5, 18, 30), cn(5, 23, 0), 0),  # all after closing
        (cn(9, 17, 0), cn(12, 10, 0), 60 + 180 + 300 + 60),  # Fri 1 h, the worked Sat 10 Oct 3 h + 5 h, Mon 1 h
        (cn(16, 17, 30), cn(19, 9, 15), 30 + 15),  # an ordinary weekend: Fri 30 min, Mon 15 min
        (cn(30, 17, 0, month=9), cn(2, 10, 0), 60 + 60),  # Wed 30 Sep → Fri 2 Oct across the 1 Oct holiday
        (cn(1, 10, 0), cn(1, 16, 0), 0),  # inside the holiday
    ],
)
def test_elapsed_business_time_equals_a_hand_count(start: datetime, end: datetime, minutes: int) -> None:
    assert OFFICE.elapsed_one(start, end) == minutes * 60


@pytest.mark.parametrize(
    ("start", "minutes", "due"),
    [
        (cn(5, 9, 0), 30, cn(5, 9, 30)),
        (cn(5, 11, 50), 30, cn(5, 13, 20)),  # lunch is skipped
        (cn(5, 11, 0), 60, cn(5, 12, 0)),  # ends exactly at the break
        (cn(30, 17, 50, month=9), 30, cn(2, 9, 20)),  # 10 min Wed, the holiday, 20 min Fri
        (cn(9, 17, 30), 60, cn(10, 9, 30)),  # Friday → the make-up Saturday
        (cn(17, 10, 0), 30, cn(19, 9, 30)),  # a Saturday message waits for Monday
        (cn(5, 20, 0), 0, cn(5, 20, 0)),  # nothing to wait for
    ],
)
def test_due_time_equals_a_hand_count(start: datetime, minutes: int, due: datetime) -> None:
    assert OFFICE.add_one(start, minutes * 60) == due


def test_daylight_saving_change_moves_the_hours_in_utc() -> None:
    berlin = parse_calendar("berlin", "Europe/Berlin", {d: [["09:00", "17:00"]] for d in ("fri", "mon")})
    # Fri 27 Mar 2026 16:00 CET (15:00 UTC) → Mon 30 Mar 10:00 CEST (08:00 UTC): 1 h + 1 h
    start = datetime(2026, 3, 27, 15, 0, tzinfo=UTC)
    assert berlin.elapsed_one(start, datetime(2026, 3, 30, 8, 0, tzinfo=UTC)) == 7200
    assert berlin.add_one(start, 7200) == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)


def test_round_the_clock_is_wall_time() -> None:
    assert ALWAYS.elapsed_one(cn(5, 9), cn(6, 9)) == 86_400
    assert ALWAYS.add_one(cn(5, 9), 90) == cn(5, 9) + timedelta(seconds=90)


def test_vectorised_equals_one_by_one() -> None:
    rng = random.Random(8)
    base = cn(28, 0, 0, month=9)
    starts = [base + timedelta(minutes=rng.randrange(0, 30 * 24 * 60)) for _ in range(400)]
    ends = [s + timedelta(minutes=rng.randrange(0, 6 * 24 * 60)) for s in starts]
    spans = [rng.randrange(0, 3 * 8 * 3600) for _ in starts]
    elapsed = OFFICE.elapsed(to_micros(starts), to_micros(ends)) / 1e6
    due = OFFICE.add(to_micros(starts), np.array(spans, dtype=np.int64) * 1_000_000)
    assert elapsed.tolist() == [OFFICE.elapsed_one(s, e) for s, e in zip(starts, ends, strict=True)]
    assert due.tolist() == to_micros([OFFICE.add_one(s, x) for s, x in zip(starts, spans, strict=True)]).tolist()
    # adding a span and measuring it back gives the span
    back = OFFICE.elapsed(to_micros(starts), due) / 1e6
    assert back.tolist() == [float(x) for x in spans]


@pytest.mark.parametrize(
    ("hours", "exceptions", "field", "words"),
    [
        ({"mon": [["09:00", "25:00"]]}, {}, "hours.mon[0]", "not a time of day"),
        ({"mon": [["18:00", "09:00"]]}, {}, "hours.mon[0]", "must end after they start"),
        ({"mon": [["09:00", "13:00"], ["12:00", "18:00"]]}, {}, "hours.mon", "overlap"),
        ({"monday": [["09:00", "18:00"]]}, {}, "hours", "unknown weekday"),
        ({"mon": [["09:00", "18:00"]]}, {"2026-13-01": []}, "exceptions.2026-13-01", "is not a date"),
    ],
)
def test_bad_calendars_are_refused_naming_the_field(hours: dict, exceptions: dict, field: str, words: str) -> None:
    with pytest.raises(InputError, match=words) as err:
        parse_calendar("x", "Asia/Shanghai", hours, exceptions)
    assert err.value.problems[0].field == field


def test_unknown_zone_and_a_never_open_calendar() -> None:
    with pytest.raises(InputError, match="unknown time zone") as err:
        parse_calendar("x", "Asia/Beijing", WORKDAYS)
    assert err.value.problems[0].field == "timezone"
    closed = parse_calendar("closed", "Asia/Shanghai", {})
    with pytest.raises(InputError, match="no open hours for ten years"):
        closed.add_one(cn(5, 9), 60)
    assert closed.elapsed_one(cn(5, 9), cn(9, 9)) == 0
