"""The mail adapter against a real SMTP server (aiosmtpd on loopback): what it sends, and how it fails."""

from __future__ import annotations

import pytest

from tests.fixtures.smtp import MailServer
from tests.ports import free_port
from wopr_platform.core.errors import MailUnavailable
from wopr_platform.mail.smtp import Mailer, SmtpConfig


async def test_a_message_arrives_as_plain_text_from_the_configured_sender(smtp: MailServer) -> None:
    mailer = Mailer(SmtpConfig(host=smtp.host, port=smtp.port, sender="platform@wopr.test", tls="off"))
    await mailer.send("someone@example.test", "Hello", "line one\nline two\n")
    [received] = await smtp.wait_for("someone@example.test")
    assert received.message["From"] == "platform@wopr.test" and received.message["Subject"] == "Hello"
    assert received.message["Message-ID"] and received.message["Date"]
    assert received.text == "line one\nline two\n"


async def test_an_unreachable_server_is_mail_unavailable_not_a_crash() -> None:
    mailer = Mailer(SmtpConfig(host="127.0.0.1", port=free_port(), tls="off", timeout=2))
    with pytest.raises(MailUnavailable) as raised:
        await mailer.send("someone@example.test", "Hello", "text")
    assert raised.value.status == 503 and raised.value.details["code"] == "mail_unavailable"


async def test_starttls_against_a_server_without_it_fails_closed(smtp: MailServer) -> None:
    """A server that does not offer STARTTLS is not spoken to in plain text when STARTTLS is asked for."""
    mailer = Mailer(SmtpConfig(host=smtp.host, port=smtp.port, tls="starttls", timeout=5))
    with pytest.raises(MailUnavailable):
        await mailer.send("someone@example.test", "Hello", "text")
    assert smtp.to("someone@example.test") == []
