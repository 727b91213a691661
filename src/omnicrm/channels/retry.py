"""Retries with exponential backoff and jitter, for every channel.

Retried: timeouts, connection errors, HTTP 5xx and 429 (Retry-After honoured) and provider codes
that mean "busy". Never retried: other 4xx answers, bad messages and a person's refusal. The caller
keeps the same message, so the same idempotency key goes out on every attempt.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime

from omnicrm.channels.base import Outcome, SendResult

__all__ = ["Permanent", "RetryPolicy", "Transient", "parse_retry_after", "run_with_retries"]


class Transient(Exception):
    """An attempt failed in a way that another attempt may fix."""

    def __init__(
        self, reason: str, retry_after: float | None = None, code: str | None = None, *, maybe_delivered: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.code = code
        # the request went out and no answer came back: the provider may have acted on it
        self.maybe_delivered = maybe_delivered


class Permanent(Exception):
    """An attempt failed in a way that no further attempt can fix."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait: delay n is drawn from [d/2, d] with d = min(cap, base * 2^(n-1))."""

    max_attempts: int = 4
    base: float = 0.5
    cap: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, failed_attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after attempt ``failed_attempt`` failed (1-based)."""
        ceiling = min(self.cap, self.base * 2 ** (failed_attempt - 1))
        backoff = ceiling / 2 + random.uniform(0, ceiling / 2)
        return max(backoff, retry_after or 0.0)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def run_with_retries(
    attempt: Callable[[int], SendResult], policy: RetryPolicy, *, channel: str, key: str, label: str
) -> SendResult:
    """Run ``attempt(1)``, ``attempt(2)``, ... until a final result; stamp the attempt count on it."""
    last: SendResult | None = None
    for number in range(1, policy.max_attempts + 1):
        try:
            result = attempt(number)
        except Permanent as exc:
            return SendResult(
                Outcome.FAILED_PERMANENT,
                channel,
                key,
                attempts=number,
                error=f"{label}: {exc.reason}",
                provider_code=exc.code,
            )
        except Transient as exc:
            result = SendResult(
                Outcome.FAILED_RETRYABLE,
                channel,
                key,
                error=exc.reason,
                provider_code=exc.code,
                retry_after=exc.retry_after,
            )
        result = replace(result, attempts=number)
        if result.outcome is not Outcome.FAILED_RETRYABLE:
            return result
        last = result
        if result.retry_after is not None and result.retry_after > policy.cap:
            return replace(result, error=f"{label}: {result.error}; retry after {result.retry_after:.0f}s")
        if number < policy.max_attempts:
            policy.sleep(policy.delay(number, result.retry_after))
    assert last is not None
    return replace(last, error=f"{label}: gave up after {last.attempts} attempts: {last.error}")
