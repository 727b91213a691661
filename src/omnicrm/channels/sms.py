"""SMS through Alibaba Cloud's SendSms API (dysmsapi, version 2017-05-25).

Request shape: an RPC-style call, all parameters in the query string, signed with HMAC-SHA1
(signature version 1.0) over the sorted, percent-encoded parameters. The message goes out as
``TemplateCode`` + ``TemplateParam`` (JSON); ``SignName`` becomes the 【signature】 the operator shows;
``OutId`` carries our idempotency key so every attempt and the delivery receipt name the same send.

Marketing texts must carry the sender's signature and an easy refusal: ``prepare_text`` adds
【SignName】 and "回T退订" when absent, once. Operators bill a text of up to 70 characters as one
message and longer texts per 67 characters; the count includes the signature and the opt-out text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from omnicrm.channels.base import Message, Outcome, SendResult
from omnicrm.channels.gateway import HttpChannel
from omnicrm.channels.retry import Permanent, Transient

__all__ = ["OPT_OUT", "AliyunSmsChannel", "billing_units", "prepare_text", "sign"]

OPT_OUT = "回T退订"
SINGLE_LIMIT = 70
PART_SIZE = 67

# Provider codes that mean "try again later" (seconds to wait) rather than "never".
RETRY_LATER: dict[str, float] = {
    "isv.BUSINESS_LIMIT_CONTROL": 3600.0,  # per-number minute/hour/day flow control
    "isv.DAY_LIMIT_CONTROL": 86400.0,
    "isv.AMOUNT_NOT_ENOUGH": 3600.0,  # account balance: a person has to top up
    "isv.OUT_OF_SERVICE": 3600.0,
    "Throttling.User": 1.0,
    "isp.SYSTEM_ERROR": 1.0,
    "isp.RAM_PERMISSION_DENY": 3600.0,
}
# Codes where the person's number refuses marketing (blacklisted / unsubscribed).
CHINA = ZoneInfo("Asia/Shanghai")
REFUSED = {"isv.BLACK_KEY_CONTROL_LIMIT_PHONE", "isv.PHONE_IN_BLACKLIST", "isv.MOBILE_IN_BLACKLIST"}


def prepare_text(body: str, sign_name: str, *, marketing: bool = True) -> str:
    """The full text as the person will see it: 【SignName】 in front and, for marketing, the opt-out at the end."""
    text = body.strip()
    signature = f"【{sign_name}】"
    if signature not in text:
        text = signature + text
    if marketing and "退订" not in text:
        text = text + OPT_OUT
    return text


def billing_units(text: str) -> int:
    """Billed messages for one text: 1 up to 70 characters, otherwise one per 67 characters."""
    length = len(text)
    return 1 if length <= SINGLE_LIMIT else math.ceil(length / PART_SIZE)


def _encode(value: str) -> str:
    """RFC 3986 percent-encoding as the RPC signature wants it (space %20, '*' %2A, '~' kept)."""
    return quote(value, safe="~")


def canonical_query(params: Mapping[str, str]) -> str:
    """Parameters sorted by name, names and values percent-encoded, joined with '&'."""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(params.items()))


def sign(method: str, params: Mapping[str, str], secret: str) -> str:
    """Signature = Base64(HMAC-SHA1(secret + '&', METHOD & %2F & encode(canonical query)))."""
    string_to_sign = f"{method}&{_encode('/')}&{_encode(canonical_query(params))}"
    digest = hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class AliyunSmsChannel(HttpChannel):
    """SendSms; options: ``sign_name`` (required), ``text_template_code`` (a template that is just
    ``${content}``, used for free texts), ``region`` (default cn-hangzhou)."""

    kind = "sms"
    provider = "aliyun-sms"

    def check(self, message: Message) -> str | None:
        problem = super().check(message)
        if problem:
            return problem
        if not self.settings.options.get("sign_name"):
            return "channel option 'sign_name' is missing"
        if not message.template_id and not self.settings.options.get("text_template_code"):
            return "field 'template_id' is empty and option 'text_template_code' is not set"
        if not message.body:
            return "field 'body' (the rendered text, for billing and the opt-out check) is empty"
        return None

    def units_of(self, message: Message) -> int:
        return billing_units(self.text_of(message))

    def text_of(self, message: Message) -> str:
        """The text as delivered: signature and opt-out included."""
        return prepare_text(message.body, self.settings.options["sign_name"], marketing=message.purpose == "marketing")

    def query_for(self, message: Message) -> dict[str, str]:
        """The SendSms parameters (without signature fields) for one message."""
        sign_name = self.settings.options["sign_name"]
        if message.template_id:
            template, template_params = message.template_id, dict(message.params)
        else:
            # The operator adds 【SignName】 from SignName; the content carries the rest.
            content = self.text_of(message).replace(f"【{sign_name}】", "", 1)
            template, template_params = self.settings.options["text_template_code"], {"content": content}
        return {
            "Action": "SendSms",
            "Version": "2017-05-25",
            "RegionId": self.settings.options.get("region", "cn-hangzhou"),
            "PhoneNumbers": message.address,
            "SignName": sign_name,
            "TemplateCode": template,
            "TemplateParam": json.dumps(template_params, ensure_ascii=False, separators=(",", ":")),
            "OutId": message.idempotency_key,
        }

    def call(self, params: dict[str, str]) -> dict[str, Any]:
        """One signed RPC call; business errors come back as HTTP 400 with a Code, so they are read, not raised."""
        params = {
            **params,
            "AccessKeyId": self.settings.credential("access_key_id"),
            "Format": "JSON",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": uuid.uuid4().hex,
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        params["Signature"] = sign("GET", params, self.settings.credential("access_key_secret"))
        response = self.request("GET", "/", params=params, accept_status=(400, 403, 404))
        body = self.json_of(response)
        body.setdefault("_status", response.status_code)
        return body

    def was_sent(self, message: Message) -> bool | None:
        """QuerySendDetails for the number on the send's day (China time) and the day before: is our OutId there?"""
        today = datetime.now(CHINA).date()
        try:
            for day in (today, today - timedelta(days=1)):
                page = 1
                while True:
                    body = self.call(
                        {
                            "Action": "QuerySendDetails", "Version": "2017-05-25",
                            "RegionId": self.settings.options.get("region", "cn-hangzhou"),
                            "PhoneNumber": message.address, "SendDate": day.strftime("%Y%m%d"),
                            "PageSize": "50", "CurrentPage": str(page),
                        }
                    )  # fmt: skip
                    if body.get("Code") != "OK":
                        return None
                    details = (body.get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []
                    if any(d.get("OutId") == message.idempotency_key for d in details):
                        return True
                    if page * 50 >= int(body.get("TotalCount") or 0):
                        break
                    page += 1
        except (Transient, Permanent):
            return None
        return False

    def attempt(self, message: Message, number: int) -> SendResult:
        body = self.call(self.query_for(message))
        response_status = body.pop("_status")
        code = str(body.get("Code", ""))
        text = f"{code}: {body.get('Message', '')}"
        if code == "OK":
            return self.sent(message, body.get("BizId"), units=self.units_of(message))
        if code in RETRY_LATER:
            raise Transient(text, retry_after=RETRY_LATER[code], code=code)
        if code in REFUSED:
            return self.result(message, Outcome.REFUSED, error=f"{self.label}: {text}", provider_code=code)
        if not code:
            raise Transient(f"answer without Code (HTTP {response_status})", code="bad_answer")
        return self.result(message, Outcome.FAILED_PERMANENT, error=f"{self.label}: {text}", provider_code=code)
