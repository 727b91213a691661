"""SMS replies that withdraw SMS marketing for the phone they came from, at once.

A reply opts out when, after normalising (Unicode NFKC, so full-width ``ＴＤ`` is ``TD``; upper
case; white space and punctuation removed), it is exactly one of ``OPT_OUT_WORDS`` — or when it
contains one of ``OPT_OUT_PHRASES`` anywhere (``请帮我退订``). Single letters match only as the whole
reply, so an ordinary message is never taken for an opt-out.

=========================  ==================================================
exact replies              T, TD, N, QX, QXDY, 0000, STOP, UNSUBSCRIBE, 退, 退订, 取消, 取消订阅, 不要, 拒收
anywhere in the reply      退订, 取消订阅, 拒收, 别再发, 不要再发
=========================  ==================================================
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from omnicrm.consent import ledger
from omnicrm.consent.subjects import customer_of, subject_key
from omnicrm.errors import InputError, Problem
from omnicrm.store.state import StateStore

__all__ = [
    "OPT_OUT_PHRASES", "OPT_OUT_WORDS", "ReplyOutcome", "check_sms_up_token", "handle_sms_reply", "handle_sms_up",
    "opt_out_word", "sms_up_token",
]  # fmt: skip

OPT_OUT_WORDS = frozenset(
    {"T", "TD", "N", "QX", "QXDY", "0000", "STOP", "UNSUBSCRIBE", "退", "退订", "取消", "取消订阅", "不要", "拒收"}
)
OPT_OUT_PHRASES = ("退订", "取消订阅", "拒收", "别再发", "不要再发")

_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)
MAX_REPLY_CHARS = 1000


def opt_out_word(text: str) -> str | None:
    """The opt-out word or phrase ``text`` amounts to, or None if it is not an opt-out."""
    plain = _NOISE.sub("", unicodedata.normalize("NFKC", text)).upper()
    if plain in OPT_OUT_WORDS:
        return plain
    return next((p for p in OPT_OUT_PHRASES if p in plain), None)


@dataclass(frozen=True)
class ReplyOutcome:
    phone: str  # the identifier key of the phone
    opt_out: bool
    matched: str | None
    recorded: bool  # False when the phone had already withdrawn

    def as_dict(self) -> dict[str, object]:
        return {"phone": self.phone, "opt_out": self.opt_out, "matched": self.matched, "recorded": self.recorded}


def handle_sms_reply(
    state: StateStore,
    snapshot: Path | None,
    *,
    phone: str,
    text: str,
    by: str,
    received_at: datetime | None = None,
) -> ReplyOutcome:
    """Withdraw SMS marketing for ``phone`` if ``text`` is an opt-out; other replies record nothing."""
    if not phone.strip():
        raise InputError("the reply has no phone number", [Problem("give the sender's mobile number", "phone")])
    if len(text) > MAX_REPLY_CHARS:
        raise InputError("the reply is too long", [Problem(f"at most {MAX_REPLY_CHARS} characters", "text")])
    key = subject_key(f"phone::{phone}", "sms", field="phone")
    matched = opt_out_word(text)
    if matched is None:
        return ReplyOutcome(key, False, None, False)
    done = ledger.record(
        state, subject=key, channel="sms", purpose="marketing", granted=False, source="sms_reply", by=by,
        detail=text[:200], customer_id=customer_of(snapshot, key), at=received_at, only_if_changed=True,
    )  # fmt: skip
    return ReplyOutcome(key, True, matched, done is not None)


# --- Alibaba Cloud SMS: replies pushed by the provider (SmsUp, HTTP batch push) -------------------

CHINA = timezone(timedelta(hours=8))


def sms_up_token(secret: str) -> str:
    """The secret path part of the SmsUp push address: the provider signs nothing, so the address is the key."""
    return hmac.new(secret.encode(), b"omnicrm aliyun SmsUp push v1", hashlib.sha256).hexdigest()[:32]


def check_sms_up_token(secret: str, token: str) -> bool:
    return hmac.compare_digest(token, sms_up_token(secret))


def handle_sms_up(
    state: StateStore, snapshot: Path | None, items: object, *, by: str
) -> tuple[list[ReplyOutcome], list[Problem]]:
    """Apply a pushed batch ``[{phone_number, content, send_time, ...}, ...]`` (send_time in China time).

    Each good item is applied (opt-outs withdraw at once; applying one twice changes nothing, so the provider's
    re-push after an error is harmless); each bad one is reported by its index and field.
    """
    if not isinstance(items, list):
        return [], [Problem("expected a JSON array of replies", field="body")]
    outcomes: list[ReplyOutcome] = []
    problems: list[Problem] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(Problem("expected an object", index=index))
            continue
        phone, text, sent = item.get("phone_number"), item.get("content"), item.get("send_time")
        if not isinstance(phone, str) or not phone.strip():
            problems.append(Problem("missing the sender's number", field="phone_number", index=index))
            continue
        if not isinstance(text, str):
            problems.append(Problem("missing the reply's text", field="content", index=index))
            continue
        try:
            at = None if not sent else datetime.strptime(str(sent), "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)
            outcomes.append(handle_sms_reply(state, snapshot, phone=phone, text=text, by=by, received_at=at))
        except ValueError:
            problems.append(Problem(f"not 'YYYY-MM-DD HH:MM:SS': {sent!r}", field="send_time", index=index))
        except InputError as exc:
            problems.extend(Problem(p.reason, field=p.field, index=index) for p in exc.problems)
    return outcomes, problems
