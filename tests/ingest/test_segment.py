"""Validation of single Segment messages: what is accepted, and the exact problem for what is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omnicrm.errors import Problem
from omnicrm.ingest.segment import Message, normalise

NOW = datetime(2026, 11, 11, 4, 0, tzinfo=UTC)


def check(raw: object, **kw: object) -> Message | list[Problem]:
    return normalise(raw, index=0, received_at=NOW, max_bytes=32 * 1024, **kw)  # type: ignore[arg-type]


def test_user_id_may_be_null_when_anonymous_id_is_set() -> None:
    msg = check({"type": "track", "event": "Product Viewed", "userId": None, "anonymousId": "d1"})
    assert isinstance(msg, Message)
    assert msg.payload["userId"] is None and msg.payload["anonymousId"] == "d1"


def test_anonymous_id_may_be_null_when_user_id_is_set() -> None:
    msg = check({"type": "identify", "userId": 42, "anonymousId": None, "traits": {"phone": "13812345678"}})
    assert isinstance(msg, Message)
    assert msg.payload["userId"] == "42"


def test_neither_id_is_refused_naming_the_field() -> None:
    assert check({"type": "track", "event": "x", "userId": None}) == [
        Problem("userId or anonymousId is required (one may be null, not both)", "userId", 0)
    ]


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        ({"type": "track", "userId": "u"}, "event", "track needs a non-empty event name (string)"),
        ({"type": "track", "event": "e", "userId": ["u"]}, "userId", "must be a string, got list"),
        (
            {"type": "track", "event": "e", "userId": "u", "properties": [1]},
            "properties",
            "must be a JSON object, got list",
        ),
        ({"type": "identify", "userId": "u", "traits": "vip"}, "traits", "must be a JSON object, got str"),
        ({"type": "alias", "userId": "u"}, "previousId", "alias needs previousId"),
        ({"type": "group", "userId": "u"}, "groupId", "group needs groupId"),
        (
            {"type": "shout", "userId": "u"},
            "type",
            "type must be one of identify, track, page, screen, group, alias; got 'shout'",
        ),
        (
            {"type": "page", "userId": "u", "timestamp": "yesterday"},
            "timestamp",
            "'yesterday' is not an ISO-8601 date-time",
        ),
        ({"type": "page", "userId": "u", "messageId": 7}, "messageId", "must be a non-empty string"),
    ],
)
def test_wrong_types_name_the_field(raw: dict[str, object], field: str, reason: str) -> None:
    problems = check(raw)
    assert isinstance(problems, list)
    assert Problem(reason, field, 0) in problems


def test_oversize_message_is_refused_with_its_size() -> None:
    problems = check({"type": "track", "event": "x", "userId": "u", "properties": {"blob": "x" * 40_000}})
    assert isinstance(problems, list)
    assert problems[0].reason.startswith("message is 40,")
    assert problems[0].reason.endswith("over the limit of 32,768 bytes")


def test_a_message_that_is_not_an_object() -> None:
    assert check("hello") == [Problem("a message must be a JSON object, got str", None, 0)]


def test_timestamp_is_kept_in_utc() -> None:
    msg = check({"type": "track", "event": "x", "userId": "u", "timestamp": "2026-11-11T00:03:12+08:00"})
    assert isinstance(msg, Message)
    assert msg.timestamp == datetime(2026, 11, 10, 16, 3, 12, tzinfo=UTC)


def test_device_clock_skew_is_corrected_from_sent_at() -> None:
    sent = NOW + timedelta(hours=1)  # the device clock runs an hour fast
    msg = check(
        {"type": "track", "event": "x", "userId": "u", "originalTimestamp": (sent - timedelta(minutes=5)).isoformat()},
        sent_at=sent,
    )
    assert isinstance(msg, Message)
    assert msg.timestamp == NOW - timedelta(minutes=5)


def test_missing_message_id_gets_a_content_hash_so_retries_dedupe() -> None:
    raw = {"type": "track", "event": "x", "userId": "u", "timestamp": "2026-11-11T00:00:00Z"}
    a, b = check(dict(raw)), check(dict(raw))
    assert isinstance(a, Message) and isinstance(b, Message)
    assert a.message_id == b.message_id and a.message_id.startswith("auto-")
