"""Stateful stand-ins for providers, served by the recording gateway on 127.0.0.1.

``AliyunSms`` keeps every accepted SendSms (number, OutId, text) and answers QuerySendDetails from
them, as dysmsapi does; ``fail_next`` makes the next calls answer HTTP 500. ``WeChat`` answers the
access-token call and accepts subscription messages, refusing (errcode 43101) the openids it is told
have not subscribed.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.channels.gateways import Gateway, Recorded, Reply


@dataclass
class AliyunSms:
    delay: float = 0.0
    sent: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    late_next: int = 0  # the next sends are carried out but answered only after `late_by` seconds
    late_by: float = 1.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, gateway: Gateway) -> AliyunSms:
        gateway.handle("/", self)
        return self

    def __call__(self, request: Recorded) -> Reply:
        action = request.q("Action")
        if action == "SendSms":
            if self.delay:
                time.sleep(self.delay)
            with self._lock:
                if self.fail_next:
                    self.fail_next -= 1
                    return Reply(500, {"Code": "isp.SYSTEM_ERROR", "Message": "busy"})
                params = json.loads(request.q("TemplateParam"))
                self.sent.append({"phone": request.q("PhoneNumbers"), "out_id": request.q("OutId"),
                                  "text": params.get("content", ""), "day": dt.date.today().strftime("%Y%m%d")})  # fmt: skip
                n = len(self.sent)
                late = self.late_next > 0
                self.late_next -= int(late)
            return Reply(200, {"Code": "OK", "Message": "OK", "BizId": f"biz-{n}", "RequestId": f"r-{n}"},
                         delay=self.late_by if late else 0.0)  # fmt: skip
        if action == "QuerySendDetails":
            phone, day = request.q("PhoneNumber"), request.q("SendDate")
            with self._lock:
                found = [s for s in self.sent if s["phone"] == phone]
            details = [{"PhoneNum": s["phone"], "OutId": s["out_id"], "SendStatus": 3, "Content": s["text"]}
                       for s in found]  # fmt: skip
            return Reply(200, {"Code": "OK", "TotalCount": len(details),
                               "SmsSendDetailDTOs": {"SmsSendDetailDTO": details}, "SendDate": day})  # fmt: skip
        return Reply(400, {"Code": "isv.INVALID_PARAMETERS", "Message": f"unknown Action {action}"})

    def per_phone(self) -> Counter[str]:
        with self._lock:
            return Counter(s["phone"] for s in self.sent)


SUBSCRIBE = "/cgi-bin/message/subscribe/send"


@dataclass
class WeChat:
    refused: set[str] = field(default_factory=set)
    sent: list[dict[str, Any]] = field(default_factory=list)
    late_next: int = 0  # the next messages are delivered but answered only after `late_by` seconds
    late_by: float = 1.0

    def install(self, gateway: Gateway) -> WeChat:
        gateway.default("/cgi-bin/token", Reply(200, {"access_token": "tok", "expires_in": 7200}))
        gateway.handle(SUBSCRIBE, self)
        return self

    def __call__(self, request: Recorded) -> Reply:
        body = request.json()
        if body["touser"] in self.refused:
            return Reply(200, {"errcode": 43101, "errmsg": "user refuse to accept the msg"})
        self.sent.append(body)
        late = self.late_next > 0
        self.late_next -= int(late)
        return Reply(200, {"errcode": 0, "errmsg": "ok", "msgid": len(self.sent)}, delay=self.late_by if late else 0.0)


@dataclass
class CouponService:
    """The merchant's coupon service: one coupon per idempotency key, however often it is asked."""

    issued: dict[str, str] = field(default_factory=dict)
    calls: int = 0

    def install(self, gateway: Gateway) -> CouponService:
        gateway.handle("/coupons/issue", self)
        return self

    def __call__(self, request: Recorded) -> Reply:
        self.calls += 1
        key = request.headers["idempotency-key"]
        body = request.json()
        assert body["idempotency_key"] == key
        known = key in self.issued
        code = self.issued.setdefault(key, f"CP{len(self.issued) + 1:05d}")
        return Reply(200, {"coupon_id": code, "status": "already_issued" if known else "issued"})
