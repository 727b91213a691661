"""Replies out: the channel adapters of omnicrm.channels, used for service messages, plus the two the inbox adds.

- WeChat official accounts: customer-service messages (客服消息), ``POST /cgi-bin/message/custom/send?access_token=…``
  with ``{"touser": openid, "msgtype": "text", "text": {"content": …}}`` (or ``image`` with a ``media_id``). They
  use the account's access token, so a ``[channels.<name>]`` of kind ``wechat`` (app id and secret) serves both
  campaigns and replies. WeChat allows them within 48 hours of the person's last message: errcode 45015 (out of the
  window), 45047 (too many replies in it) and 48002 (the person blocked messages) come back as ``refused``.
- SMS (Alibaba Cloud), email (SMTP) and WeCom: the campaign adapters as they are, the message marked ``service``
  (so no opt-out text and no unsubscribe link are required).
- Marketplace IM (Wangwang, JD) and Weibo: an HTTP gateway the merchant runs or rents, ``POST <base_url><path>``
  with ``{"channel", "account", "to", "text", "attachments", "conversation_id", "idempotency_key"}``, the key also in
  ``Idempotency-Key``, and ``X-Omnicrm-Signature: sha256=<hex HMAC-SHA256 of the body with the gateway's secret>``.
  A 2xx answer ``{"message_id": …}`` means sent; 429 and 5xx are retried; other 4xx are final. The gateway is
  expected to send a key once, so a retry after a lost answer is safe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Mapping
from typing import Any

from omnicrm.channels.base import Channel, ChannelSettings, Message, Outcome, SendResult
from omnicrm.channels.email import SmtpChannel
from omnicrm.channels.gateway import TOKEN_INVALID, HttpChannel
from omnicrm.channels.registry import build
from omnicrm.channels.retry import Transient
from omnicrm.channels.sms import AliyunSmsChannel
from omnicrm.channels.wechat import BUSY, WeChatSubscribeChannel
from omnicrm.channels.wecom import WeComCustomerChannel
from omnicrm.errors import ConfigError, Conflict, Problem
from omnicrm.inbox.config import GatewaySettings, InboxConfig

__all__ = ["GatewayChannel", "Outbox", "WeChatServiceChannel", "signature"]

REFUSED = {45015, 45047, 48002}
# inbox channel → the kind of [channels.<name>] that replies on it, and the adapter used
_ADAPTERS: dict[str, tuple[str, type[Channel]]] = {
    "wechat_oa": ("wechat", WeChatSubscribeChannel),  # replaced by WeChatServiceChannel below
    "wecom": ("wecom", WeComCustomerChannel),
    "sms": ("sms", AliyunSmsChannel),
    "email": ("email", SmtpChannel),
}


def signature(secret: str, body: bytes) -> str:
    """The value of ``X-Omnicrm-Signature`` for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WeChatServiceChannel(WeChatSubscribeChannel):
    """Customer-service messages of an official account (see the module docstring)."""

    provider = "wechat-customer-service"

    def check(self, message: Message) -> str | None:
        problem = Channel.check(self, message)
        if problem:
            return problem
        if not message.body and not any(a.get("media_id") for a in message.attachments):
            return "field 'body' is empty and no attachment has a media_id"
        return None

    def payload(self, message: Message) -> dict[str, Any]:
        if message.body:
            return {"touser": message.address, "msgtype": "text", "text": {"content": message.body}}
        media = next(a["media_id"] for a in message.attachments if a.get("media_id"))
        return {"touser": message.address, "msgtype": "image", "image": {"media_id": media}}

    def attempt(self, message: Message, number: int) -> SendResult:
        code, body = self.post_with_token("/cgi-bin/message/custom/send", self.payload(message))
        text = f"errcode {code}: {body.get('errmsg', '')}"
        if code == 0:
            msgid = body.get("msgid")
            return self.sent(message, None if msgid is None else str(msgid))
        if code in REFUSED:
            return self.result(message, Outcome.REFUSED, error=f"{self.label}: {text}", provider_code=str(code))
        if code in BUSY or code in TOKEN_INVALID:
            raise Transient(text, code=str(code))
        return self.result(message, Outcome.FAILED_PERMANENT, error=f"{self.label}: {text}", provider_code=str(code))


class GatewayChannel(HttpChannel):
    """Replies on a marketplace IM or Weibo through the merchant's HTTP gateway (see the module docstring)."""

    kind = "gateway"
    provider = "http-gateway"
    resend_safe = True  # the gateway sends an idempotency key once

    def __init__(self, name: str, gateway: GatewaySettings) -> None:
        # ChannelSettings names only the campaign adapters' kinds; the gateway borrows its timeouts and retries
        base = ChannelSettings.model_validate({"kind": "push", "base_url": gateway.base_url, "timeout": gateway.timeout,
                                               "max_attempts": gateway.max_attempts, "rate_per_second": 0})  # fmt: skip
        super().__init__(name, base.model_copy(update={"kind": "gateway"}))
        self.gateway = gateway

    def check(self, message: Message) -> str | None:
        problem = super().check(message)
        if problem:
            return problem
        return None if message.body or message.attachments else "field 'body' is empty and there are no attachments"

    def attempt(self, message: Message, number: int) -> SendResult:
        payload = {
            "channel": self.name, "account": message.params.get("account", ""), "to": message.address,
            "text": message.body, "attachments": [dict(a) for a in message.attachments],
            "conversation_id": message.params.get("conversation_id"), "idempotency_key": message.idempotency_key,
        }  # fmt: skip
        # the bytes httpx sends for json= (compact, UTF-8), so the signature covers the body as received
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        headers = {"Idempotency-Key": message.idempotency_key,
                   "X-Omnicrm-Signature": signature(self.gateway.secret, body)}  # fmt: skip
        answer = self.json_of(self.request("POST", self.gateway.path, json=payload, headers=headers))
        found = answer.get("message_id")
        return self.sent(message, None if found is None else str(found))


class Outbox:
    """The channels replies go out through, built on first use from the settings; ``close()`` releases them."""

    def __init__(self, channels: Mapping[str, Any], config: InboxConfig) -> None:
        self._settings = dict(channels or {})
        self._config = config
        self._built: dict[str, Channel] = {}
        self._lock = threading.Lock()

    def channel_for(self, channel: str, account: str = "") -> Channel:
        """The channel that replies on inbox ``channel`` (for ``account``), or a Conflict naming the setting."""
        key = f"{channel}:{account}" if account else channel
        with self._lock:
            if key not in self._built:
                self._built[key] = self._build(channel, key)
            return self._built[key]

    def _build(self, channel: str, key: str) -> Channel:
        if channel in self._config.gateways:
            built: Channel = GatewayChannel(channel, self._config.gateways[channel])
        elif channel in _ADAPTERS:
            name = self._config.reply_channels.get(key) or self._config.reply_channels.get(channel)
            if name is None:
                raise Conflict(
                    f"replies on {channel} are not set up",
                    [Problem(f"name a configured channel in [inbox] reply_channels.{channel}", "channel")],
                )
            if name not in self._settings:
                raise ConfigError(f"inbox.reply_channels.{channel} names channel '{name}', which is not configured")
            kind, adapter = _ADAPTERS[channel]
            checked = build(name, self._settings[name])
            settings = checked.settings
            checked.close()
            if settings.kind != kind:
                raise ConfigError(f"inbox.reply_channels.{channel}: channel '{name}' is {settings.kind}, not {kind}")
            built = (WeChatServiceChannel if channel == "wechat_oa" else adapter)(name, settings)
        else:
            raise Conflict(
                f"replies on {channel} are not set up",
                [Problem(f"configure [inbox.gateways.{channel}] for its HTTP gateway", "channel")],
            )
        return built

    def close(self) -> None:
        with self._lock:
            for channel in self._built.values():
                channel.close()
            self._built.clear()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
