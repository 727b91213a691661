"""Coupon issue through the merchant's own coupon service.

``POST <base_url><path>`` (path option, default ``/coupons/issue``) with JSON
{"template_id", "customer_id", "idempotency_key", "campaign_id"} and the same key in the
``Idempotency-Key`` header; an optional bearer token. 200/201 with ``coupon_id`` is issued; 409 (or
a 200 whose ``status`` is "already_issued") for the same key means an earlier attempt got through,
which is success: the customer has exactly one coupon. 422 naming a field is a permanent failure.
"""

from __future__ import annotations

from typing import Any

from omnicrm.channels.base import Message, SendResult
from omnicrm.channels.gateway import HttpChannel
from omnicrm.channels.retry import Permanent

__all__ = ["CouponChannel"]


class CouponChannel(HttpChannel):
    """Coupons; ``address`` is the customer identifier the coupon service knows; credential ``token``
    (optional); option ``path``."""

    kind = "coupon"
    provider = "coupon-service"
    resend_safe = True  # the service answers a repeated key with the coupon it already issued

    def check(self, message: Message) -> str | None:
        return super().check(message) or (None if message.template_id else "field 'template_id' is empty")

    def payload(self, message: Message) -> dict[str, Any]:
        """The request body for one coupon."""
        return {
            "template_id": message.template_id,
            "customer_id": message.address,
            "idempotency_key": message.idempotency_key,
            "campaign_id": message.campaign_id,
        }

    def attempt(self, message: Message, number: int) -> SendResult:
        headers = {"Idempotency-Key": message.idempotency_key}
        token = self.settings.credentials.get("token")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        path = str(self.settings.options.get("path", "/coupons/issue"))
        response = self.request("POST", path, json=self.payload(message), headers=headers, accept_status=(409,))
        body = self.json_of(response) if response.content else {}
        if response.status_code == 409 and body.get("code", "already_issued") != "already_issued":
            raise Permanent(f"HTTP 409: {response.text[:200]}", code=str(body.get("code")))
        coupon_id = body.get("coupon_id")
        return self.sent(message, None if coupon_id is None else str(coupon_id))
