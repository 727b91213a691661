"""The one interface every marketing channel implements: a message, a result, settings, a rate limiter.

A campaign hands a ``Message`` for one recipient to a ``Channel`` and gets a ``SendResult`` back; it
never needs to know which provider sits behind the channel. The idempotency key (campaign + recipient
+ step) travels with every attempt, so a retry or a restart after a crash can be recognised as the
same send by the provider (where it supports that) and by our own send log.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Channel",
    "ChannelSettings",
    "Message",
    "Outcome",
    "Purpose",
    "RateLimiter",
    "SendResult",
    "idempotency_key",
]

Purpose = Literal["marketing", "service"]
ChannelKind = Literal["email", "sms", "wechat", "wecom", "push", "coupon"]


class Outcome(StrEnum):
    """What became of one send, after all attempts."""

    SENT = "sent"
    REFUSED = "refused"  # the person (or the platform on their behalf) does not accept it: never retry
    FAILED_PERMANENT = "failed_permanent"  # wrong address, template or settings: retrying cannot help
    FAILED_RETRYABLE = "failed_retryable"  # the provider was unreachable or busy: try again later
    IN_DOUBT = "in_doubt"  # no answer came back and the provider cannot say whether it acted: never resend blindly


def idempotency_key(campaign_id: str, recipient: str, step: str) -> str:
    """The key of one send: the same campaign, recipient and step always give the same key."""
    return f"{campaign_id}:{recipient}:{step}"


@dataclass(frozen=True)
class Message:
    """One message to one recipient on one channel.

    ``address`` is what the channel needs (email address, mobile number, openid, external_userid,
    registration id, customer identifier for coupons); ``recipient`` is the customer id. Either
    ``body`` (and ``html`` for email) or ``template_id`` with ``params`` carries the content.
    """

    channel: str
    address: str
    campaign_id: str
    recipient: str
    step: str = "1"
    subject: str = ""
    body: str = ""
    html: str | None = None
    template_id: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    language: str = "zh"
    unsubscribe_url: str | None = None
    purpose: Purpose = "marketing"
    page: str | None = None
    attachments: tuple[Mapping[str, Any], ...] = ()

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.campaign_id, self.recipient, self.step)


@dataclass(frozen=True)
class SendResult:
    """The result of sending one message: outcome, provider id, cost and how many attempts it took.

    ``error`` names the field or the provider's code; ``retry_after`` (seconds) says when a
    retryable failure is worth trying again.
    """

    outcome: Outcome
    channel: str
    idempotency_key: str
    provider_message_id: str | None = None
    cost: Decimal = Decimal(0)
    units: int = 0
    attempts: int = 1
    error: str | None = None
    provider_code: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.SENT


class ChannelSettings(BaseModel):
    """Settings of one configured channel (one entry of ``[channels.<name>]`` in omnicrm.toml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ChannelKind = Field(description="Which adapter: email, sms, wechat, wecom, push or coupon.")
    base_url: str = Field(description="Provider endpoint, e.g. https://dysmsapi.aliyuncs.com or smtp://host:587.")
    credentials: dict[str, str] = Field(default_factory=dict, description="Keys and secrets the provider needs.")
    cost_per_unit: Decimal = Field(Decimal(0), ge=0, description="Cost of one message (one billing unit for SMS).")
    rate_per_second: float = Field(10.0, ge=0, description="Most requests per second to the provider; 0 = no limit.")
    burst: int = Field(1, ge=1, description="Requests that may go at once before the rate applies.")
    connect_timeout: float = Field(3.0, gt=0, description="Seconds to wait for a connection.")
    timeout: float = Field(10.0, gt=0, description="Seconds to wait for an answer.")
    max_attempts: int = Field(4, ge=1, description="Attempts per message, the first included.")
    backoff_base: float = Field(0.5, ge=0, description="First retry delay in seconds; doubles each attempt.")
    backoff_max: float = Field(
        30.0,
        ge=0,
        description="Longest delay between attempts; a longer Retry-After "
        "ends the attempts and is handed back to the caller.",
    )
    daily_quota: int | None = Field(
        None, ge=0, description="Most messages per day (merchant's time zone) through this channel; none if unset."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Adapter-specific options.")

    def credential(self, name: str) -> str:
        """One credential, or a clear error naming it."""
        from omnicrm.errors import ConfigError

        value = self.credentials.get(name)
        if not value:
            raise ConfigError(f"channel setting 'credentials.{name}' is missing for the {self.kind} channel")
        return value


class RateLimiter:
    """Token bucket shared by all threads sending through one channel.

    ``acquire`` blocks until a token is free. Tokens are reserved under the lock and waited for
    outside it, so N callers at rate r are spread over (N - burst) / r seconds.
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate_per_second
        self.capacity = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token; return the seconds waited."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


class Channel(ABC):
    """A configured channel: checks a message, waits for the rate limiter, sends with retries."""

    kind: str = ""
    provider: str = ""

    def __init__(self, name: str, settings: ChannelSettings, sleep: Callable[[float], None] = time.sleep) -> None:
        from omnicrm.channels.retry import RetryPolicy

        self.name = name
        self.settings = settings
        self.limiter = RateLimiter(settings.rate_per_second, settings.burst)
        self.policy = RetryPolicy(
            max_attempts=settings.max_attempts,
            base=settings.backoff_base,
            cap=settings.backoff_max,
            sleep=sleep,
        )

    @property
    def label(self) -> str:
        """How errors name this channel: its name and provider."""
        return f"{self.name} ({self.provider})"

    def send(self, message: Message) -> SendResult:
        """Send one message; never raises for provider or network trouble, only returns a result."""
        from omnicrm.channels.retry import Permanent, Transient, run_with_retries
        from omnicrm.errors import ConfigError

        problem = self.check(message)
        if problem is not None:
            return SendResult(
                Outcome.FAILED_PERMANENT,
                self.name,
                message.idempotency_key,
                attempts=0,
                error=f"{self.label}: {problem}",
            )

        doubt = False  # the last attempt may have reached the provider without our hearing back

        def attempt(number: int) -> SendResult:
            nonlocal doubt
            if doubt:
                settled = self.settle_doubt(message)
                if settled is not None:
                    return settled
                doubt = False
            self.limiter.acquire()
            try:
                return self.attempt(message, number)
            except ConfigError as exc:
                raise Permanent(str(exc), code="settings") from exc
            except Transient as exc:
                doubt = exc.maybe_delivered
                raise

        result = run_with_retries(attempt, self.policy, channel=self.name, key=message.idempotency_key,
                                  label=self.label)  # fmt: skip
        if doubt and result.outcome is Outcome.FAILED_RETRYABLE:
            return self.settle_doubt(message) or result
        return result

    def settle_doubt(self, message: Message) -> SendResult | None:
        """After an attempt that may have reached the provider: the send's result if it did (or if that cannot be
        known), None if sending again is safe."""
        if self.resend_safe:
            return None
        known = self.was_sent(message)
        if known is True:
            return self.sent(message, None, units=self.units_of(message))
        if known is False:
            return None
        return self.result(message, Outcome.IN_DOUBT,
                           error=f"{self.label}: no answer came back and the provider cannot say whether the message "
                                 "went out; not sent again")  # fmt: skip

    def units_of(self, message: Message) -> int:
        """Billing units of one message (SMS counts characters)."""
        return 1

    def check(self, message: Message) -> str | None:
        """A problem with the message that no attempt can fix (naming the field), or None."""
        if not message.address:
            return "field 'address' is empty"
        if message.purpose == "marketing" and not message.unsubscribe_url and self.needs_unsubscribe_url:
            return "field 'unsubscribe_url' is required for marketing messages"
        return None

    needs_unsubscribe_url: bool = False

    def result(self, message: Message, outcome: Outcome, **kwargs: Any) -> SendResult:
        """A result for this channel and message."""
        return SendResult(outcome, self.name, message.idempotency_key, **kwargs)

    def sent(self, message: Message, provider_message_id: str | None, units: int = 1) -> SendResult:
        """A sent result with its cost."""
        return self.result(
            message,
            Outcome.SENT,
            provider_message_id=provider_message_id,
            units=units,
            cost=self.settings.cost_per_unit * units,
        )

    # Recovery after a crash between "about to send" and "recorded as sent": a channel whose provider
    # recognises our idempotency key may simply be sent again; one that can look a send up by its key
    # answers ``was_sent``; for any other the send stays in doubt for a person to decide.
    resend_safe: bool = False

    def was_sent(self, message: Message) -> bool | None:
        """Whether the provider holds a send with this message's idempotency key; None if it cannot tell."""
        return None

    @abstractmethod
    def attempt(self, message: Message, number: int) -> SendResult:
        """One attempt; raise ``Transient``/``Permanent`` from retry.py, or return a result."""

    def close(self) -> None:  # noqa: B027 - most channels hold nothing to release
        """Release connections."""
