"""WeChat subscription messages for official accounts and mini-programs.

A mini-program sends through ``POST /cgi-bin/message/subscribe/send?access_token=…`` with
``touser`` (openid), ``template_id``, ``page``, ``data`` ({key: {"value": …}}), ``miniprogram_state``
and ``lang``; an official account through ``/cgi-bin/message/subscribe/bizsend`` (``page`` is a URL
there). Each one-time subscription allows one message: errcode 43101 means the person refused, or the
subscription was used up or never given, and is reported as ``refused`` and never retried.

The access token comes from ``GET /cgi-bin/token?grant_type=client_credential&appid=…&secret=…``,
is cached until shortly before it expires and fetched anew when WeChat answers 40001, 40014 or 42001.

Template messages (``/cgi-bin/message/template/send``) are for service notices only and WeChat
blocks marketing there, so this module has no way to send one: the product offers only
subscription messages for campaigns and journeys.
"""

from __future__ import annotations

from typing import Any

from omnicrm.channels.base import Message, Outcome, SendResult
from omnicrm.channels.gateway import TOKEN_INVALID, TokenChannel
from omnicrm.channels.retry import Permanent, Transient

__all__ = ["WeChatSubscribeChannel", "wechat_lang"]

REFUSED = 43101
BUSY = {-1, 45009, 45011}
LANGS = {"zh": "zh_CN", "zh-cn": "zh_CN", "en": "en_US", "zh-hk": "zh_HK", "zh-tw": "zh_TW"}


def wechat_lang(language: str) -> str:
    """WeChat's language code for one of ours (zh → zh_CN, en → en_US)."""
    return LANGS.get(language.lower().replace("_", "-"), "zh_CN")


class WeChatSubscribeChannel(TokenChannel):
    """Subscription messages; options: ``app`` = "mini_program" (default) or "official_account",
    ``miniprogram_state`` (formal, trial, developer); credentials ``app_id`` and ``app_secret``."""

    kind = "wechat"
    provider = "wechat-subscribe"

    def _fetch_token(self) -> tuple[str, float]:
        response = self.request(
            "GET",
            "/cgi-bin/token",
            params={
                "grant_type": "client_credential",
                "appid": self.settings.credential("app_id"),
                "secret": self.settings.credential("app_secret"),
            },
        )
        body = self.json_of(response)
        if "access_token" not in body:
            code = body.get("errcode")
            if code in BUSY:
                raise Transient(f"token: errcode {code}: {body.get('errmsg')}", code=str(code))
            raise Permanent(f"token: errcode {code}: {body.get('errmsg')} (check app_id and app_secret)", str(code))
        return str(body["access_token"]), float(body.get("expires_in", 7200))

    def check(self, message: Message) -> str | None:
        return super().check(message) or (None if message.template_id else "field 'template_id' is empty")

    def payload(self, message: Message) -> dict[str, Any]:
        """The request body for one message."""
        body: dict[str, Any] = {
            "touser": message.address,
            "template_id": message.template_id,
            "data": {key: {"value": value} for key, value in message.params.items()},
        }
        if message.page:
            body["page"] = message.page
        if self.settings.options.get("app", "mini_program") == "mini_program":
            body["miniprogram_state"] = self.settings.options.get("miniprogram_state", "formal")
            body["lang"] = wechat_lang(message.language)
        return body

    @property
    def path(self) -> str:
        app = self.settings.options.get("app", "mini_program")
        return "/cgi-bin/message/subscribe/send" if app == "mini_program" else "/cgi-bin/message/subscribe/bizsend"

    def attempt(self, message: Message, number: int) -> SendResult:
        payload = self.payload(message)
        code, body = self.post_with_token(self.path, payload)
        text = f"errcode {code}: {body.get('errmsg', '')}"
        if code == 0:
            msgid = body.get("msgid")
            return self.sent(message, None if msgid is None else str(msgid))
        if code == REFUSED:
            return self.result(message, Outcome.REFUSED, error=f"{self.label}: {text}", provider_code=str(code))
        if code in BUSY or code in TOKEN_INVALID:
            raise Transient(text, code=str(code))
        return self.result(message, Outcome.FAILED_PERMANENT, error=f"{self.label}: {text}", provider_code=str(code))
