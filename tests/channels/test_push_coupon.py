"""App push (JPush v3 shape) and coupon issue against a local gateway."""

from __future__ import annotations

import base64
from decimal import Decimal

from omnicrm.channels import ChannelSettings, Message, Outcome
from omnicrm.channels.coupon import CouponChannel
from omnicrm.channels.push import JPushChannel, sendno_for
from tests.channels.gateways import Gateway, Reply


def push(gateway: Gateway, sleeps: list[float]) -> JPushChannel:
    settings = ChannelSettings(
        kind="push",
        base_url=gateway.url,
        credentials={"app_key": "7d431e42dfa6a6d693ac2d04", "master_secret": "5e987ac6d2e04d95a9d8f0d1"},
        cost_per_unit=Decimal("0.001"),
        rate_per_second=0,
        backoff_base=0.01,
        options={"apns_production": False},
    )
    return JPushChannel("push", settings, sleep=sleeps.append)


def push_message(**kw: object) -> Message:
    values: dict[str, object] = {
        "channel": "push",
        "address": "1a0018970a8b2c3d",
        "campaign_id": "c5",
        "recipient": "cust-5",
        "subject": "双11",
        "body": "您的专属券已到账",
    }
    values.update(kw)
    return Message(**values)


def test_push_request_shape(gateway: Gateway, sleeps: list[float]) -> None:
    gateway.default("/v3/push", Reply(200, {"sendno": "18", "msg_id": "1828256757"}))
    result = push(gateway, sleeps).send(push_message())
    assert result.ok and result.provider_message_id == "1828256757" and result.cost == Decimal("0.001")
    (req,) = gateway.requests
    expected = base64.b64encode(b"7d431e42dfa6a6d693ac2d04:5e987ac6d2e04d95a9d8f0d1").decode()
    assert req.method == "POST" and req.headers["authorization"] == f"Basic {expected}"
    body = req.json()
    assert body["platform"] == "all"
    assert body["audience"] == {"registration_id": ["1a0018970a8b2c3d"]}
    assert body["notification"]["alert"] == "您的专属券已到账"
    assert body["notification"]["android"]["title"] == "双11"
    assert body["options"]["apns_production"] is False
    assert body["options"]["sendno"] == sendno_for("c5:cust-5:1")


def test_push_429_honours_retry_after_and_keeps_sendno(gateway: Gateway, sleeps: list[float]) -> None:
    gateway.script("/v3/push", Reply(429, {"error": {"code": 2002}}, headers={"Retry-After": "2"}))
    gateway.default("/v3/push", Reply(200, {"msg_id": "1"}))
    result = push(gateway, sleeps).send(push_message())
    assert result.ok and result.attempts == 2 and sleeps and sleeps[0] >= 2
    assert len({r.json()["options"]["sendno"] for r in gateway.requests}) == 1


def test_push_unknown_device_is_refused_and_400_not_retried(gateway: Gateway, sleeps: list[float]) -> None:
    gateway.default("/v3/push", Reply(400, {"error": {"code": 1011, "message": "cannot find user by this audience"}}))
    result = push(gateway, sleeps).send(push_message())
    assert result.outcome is Outcome.REFUSED and result.attempts == 1 and "1011" in (result.error or "")
    gateway.default("/v3/push", Reply(400, {"error": {"code": 1003, "message": "alert is too long"}}))
    result = push(gateway, sleeps).send(push_message())
    assert result.outcome is Outcome.FAILED_PERMANENT and "1003" in (result.error or "") and result.attempts == 1
    assert sleeps == []


def coupon(gateway: Gateway, sleeps: list[float]) -> CouponChannel:
    settings = ChannelSettings(
        kind="coupon",
        base_url=gateway.url,
        credentials={"token": "t0k"},
        cost_per_unit=Decimal("0"),
        rate_per_second=0,
        backoff_base=0.01,
    )
    return CouponChannel("coupon", settings, sleep=sleeps.append)


def coupon_message() -> Message:
    return Message(
        channel="coupon", address="M-000123", campaign_id="c7", recipient="cust-7", step="2", template_id="CT-30OFF"
    )


def test_coupon_request_shape_and_already_issued_after_a_lost_answer(gateway: Gateway, sleeps: list[float]) -> None:
    gateway.script("/coupons/issue", Reply(500), Reply(409, {"code": "already_issued", "coupon_id": "CP-1"}))
    result = coupon(gateway, sleeps).send(coupon_message())
    assert result.ok and result.attempts == 2 and result.provider_message_id == "CP-1"
    assert [r.headers["idempotency-key"] for r in gateway.requests] == ["c7:cust-7:2", "c7:cust-7:2"]
    assert gateway.requests[0].headers["authorization"] == "Bearer t0k"
    assert gateway.requests[0].json() == {
        "template_id": "CT-30OFF",
        "customer_id": "M-000123",
        "idempotency_key": "c7:cust-7:2",
        "campaign_id": "c7",
    }


def test_coupon_422_is_permanent(gateway: Gateway, sleeps: list[float]) -> None:
    gateway.default("/coupons/issue", Reply(422, {"field": "template_id", "message": "unknown template"}))
    result = coupon(gateway, sleeps).send(coupon_message())
    assert result.outcome is Outcome.FAILED_PERMANENT and result.attempts == 1
    assert "template_id" in (result.error or "") and "coupon-service" in (result.error or "")
