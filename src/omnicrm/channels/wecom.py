"""WeCom (企业微信) customer messages through a staff member: ``externalcontact/add_msg_template``.

``POST /cgi-bin/externalcontact/add_msg_template?access_token=…`` with ``chat_type`` "single",
``external_userid`` [the customer], optional ``sender`` (the staff member's userid), ``text``
{content} and up to nine ``attachments`` (image, link, miniprogram, video, file). WeCom turns this
into a task the staff member confirms in the app; "sent" means the task exists. A customer WeCom
cannot reach (not a contact, monthly limit reached) comes back in ``fail_list`` and is reported as
refused. The token comes from ``GET /cgi-bin/gettoken?corpid=…&corpsecret=…`` and is cached like
WeChat's, refreshed on errcode 40014, 42001 or 40001.
"""

from __future__ import annotations

from typing import Any

from omnicrm.channels.base import Message, Outcome, SendResult
from omnicrm.channels.gateway import TOKEN_INVALID, TokenChannel
from omnicrm.channels.retry import Permanent, Transient

__all__ = ["WeComCustomerChannel"]

BUSY = {-1, 45009, 45033}
MAX_ATTACHMENTS = 9


class WeComCustomerChannel(TokenChannel):
    """Customer messages; credentials ``corp_id`` and ``corp_secret``; option ``sender`` (staff userid)."""

    kind = "wecom"
    provider = "wecom-externalcontact"

    def _fetch_token(self) -> tuple[str, float]:
        params = {"corpid": self.settings.credential("corp_id"), "corpsecret": self.settings.credential("corp_secret")}
        body = self.json_of(self.request("GET", "/cgi-bin/gettoken", params=params))
        code = int(body.get("errcode", 0))
        if code != 0 or "access_token" not in body:
            if code in BUSY:
                raise Transient(f"token: errcode {code}: {body.get('errmsg')}", code=str(code))
            raise Permanent(f"token: errcode {code}: {body.get('errmsg')} (check corp_id and corp_secret)", str(code))
        return str(body["access_token"]), float(body.get("expires_in", 7200))

    def check(self, message: Message) -> str | None:
        problem = super().check(message)
        if problem:
            return problem
        if not message.body and not message.attachments:
            return "field 'body' is empty and there are no attachments"
        if len(message.attachments) > MAX_ATTACHMENTS:
            return f"field 'attachments' has {len(message.attachments)} items; WeCom takes at most {MAX_ATTACHMENTS}"
        for index, item in enumerate(message.attachments):
            kind = item.get("msgtype")
            if not kind or kind not in item:
                return f"field 'attachments[{index}]' needs 'msgtype' and an object under that name"
        return None

    def payload(self, message: Message) -> dict[str, Any]:
        """The request body for one message."""
        body: dict[str, Any] = {"chat_type": "single", "external_userid": [message.address]}
        sender = self.settings.options.get("sender")
        if sender:
            body["sender"] = sender
        if message.body:
            body["text"] = {"content": message.body}
        if message.attachments:
            body["attachments"] = [dict(item) for item in message.attachments]
        return body

    def attempt(self, message: Message, number: int) -> SendResult:
        payload = self.payload(message)
        path = "/cgi-bin/externalcontact/add_msg_template"
        code, body = self.post_with_token(path, payload)
        text = f"errcode {code}: {body.get('errmsg', '')}"
        if code == 0:
            if message.address in (body.get("fail_list") or []):
                return self.result(
                    message,
                    Outcome.REFUSED,
                    error=f"{self.label}: external_userid in fail_list",
                    provider_code="fail_list",
                )
            return self.sent(message, body.get("msgid"))
        if code in BUSY or code in TOKEN_INVALID:
            raise Transient(text, code=str(code))
        return self.result(message, Outcome.FAILED_PERMANENT, error=f"{self.label}: {text}", provider_code=str(code))
