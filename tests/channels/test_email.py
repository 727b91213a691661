"""Email through a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

from omnicrm.channels import ChannelSettings, Message, Outcome
from omnicrm.channels.email import SmtpChannel, message_id_for
from tests.mail import Inbox, free_port


def channel(port: int, sleeps: list[float]) -> SmtpChannel:
    settings = ChannelSettings(
        kind="email",
        base_url=f"smtp://127.0.0.1:{port}",
        rate_per_second=0,
        backoff_base=0.01,
        timeout=2,
        options={
            "from_address": "news@shop.example.com",
            "from_name": "小鹿茶",
            "unsubscribe_mailto": "unsub@shop.example.com",
        },
    )
    return SmtpChannel("email", settings, sleep=sleeps.append)


def message(**kw: object) -> Message:
    values: dict[str, object] = {
        "channel": "email",
        "address": "wang.fang@example.org",
        "campaign_id": "c3",
        "recipient": "cust-3",
        "subject": "双11 会员专享",
        "body": "全场满199减30",
        "html": "<p>全场满<b>199</b>减30</p>",
        "unsubscribe_url": "https://crm.shop.example.com/u/abc123",
    }
    values.update(kw)
    return Message(**values)


def test_multipart_with_one_click_unsubscribe(smtp: tuple[Inbox, int], sleeps: list[float]) -> None:
    inbox, port = smtp
    result = channel(port, sleeps).send(message())
    assert result.ok and result.attempts == 1
    (mail,) = inbox.messages
    assert inbox.envelopes == [("news@shop.example.com", ["wang.fang@example.org"])]
    assert mail["Subject"] == "双11 会员专享"
    assert mail.get_content_type() == "multipart/alternative"
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().strip() == "全场满199减30"
    assert "<b>199</b>" in html.get_content()
    unsubscribe = str(mail["List-Unsubscribe"])
    assert unsubscribe.startswith("<https://crm.shop.example.com/u/abc123>, <mailto:unsub@shop.example.com")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["Message-ID"] == message_id_for("c3:cust-3:1", "shop.example.com") == result.provider_message_id


def test_same_key_same_message_id(smtp: tuple[Inbox, int], sleeps: list[float]) -> None:
    inbox, port = smtp
    ch = channel(port, sleeps)
    ch.send(message())
    ch.send(message())
    ch.send(message(step="2"))
    ids = [m["Message-ID"] for m in inbox.messages]
    assert ids[0] == ids[1] != ids[2]


def test_marketing_without_unsubscribe_url_is_refused_before_sending(
    smtp: tuple[Inbox, int], sleeps: list[float]
) -> None:
    inbox, port = smtp
    result = channel(port, sleeps).send(message(unsubscribe_url=None))
    assert result.outcome is Outcome.FAILED_PERMANENT and "unsubscribe_url" in (result.error or "")
    assert inbox.messages == []
    assert channel(port, sleeps).send(message(unsubscribe_url=None, purpose="service")).ok


def test_4xx_is_retried_5xx_is_not(smtp: tuple[Inbox, int], sleeps: list[float]) -> None:
    inbox, port = smtp
    inbox.rcpt_replies["wang.fang@example.org"] = ["451 4.3.0 try again later"]
    result = channel(port, sleeps).send(message())
    assert result.ok and result.attempts == 2 and len(sleeps) == 1
    inbox.rcpt_replies["gone@example.org"] = ["550 5.1.1 no such user"]
    result = channel(port, sleeps).send(message(address="gone@example.org"))
    assert result.outcome is Outcome.FAILED_PERMANENT and result.attempts == 1
    assert "550" in (result.error or "") and "smtp" in (result.error or "")


def test_unreachable_server_fails_after_all_attempts(sleeps: list[float]) -> None:
    result = channel(free_port(), sleeps).send(message())
    assert result.outcome is Outcome.FAILED_RETRYABLE and result.attempts == 4 and len(sleeps) == 3
    assert "gave up after 4 attempts" in (result.error or "")
