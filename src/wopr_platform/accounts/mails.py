"""What the platform's mails say: a subject and a plain-text body, with the one link each carries."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote


def _duration(ttl: timedelta) -> str:
    minutes = int(ttl.total_seconds() // 60)
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return f"{days} day{'s' if days != 1 else ''}"
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minutes"


def password_reset(platform_url: str, token: str, ttl: timedelta) -> tuple[str, str]:
    link = f"{platform_url}/ui/reset-password?token={quote(token)}"  # the web console's page
    return (
        "Set a new WOPR password",
        "Someone asked to set a new password for the WOPR account of this address.\n\n"
        f"To choose one, open this link within {_duration(ttl)}; it works once:\n\n{link}\n\n"
        "If it was not you, ignore this mail: your password stays as it is.\n",
    )


def invitation(platform_url: str, token: str, tenant: str, role: str, ttl: timedelta) -> tuple[str, str]:
    link = f"{platform_url}/ui/invitations/accept?token={quote(token)}"  # the web console's page
    return (
        f"You are invited to {tenant} on WOPR",
        f"You are invited to join the tenant {tenant} on WOPR as {role}.\n\n"
        f"To accept, open this link within {_duration(ttl)} and sign in or sign up with this address; it works "
        f"once:\n\n{link}\n\nIf you did not expect it, ignore this mail.\n",
    )
