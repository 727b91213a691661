"""The service inbox's routes for the authorisation matrix: its API (inbox:read / inbox:write) and the channels'
signed webhook, public because the HMAC signature with the channel's secret is its authority."""

from __future__ import annotations

from typing import Any

READ, WRITE = "api:inbox:read", "api:inbox:write"
CONVERSATION = "/api/inbox/conversations/{conversation_id}"

MATRIX: dict[tuple[str, str], str] = {
    ("POST", "/inbox/hooks/{channel}"): "public",
    ("POST", "/api/inbox/messages"): WRITE,
    ("GET", "/api/inbox/queue"): READ,
    ("GET", "/api/inbox/warnings"): READ,
    ("GET", "/api/inbox/conversations"): READ,
    ("GET", CONVERSATION): READ,
    ("POST", f"{CONVERSATION}/replies"): WRITE,
    ("POST", f"{CONVERSATION}/notes"): WRITE,
    ("POST", f"{CONVERSATION}/messages/{{message_id}}/attributes"): WRITE,
    ("POST", f"{CONVERSATION}/assign"): WRITE,
    ("POST", f"{CONVERSATION}/status"): WRITE,
    ("POST", f"{CONVERSATION}/priority"): WRITE,
    ("GET", "/api/inbox/quick-replies"): READ,
    ("PUT", "/api/inbox/quick-replies"): WRITE,
    ("DELETE", "/api/inbox/quick-replies/{quick_reply_id}"): WRITE,
    ("POST", "/api/inbox/quick-replies/{quick_reply_id}/render"): READ,
    ("GET", "/api/inbox/sla/policies"): READ,
    ("PUT", "/api/inbox/sla/policies"): WRITE,
    ("GET", "/api/inbox/sla/calendars"): READ,
    ("PUT", "/api/inbox/sla/calendars/{calendar_name}"): WRITE,
    ("GET", "/api/inbox/reports"): READ,
    ("GET", "/api/inbox/agents"): READ,
    ("POST", "/api/inbox/agents"): WRITE,
    ("PATCH", "/api/inbox/agents/{agent_id}"): WRITE,
    ("GET", "/api/inbox/teams"): READ,
    ("POST", "/api/inbox/teams"): WRITE,
    ("PUT", "/api/inbox/teams/{team_id}/members"): WRITE,
}

API_INPUTS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/inbox/messages"): {"json": {"channel": "sms", "sender": {"phone": "13912345678"}, "text": "matrix"}},
    ("POST", f"{CONVERSATION}/replies"): {"json": {"agent_id": 0, "text": "matrix", "idempotency_key": "matrix"}},
    ("POST", f"{CONVERSATION}/notes"): {"json": {"text": "matrix"}},
    ("POST", f"{CONVERSATION}/messages/{{message_id}}/attributes"): {
        "json": {"tag_id": "has_infant", "value": True, "quote": "matrix"}
    },
    ("POST", f"{CONVERSATION}/assign"): {"json": {}},
    ("POST", f"{CONVERSATION}/status"): {"json": {"status": "open"}},
    ("POST", f"{CONVERSATION}/priority"): {"json": {"priority": "high"}},
    ("PUT", "/api/inbox/quick-replies"): {"json": {"shortcut": "matrix", "language": "zh", "title": "t", "text": "hi"}},
    ("POST", "/api/inbox/quick-replies/{quick_reply_id}/render"): {"json": {}},
    ("PUT", "/api/inbox/sla/policies"): {
        "json": {"channel": "weibo", "priority": "low", "first_response_minutes": 60, "resolution_minutes": 1440}
    },
    ("PUT", "/api/inbox/sla/calendars/{calendar_name}"): {"json": {"hours": {"mon": [["09:00", "18:00"]]}}},
    ("GET", "/api/inbox/reports"): {
        "params": {"start": "2026-01-01T00:00:00+08:00", "end": "2026-02-01T00:00:00+08:00"}
    },
    ("POST", "/api/inbox/agents"): {"json": {"name": "matrix"}},
    ("PATCH", "/api/inbox/agents/{agent_id}"): {"json": {"name": "matrix"}},
    ("POST", "/api/inbox/teams"): {"json": {"name": "matrix"}},
    ("PUT", "/api/inbox/teams/{team_id}/members"): {"json": {"members": []}},
}

PARAMS: dict[str, str] = {
    "channel": "weibo",
    "conversation_id": "0",
    "quick_reply_id": "0",
    "message_id": "0",
    "calendar_name": "matrix",
    "agent_id": "0",
    "team_id": "0",
}
