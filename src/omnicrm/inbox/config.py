"""The inbox's settings: the ``[inbox]`` table of omnicrm.toml, checked once, with every field documented.

::

    [inbox]
    max_attachment_bytes = 20971520       # one attachment; larger ones are refused (413) by name
    reopen_hours = 72                     # a customer message within this reopens a closed conversation
    warn_at = 0.8                         # warn when 80% of an SLA target has passed
    reply_channels = { wechat_oa = "oa", sms = "aliyun", email = "smtp" }   # → [channels.<name>]
    webhook_secrets = { weibo = "…", wangwang = "…", jd_im = "…", email = "…" }

    [inbox.gateways.wangwang]             # marketplace IM and Weibo replies go through an HTTP gateway
    base_url = "https://im-gateway.example.cn"
    secret = "…"                          # signs each request (X-Omnicrm-Signature)

``reply_channels`` names a configured channel (``[channels.<name>]``, as campaigns use) for WeChat official accounts
(kind wechat: the same app id and secret serve customer-service messages), WeCom, SMS and email; a key
``wechat_oa:<app id>`` serves one official account when the merchant has several.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from omnicrm.errors import ConfigError

__all__ = ["GatewaySettings", "InboxConfig", "inbox_config"]


class GatewaySettings(BaseModel):
    """An HTTP gateway that delivers replies on a marketplace IM or Weibo (see omnicrm.inbox.outbound)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="The gateway's address, e.g. https://im-gateway.example.cn.")
    path: str = Field("/messages", description="Path replies are POSTed to.")
    secret: str = Field(min_length=8, description="Signs each request body (HMAC-SHA256, X-Omnicrm-Signature).")
    timeout: float = Field(10.0, gt=0, description="Seconds to wait for an answer.")
    max_attempts: int = Field(3, ge=1, description="Attempts per reply, the first included.")


class InboxConfig(BaseModel):
    """Settings of the service inbox."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reply_channels: dict[str, str] = Field(
        default_factory=dict,
        description="Inbox channel (wechat_oa, wechat_oa:<app id>, wecom, sms, email) → name of a configured channel.",
    )
    gateways: dict[str, GatewaySettings] = Field(
        default_factory=dict, description="Inbox channel (wangwang, jd_im, weibo) → the HTTP gateway for replies."
    )
    webhook_secrets: dict[str, str] = Field(
        default_factory=dict, description="Channel → secret that signs its webhook (/inbox/hooks/<channel>)."
    )
    max_attachment_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Largest attachment; 413 beyond.")
    max_attachments: int = Field(9, ge=0, description="Most attachments on one message.")
    max_text_chars: int = Field(4000, gt=0, description="Longest message text.")
    reopen_hours: float = Field(
        72.0, ge=0, description="A customer message this soon after closing reopens the conversation; later, a new one."
    )
    warn_at: float = Field(0.8, gt=0, lt=1, description="Share of an SLA target after which a warning is raised.")
    worker_interval_seconds: float = Field(
        30.0, ge=0, description="How often the server checks SLAs, follows OneID and writes facts; 0 turns it off."
    )
    stale_sending_minutes: float = Field(
        10.0, gt=0, description="A reply still 'sending' after this long (a crash mid-send) is marked in doubt."
    )


def inbox_config(settings: Any) -> InboxConfig:
    """The inbox settings of ``settings`` (an object with an ``inbox`` mapping, or the mapping itself)."""
    raw = getattr(settings, "inbox", settings)
    if isinstance(raw, InboxConfig):
        return raw
    try:
        return InboxConfig.model_validate(dict(raw or {}))
    except ValidationError as exc:
        lines = [f"inbox.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid inbox settings:\n  " + "\n  ".join(lines)) from None
