"""SMS through a local stand-in for Alibaba Cloud's SendSms: request shape, signature, billing, retries."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from omnicrm.channels import ChannelSettings, Message, Outcome
from omnicrm.channels.sms import OPT_OUT, AliyunSmsChannel, billing_units, prepare_text, sign
from tests.channels.gateways import Gateway, Reply

OK = Reply(200, {"Code": "OK", "Message": "OK", "BizId": "900619746936498440^0", "RequestId": "r1"})


def channel(gateway: Gateway, sleeps: list[float], **overrides: object) -> AliyunSmsChannel:
    values: dict[str, object] = {
        "kind": "sms",
        "base_url": gateway.url,
        "credentials": {"access_key_id": "LTAI-test", "access_key_secret": "s3cret"},
        "cost_per_unit": Decimal("0.045"),
        "rate_per_second": 0,
        "timeout": 0.3,
        "options": {"sign_name": "小鹿茶", "text_template_code": "SMS_0001"},
    }
    values.update(overrides)
    return AliyunSmsChannel("sms", ChannelSettings.model_validate(values), sleep=sleeps.append)


def message(body: str = "双11会员专享:全场满199减30", **kw: object) -> Message:
    return Message(
        channel="sms", address="13800138000", campaign_id="c42", recipient="cust-7", step="1", body=body, **kw
    )


@pytest.mark.parametrize(("length", "units"), [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_billing_units_at_the_boundaries(length: int, units: int) -> None:
    assert billing_units("字" * length) == units


def test_signature_and_opt_out_are_added_once() -> None:
    text = prepare_text("会员日到店礼", "小鹿茶")
    assert text == "【小鹿茶】会员日到店礼" + OPT_OUT
    assert prepare_text(text, "小鹿茶") == text
    assert prepare_text("【小鹿茶】已有签名,回T退订", "小鹿茶").count("退订") == 1
    assert prepare_text("您的订单已发货", "小鹿茶", marketing=False) == "【小鹿茶】您的订单已发货"


def test_billing_counts_signature_and_opt_out(gateway: Gateway, sleeps: list[float]) -> None:
    gateway.default("/", OK)
    # 60 characters of body + 【小鹿茶】(5) + 回T退订(4) = 69 → 1 unit; 62 → 71 → 2 units.
    one = channel(gateway, sleeps).send(message("字" * 60))
    two = channel(gateway, sleeps).send(message("字" * 62))
    assert (one.units, one.cost) == (1, Decimal("0.045"))
    assert (two.units, two.cost) == (2, Decimal("0.090"))


def test_request_shape_and_signature(gateway: Gateway, sleeps: list[float]) -> None:
    gateway.default("/", OK)
    result = channel(gateway, sleeps).send(message(template_id="SMS_1234", params={"name": "王芳", "code": "D11"}))
    assert result.outcome is Outcome.SENT and result.provider_message_id == "900619746936498440^0"
    (req,) = gateway.requests
    assert req.method == "GET" and req.path == "/"
    q = {k: v[0] for k, v in req.query.items()}
    assert q["Action"] == "SendSms" and q["Version"] == "2017-05-25" and q["Format"] == "JSON"
    assert q["PhoneNumbers"] == "13800138000" and q["SignName"] == "小鹿茶" and q["TemplateCode"] == "SMS_1234"
    assert json.loads(q["TemplateParam"]) == {"name": "王芳", "code": "D11"}
    assert q["OutId"] == "c42:cust-7:1"
    assert q["SignatureMethod"] == "HMAC-SHA1" and q["SignatureVersion"] == "1.0" and q["AccessKeyId"] == "LTAI-test"
    assert q["Timestamp"].endswith("Z")
    signature = q.pop("Signature")
    assert sign("GET", q, "s3cret") == signature
    assert sign("GET", q, "wrong") != signature


def test_free_text_goes_through_the_content_template_with_opt_out(gateway: Gateway, sleeps: list[float]) -> None:
    gateway.default("/", OK)
    channel(gateway, sleeps).send(message("周末到店领好礼"))
    q = gateway.requests[0]
    assert q.q("TemplateCode") == "SMS_0001"
    assert json.loads(q.q("TemplateParam")) == {"content": "周末到店领好礼" + OPT_OUT}


def test_500_is_retried_with_backoff_and_the_same_out_id(gateway: Gateway, sleeps: list[float]) -> None:
    gateway.script("/", Reply(500, {"Code": "isp.SYSTEM_ERROR"}), Reply(503), OK)
    result = channel(gateway, sleeps, backoff_base=0.2).send(message())
    assert result.outcome is Outcome.SENT and result.attempts == 3
    assert {r.q("OutId") for r in gateway.requests} == {"c42:cust-7:1"}
    assert len({r.q("SignatureNonce") for r in gateway.requests}) == 3
    assert len(sleeps) == 2 and 0.1 <= sleeps[0] <= 0.2 and 0.2 <= sleeps[1] <= 0.4


@pytest.mark.parametrize(
    ("code", "outcome", "attempts"),
    [
        ("isv.MOBILE_NUMBER_ILLEGAL", Outcome.FAILED_PERMANENT, 1),
        ("isv.SMS_TEMPLATE_ILLEGAL", Outcome.FAILED_PERMANENT, 1),
        ("isv.BUSINESS_LIMIT_CONTROL", Outcome.FAILED_RETRYABLE, 1),
    ],
)
def test_provider_codes(gateway: Gateway, sleeps: list[float], code: str, outcome: Outcome, attempts: int) -> None:
    gateway.default("/", Reply(400 if "ILLEGAL" in code else 200, {"Code": code, "Message": "x"}))
    result = channel(gateway, sleeps).send(message())
    assert (result.outcome, result.attempts, result.provider_code) == (outcome, attempts, code)
    assert code in (result.error or "") and result.cost == 0
    if code == "isv.BUSINESS_LIMIT_CONTROL":
        assert result.retry_after and result.retry_after >= 3600 and sleeps == []


def test_a_timeout_is_looked_up_never_blindly_resent(gateway: Gateway, sleeps: list[float]) -> None:
    """No answer in time: the text may have gone out. The channel asks QuerySendDetails; when that cannot answer
    either, the send is in doubt, and the number does not get a second text."""
    gateway.default("/", Reply(200, {"Code": "OK"}, delay=0.8))
    result = channel(gateway, sleeps, max_attempts=2, timeout=0.2).send(message())
    assert result.outcome is Outcome.IN_DOUBT and "aliyun-sms" in (result.error or "")
    actions = [r.q("Action") for r in gateway.requests]
    assert actions.count("SendSms") == 1 and "QuerySendDetails" in actions


def test_missing_sign_name_is_a_clear_failure_without_a_request(gateway: Gateway, sleeps: list[float]) -> None:
    result = channel(gateway, sleeps, options={}).send(message())
    assert result.outcome is Outcome.FAILED_PERMANENT and "sign_name" in (result.error or "")
    assert result.attempts == 0 and gateway.requests == []
