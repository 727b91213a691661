"""Build the configured channels from settings, in one place.

Settings come as a mapping of channel name → ``ChannelSettings`` (or plain dicts, e.g. the
``[channels.<name>]`` tables of omnicrm.toml), or as an object with such a ``channels`` attribute.
Building a channel opens no connection; the first send does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import ValidationError

from omnicrm.channels.base import Channel, ChannelSettings
from omnicrm.channels.coupon import CouponChannel
from omnicrm.channels.email import SmtpChannel
from omnicrm.channels.push import JPushChannel
from omnicrm.channels.sms import AliyunSmsChannel
from omnicrm.channels.wechat import WeChatSubscribeChannel
from omnicrm.channels.wecom import WeComCustomerChannel
from omnicrm.errors import ConfigError

__all__ = ["ADAPTERS", "Channels", "build", "for_settings"]

ADAPTERS: dict[str, type[Channel]] = {
    "email": SmtpChannel,
    "sms": AliyunSmsChannel,
    "wechat": WeChatSubscribeChannel,
    "wecom": WeComCustomerChannel,
    "push": JPushChannel,
    "coupon": CouponChannel,
}


def build(name: str, settings: ChannelSettings | Mapping[str, Any]) -> Channel:
    """One channel from its settings; a ConfigError names the channel and field that are wrong."""
    if not isinstance(settings, ChannelSettings):
        if settings.get("kind") in {"wechat_template", "template"}:
            raise ConfigError(
                f"channel '{name}': WeChat template messages are for service notices only and cannot be used "
                'for marketing; use kind = "wechat" (subscription messages)'
            )
        try:
            settings = ChannelSettings.model_validate(dict(settings))
        except ValidationError as exc:
            lines = [f"channels.{name}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
            raise ConfigError("invalid channel settings:\n  " + "\n  ".join(lines)) from None
    return ADAPTERS[settings.kind](name, settings)


class Channels(Mapping[str, Channel]):
    """The configured channels by name; ``close()`` releases their connections."""

    def __init__(self, channels: dict[str, Channel]) -> None:
        self._channels = channels

    def __getitem__(self, name: str) -> Channel:
        try:
            return self._channels[name]
        except KeyError:
            known = ", ".join(sorted(self._channels)) or "none"
            raise ConfigError(f"no channel named '{name}' is configured (configured: {known})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._channels)

    def __len__(self) -> int:
        return len(self._channels)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()


def for_settings(settings: Any) -> Channels:
    """All configured channels: from a mapping name → settings, or an object with a ``channels`` mapping."""
    config = getattr(settings, "channels", settings)
    if config is None:
        return Channels({})
    if not isinstance(config, Mapping):
        raise ConfigError("channels: expected a table of channel name → settings")
    return Channels({str(name): build(str(name), value) for name, value in config.items()})
