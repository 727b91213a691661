"""Email over SMTP with the standard library.

Each message is multipart/alternative (text and, when given, HTML), carries ``List-Unsubscribe:
<https://…>, <mailto:…>`` and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058) for
marketing, and a Message-ID derived from the idempotency key, so a retried send is recognisably the
same message. ``base_url`` is ``smtp://host:port`` (option ``starttls``) or ``smtps://host:port``.
SMTP 4xx replies and network trouble are retried; 5xx replies are permanent.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from urllib.parse import urlsplit

from omnicrm.channels.base import Channel, Message, Outcome, SendResult
from omnicrm.channels.retry import Permanent, Transient

__all__ = ["SmtpChannel", "message_id_for"]


def message_id_for(key: str, domain: str) -> str:
    """A Message-ID that is the same for every attempt of one send."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


class SmtpChannel(Channel):
    """SMTP; options ``from_address``, ``from_name``, ``starttls`` (bool), ``unsubscribe_mailto``
    (address for the mailto: form of List-Unsubscribe); credentials ``username``/``password`` (optional)."""

    kind = "email"
    provider = "smtp"
    needs_unsubscribe_url = True

    @property
    def from_address(self) -> str:
        return str(self.settings.options.get("from_address", ""))

    def check(self, message: Message) -> str | None:
        problem = super().check(message)
        if problem:
            return problem
        if "@" not in message.address:
            return f"field 'address' is not an email address: {message.address!r}"
        if not self.from_address:
            return "channel option 'from_address' is missing"
        if not message.body:
            return "field 'body' (the text part) is empty"
        if message.unsubscribe_url and not message.unsubscribe_url.startswith("https://"):
            return "field 'unsubscribe_url' must be an https:// URL (RFC 8058)"
        return None

    def build(self, message: Message) -> EmailMessage:
        """The MIME message for one send."""
        mail = EmailMessage()
        mail["From"] = formataddr((str(self.settings.options.get("from_name", "")), self.from_address))
        mail["To"] = message.address
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False)
        domain = self.from_address.rsplit("@", 1)[1]
        mail["Message-ID"] = message_id_for(message.idempotency_key, domain)
        mail["X-Omnicrm-Send"] = message.idempotency_key
        if message.unsubscribe_url:
            links = [f"<{message.unsubscribe_url}>"]
            mailto = self.settings.options.get("unsubscribe_mailto")
            if mailto:
                links.append(f"<mailto:{mailto}?subject=unsubscribe%20{message.idempotency_key}>")
            mail["List-Unsubscribe"] = ", ".join(links)
            mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail.set_content(message.body)
        if message.html:
            mail.add_alternative(message.html, subtype="html")
        return mail

    def _connect(self) -> smtplib.SMTP:
        url = urlsplit(self.settings.base_url)
        host = url.hostname or "127.0.0.1"
        timeout = self.settings.timeout
        smtp: smtplib.SMTP
        if url.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(host, url.port or 465, timeout=timeout, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(host, url.port or 25, timeout=timeout)
            if self.settings.options.get("starttls"):
                smtp.starttls(context=ssl.create_default_context())
        username = self.settings.credentials.get("username")
        if username:
            smtp.login(username, self.settings.credential("password"))
        return smtp

    def attempt(self, message: Message, number: int) -> SendResult:
        mail = self.build(message)
        try:
            smtp = self._connect()
        except smtplib.SMTPAuthenticationError as exc:
            reason = f"SMTP {exc.smtp_code}: login refused (check username and password)"
            raise Permanent(reason, str(exc.smtp_code)) from exc
        except smtplib.SMTPResponseException as exc:
            return self._reply(message, exc.smtp_code, exc.smtp_error)
        except (TimeoutError, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError) as exc:
            raise Transient(f"{type(exc).__name__}: {exc}", code="connection") from exc
        try:
            with smtp:
                refused = smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            return self._reply(message, code, reply)
        except smtplib.SMTPResponseException as exc:
            return self._reply(message, exc.smtp_code, exc.smtp_error)
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
            # the message may have been handed over before the line went quiet: not safe to send blindly again
            raise Transient(f"{type(exc).__name__}: {exc}", code="connection", maybe_delivered=True) from exc
        if refused:
            code, reply = next(iter(refused.values()))
            return self._reply(message, code, reply)
        return self.sent(message, mail["Message-ID"])

    def _reply(self, message: Message, code: int, reply: bytes | str) -> SendResult:
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
        if 400 <= code < 500:
            raise Transient(f"SMTP {code}: {text}", code=str(code))
        return self.result(
            message, Outcome.FAILED_PERMANENT, error=f"{self.label}: SMTP {code}: {text}", provider_code=str(code)
        )
