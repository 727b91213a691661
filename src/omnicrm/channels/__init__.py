"""Marketing channels behind one interface: email, SMS, WeChat subscription messages, WeCom
customer messages, app push and coupon issue.

``for_settings(settings)`` builds the configured channels; each one's ``send(message)`` returns a
``SendResult`` and never sends the same idempotency key twice on purpose.
"""

from omnicrm.channels.base import Channel, ChannelSettings, Message, Outcome, SendResult, idempotency_key
from omnicrm.channels.registry import Channels, build, for_settings

__all__ = [
    "Channel",
    "ChannelSettings",
    "Channels",
    "Message",
    "Outcome",
    "SendResult",
    "build",
    "for_settings",
    "idempotency_key",
]
