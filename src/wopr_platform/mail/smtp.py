"""The mail adapter: the only module that speaks SMTP (over aiosmtplib).

It sends plain-text messages and speaks the project's errors: `MailUnavailable` when the server cannot be reached,
refuses the login or the message. It keeps no connection open between messages (mail is rare here).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

import aiosmtplib

from wopr_platform.core.errors import MailUnavailable

log = logging.getLogger(__name__)

TlsMode = Literal["starttls", "tls", "off"]
DEFAULT_PORTS: dict[TlsMode, int] = {"starttls": 587, "tls": 465, "off": 25}


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int | None = None
    username: str | None = None
    password: str | None = None
    sender: str = "wopr-platform@localhost"
    tls: TlsMode = "starttls"
    timeout: float = 10.0


class Mailer:
    """Sends mail through one SMTP server."""

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config
        self.port = config.port or DEFAULT_PORTS[config.tls]

    async def send(self, to: str, subject: str, text: str) -> None:
        """Send one plain-text message to `to`; MailUnavailable when it was not accepted by the server."""
        config = self._config
        message = EmailMessage()
        message["From"] = config.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=config.sender.rpartition("@")[2] or None)
        message.set_content(text)
        try:
            await aiosmtplib.send(
                message,
                hostname=config.host,
                port=self.port,
                username=config.username,
                password=config.password,
                use_tls=config.tls == "tls",
                start_tls=config.tls == "starttls",
                timeout=config.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as err:
            log.warning("mail not sent", extra={"smtpHost": config.host, "reason": type(err).__name__})
            raise MailUnavailable(
                "the mail server did not accept the message", details={"reason": type(err).__name__}
            ) from err
