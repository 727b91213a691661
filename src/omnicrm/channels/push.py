"""App push through JPush's Push API v3.

``POST /v3/push`` with HTTP Basic auth (appKey:masterSecret) and a JSON push object:
``platform`` "all", ``audience`` {"registration_id": [the device]}, ``notification`` {"alert": text,
with an Android title and an iOS alert}, ``options`` {"apns_production": bool, "sendno": n,
"time_to_live": seconds}. ``sendno`` is derived from the idempotency key, so every attempt of one
send carries the same number and JPush echoes it back. Errors come as {"error": {"code", "message"}};
1011 (no device for this audience) means the person cannot be reached and is not retried.
"""

from __future__ import annotations

import hashlib
from typing import Any

from omnicrm.channels.base import Message, Outcome, SendResult
from omnicrm.channels.gateway import HttpChannel
from omnicrm.channels.retry import Transient

__all__ = ["JPushChannel", "sendno_for"]

UNREACHABLE = {1011}
BUSY = {2002, 2008, 1030}


def sendno_for(key: str) -> int:
    """A stable positive 31-bit number for an idempotency key (JPush's sendno is an int)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") & 0x7FFFFFFF


class JPushChannel(HttpChannel):
    """Push; credentials ``app_key`` and ``master_secret``; options ``apns_production`` (default true),
    ``time_to_live`` (seconds)."""

    kind = "push"
    provider = "jpush"

    def check(self, message: Message) -> str | None:
        return super().check(message) or (None if message.body else "field 'body' (the alert) is empty")

    def payload(self, message: Message) -> dict[str, Any]:
        """The push object for one message."""
        extras = {"campaign": message.campaign_id, **({"page": message.page} if message.page else {})}
        android: dict[str, Any] = {"alert": message.body, "extras": extras}
        if message.subject:
            android["title"] = message.subject
        options: dict[str, Any] = {
            "sendno": sendno_for(message.idempotency_key),
            "apns_production": bool(self.settings.options.get("apns_production", True)),
        }
        if "time_to_live" in self.settings.options:
            options["time_to_live"] = int(self.settings.options["time_to_live"])
        return {
            "platform": "all",
            "audience": {"registration_id": [message.address]},
            "notification": {
                "alert": message.body,
                "android": android,
                "ios": {"alert": message.body, "sound": "default", "extras": extras},
            },
            "options": options,
        }

    def attempt(self, message: Message, number: int) -> SendResult:
        auth = (self.settings.credential("app_key"), self.settings.credential("master_secret"))
        response = self.request("POST", "/v3/push", json=self.payload(message), auth=auth, accept_status=(400,))
        body = self.json_of(response)
        if response.status_code < 300 and "msg_id" in body:
            return self.sent(message, str(body["msg_id"]))
        error = body.get("error") or {}
        code = int(error.get("code", 0)) if isinstance(error, dict) else 0
        text = f"error {code}: {error.get('message', '') if isinstance(error, dict) else error}"
        if code in BUSY:
            raise Transient(text, code=str(code))
        outcome = Outcome.REFUSED if code in UNREACHABLE else Outcome.FAILED_PERMANENT
        return self.result(message, outcome, error=f"{self.label}: {text}", provider_code=str(code))
