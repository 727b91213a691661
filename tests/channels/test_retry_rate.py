"""Backoff, Retry-After and the token-bucket rate limiter; building channels from settings."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest

from omnicrm.channels import ChannelSettings, Message, Outcome, for_settings
from omnicrm.channels.base import RateLimiter
from omnicrm.channels.coupon import CouponChannel
from omnicrm.channels.retry import RetryPolicy, parse_retry_after
from omnicrm.channels.sms import AliyunSmsChannel
from omnicrm.errors import ConfigError
from tests.channels.gateways import Gateway, Reply


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(base=1.0, cap=8.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 8.0)]:
        delays = {policy.delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(delays) > 1
    assert policy.delay(1, retry_after=5.0) == 5.0


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_rate_limiter_spreads_threads() -> None:
    limiter, n, rate = RateLimiter(20.0), 11, 20.0
    start = time.monotonic()
    threads = [threading.Thread(target=limiter.acquire) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - start >= (n - 1) / rate * 0.9


def test_channel_sends_at_the_configured_rate(gateway: Gateway) -> None:
    gateway.default("/coupons/issue", Reply(201, {"coupon_id": "x"}))
    settings = ChannelSettings(kind="coupon", base_url=gateway.url, rate_per_second=25)
    ch = CouponChannel("coupon", settings)
    n = 11
    start = time.monotonic()
    results = [
        ch.send(Message(channel="coupon", address=f"M{i}", campaign_id="c", recipient=str(i), template_id="T"))
        for i in range(n)
    ]
    assert all(r.ok for r in results)
    assert time.monotonic() - start >= (n - 1) / 25 * 0.9
    times = [r.at for r in gateway.requests]
    assert times[-1] - times[0] >= (n - 1) / 25 * 0.8


def test_for_settings_builds_each_kind_without_network() -> None:
    channels = for_settings(
        {
            "sms": {
                "kind": "sms",
                "base_url": "http://127.0.0.1:9",
                "cost_per_unit": "0.045",
                "options": {"sign_name": "S"},
            },
            "mail": {"kind": "email", "base_url": "smtp://127.0.0.1:9"},
            "wx": {"kind": "wechat", "base_url": "http://127.0.0.1:9"},
            "wecom": {"kind": "wecom", "base_url": "http://127.0.0.1:9"},
            "push": {"kind": "push", "base_url": "http://127.0.0.1:9"},
            "coupon": {"kind": "coupon", "base_url": "http://127.0.0.1:9"},
        }
    )
    try:
        assert isinstance(channels["sms"], AliyunSmsChannel)
        assert channels["sms"].settings.cost_per_unit == Decimal("0.045")
        assert {c.kind for c in channels.values()} == {"sms", "email", "wechat", "wecom", "push", "coupon"}
        with pytest.raises(ConfigError, match="no channel named 'fax'"):
            channels["fax"]
    finally:
        channels.close()


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"channels\.sms\.rate_per_second"):
        for_settings({"sms": {"kind": "sms", "base_url": "http://x", "rate_per_second": -1}})
    with pytest.raises(ConfigError, match=r"channels\.x\.kind"):
        for_settings({"x": {"kind": "fax", "base_url": "http://x"}})


def test_missing_credential_is_named(gateway: Gateway) -> None:
    ch = for_settings(
        {"sms": {"kind": "sms", "base_url": gateway.url, "options": {"sign_name": "S", "text_template_code": "T"}}}
    )["sms"]
    result = ch.send(Message(channel="sms", address="13800138000", campaign_id="c", recipient="r", body="hi"))
    assert result.outcome is Outcome.FAILED_PERMANENT and result.attempts == 1
    assert "credentials.access_key_id" in (result.error or "") and gateway.requests == []
