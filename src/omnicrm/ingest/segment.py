"""Segment tracking-spec messages: validation and normalisation of what SDKs send.

A message is checked on its own, so one bad message never spoils its batch. ``normalise`` returns
either a ``Message`` (canonical keys, timestamp in UTC) or the list of ``Problem``s that name the
message's index and the offending field — never an exception for bad input.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from omnicrm.errors import Problem

__all__ = ["TYPES", "Message", "normalise"]

TYPES = ("identify", "track", "page", "screen", "group", "alias")
_OBJECT_FIELDS = ("traits", "properties", "context", "integrations")
_ID_FIELDS = ("userId", "anonymousId", "previousId", "groupId")
_MAX_ID_LEN = 255


@dataclass(frozen=True, slots=True)
class Message:
    """A valid message, ready for the ingest buffer: canonical payload and its JSON text."""

    message_id: str
    type: str
    timestamp: datetime
    payload: dict[str, Any]
    json: str


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _as_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError
    text = str(value).strip()
    return text or None


def _auto_message_id(msg: dict[str, Any]) -> str:
    """A content hash, so that a retried message without messageId is still deduplicated."""
    return "auto-" + hashlib.sha256(orjson.dumps(msg, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def normalise(
    raw: Any,
    *,
    index: int | None,
    received_at: datetime,
    implied_type: str | None = None,
    sent_at: datetime | None = None,
    max_bytes: int,
) -> Message | list[Problem]:
    """Check one message against the tracking spec; return it in canonical form or name every problem."""

    def problem(reason: str, field: str | None = None) -> Problem:
        return Problem(reason=reason, field=field, index=index)

    if not isinstance(raw, dict):
        return [problem(f"a message must be a JSON object, got {type(raw).__name__}")]
    problems: list[Problem] = []
    mtype = raw.get("type", implied_type)
    if implied_type is not None and mtype != implied_type:
        problems.append(problem(f"type '{mtype}' sent to the /v1/{implied_type} endpoint", "type"))
    elif mtype not in TYPES:
        problems.append(problem(f"type must be one of {', '.join(TYPES)}; got {mtype!r}", "type"))

    ids: dict[str, str | None] = {}
    for id_field in _ID_FIELDS:
        try:
            ids[id_field] = _as_id(raw.get(id_field))
        except TypeError:
            problems.append(problem(f"must be a string, got {type(raw.get(id_field)).__name__}", id_field))
            ids[id_field] = None
            continue
        if len(ids[id_field] or "") > _MAX_ID_LEN:
            problems.append(problem(f"longer than {_MAX_ID_LEN} characters", id_field))

    if not ids["userId"] and not ids["anonymousId"] and not any(p.field in _ID_FIELDS for p in problems):
        problems.append(problem("userId or anonymousId is required (one may be null, not both)", "userId"))
    if mtype == "alias" and not ids["previousId"]:
        problems.append(problem("alias needs previousId", "previousId"))
    if mtype == "group" and not ids["groupId"]:
        problems.append(problem("group needs groupId", "groupId"))
    event = raw.get("event")
    if mtype == "track" and (not isinstance(event, str) or not event.strip()):
        problems.append(problem("track needs a non-empty event name (string)", "event"))
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        problems.append(problem(f"must be a string, got {type(name).__name__}", "name"))

    for field in _OBJECT_FIELDS:
        value = raw.get(field)
        if value is not None and not isinstance(value, dict):
            problems.append(problem(f"must be a JSON object, got {type(value).__name__}", field))

    message_id = raw.get("messageId")
    if message_id is not None and (not isinstance(message_id, str) or not message_id.strip()):
        problems.append(problem("must be a non-empty string", "messageId"))
    elif isinstance(message_id, str) and len(message_id) > _MAX_ID_LEN:
        problems.append(problem(f"longer than {_MAX_ID_LEN} characters", "messageId"))

    times: dict[str, datetime | None] = {}
    for field in ("timestamp", "originalTimestamp", "sentAt"):
        value = raw.get(field)
        times[field] = None if value is None else _parse_time(value)
        if value is not None and times[field] is None:
            problems.append(problem(f"{value!r} is not an ISO-8601 date-time", field))
    if problems:
        return problems

    timestamp = received_at
    ts = times["timestamp"] or times["originalTimestamp"]
    msg_sent = times["sentAt"] or sent_at
    if ts is not None:
        timestamp = ts
        if raw.get("timestamp") is None and msg_sent is not None:
            timestamp = received_at - (msg_sent - ts)  # correct the device clock, as Segment does

    return _message(
        raw,
        mtype=str(mtype),
        message_id=message_id.strip() if isinstance(message_id, str) else None,
        ids=ids,
        event=event.strip() if isinstance(event, str) else None,
        name=name,
        timestamp=timestamp,
        sent_at=msg_sent,
        received_at=received_at,
        max_bytes=max_bytes,
        index=index,
    )


def _message(
    raw: dict[str, Any],
    *,
    mtype: str,
    message_id: str | None,
    ids: dict[str, str | None],
    event: str | None,
    name: str | None,
    timestamp: datetime,
    sent_at: datetime | None,
    received_at: datetime,
    max_bytes: int,
    index: int | None,
) -> Message | list[Problem]:
    context = raw.get("context")
    payload: dict[str, Any] = {
        "messageId": message_id or _auto_message_id(raw),
        "type": mtype,
        "event": event,
        "name": name,
        "userId": ids["userId"],
        "anonymousId": ids["anonymousId"],
        "previousId": ids["previousId"],
        "groupId": ids["groupId"],
        "traits": raw.get("traits") or (context or {}).get("traits"),
        "properties": raw.get("properties"),
        "context": context,
        "timestamp": timestamp,
        "sentAt": sent_at,
        "receivedAt": received_at,
    }
    data = orjson.dumps(payload)
    if len(data) > max_bytes:
        return [Problem(f"message is {len(data):,} bytes, over the limit of {max_bytes:,} bytes", None, index)]
    return Message(payload["messageId"], mtype, timestamp, payload, data.decode())
