"""Who may use the inbox's console pages (merged into the matrix of test_authorisation.py): agents with
``inbox.work`` the queue and conversations, managers with ``inbox.manage`` the SLA reports. The path parameters
(``conversation_id``, ``quick_reply_id``) are the API's, declared in routes_inbox.py."""

from __future__ import annotations

from typing import Any

WORK, MANAGE = "console:inbox.work", "console:inbox.manage"
CONVERSATION = "/console/inbox/{conversation_id}"

MATRIX: dict[tuple[str, str], str] = {
    ("GET", "/console/inbox"): WORK,
    ("GET", CONVERSATION): WORK,
    ("GET", f"{CONVERSATION}/quick-replies/{{quick_reply_id}}"): WORK,
    ("POST", f"{CONVERSATION}/replies"): WORK,
    ("POST", f"{CONVERSATION}/notes"): WORK,
    ("POST", f"{CONVERSATION}/assign"): WORK,
    ("POST", f"{CONVERSATION}/status"): WORK,
    ("POST", f"{CONVERSATION}/priority"): WORK,
    ("GET", "/console/inbox/reports"): MANAGE,
    ("GET", "/console/inbox/reports/chart"): MANAGE,
}

API_INPUTS: dict[tuple[str, str], dict[str, Any]] = {}
PARAMS: dict[str, str] = {}
