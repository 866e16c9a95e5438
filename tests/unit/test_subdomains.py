"""Subdomains: one lowercase RFC 1123 label, no reserved or look-alike names; the default derived from the name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from wopr_platform.core import subdomains
from wopr_platform.fleet.schemas import BotCreate, BotPatch

VALID = ["a", "0", "bot", "support-bot", "a-b-c", "9lives", "x" * 63, "3f2a9c1e-0b7d-4e59-9c1a-2d4e6f8a0b1c"]
INVALID = [
    "",
    "A",
    "Bot",
    "under_score",
    "-lead",
    "trail-",
    "dot.ted",
    "sp ace",
    "x" * 64,
    "ünï",
    "xn--80ak6aa92e",  # punycode: look-alike hosts
    "ab--cd",  # RFC 5891 reserves '--' in the third and fourth place
    "tab\t",
    "new\nline",
]


@pytest.mark.parametrize("value", VALID)
def test_valid_labels_pass(value: str) -> None:
    assert subdomains.problem(value) is None
    assert subdomains.check(value) == value


@pytest.mark.parametrize("value", INVALID, ids=repr)
def test_invalid_labels_are_refused_with_a_reason(value: str) -> None:
    reason = subdomains.problem(value)
    assert reason is not None and "subdomain" in reason
    with pytest.raises(ValueError, match="subdomain"):
        subdomains.check(value)


@pytest.mark.parametrize("value", ["api", "www", "admin", "app", "status", "wopr"])
def test_reserved_names_are_refused(value: str) -> None:
    assert subdomains.problem(value) == f"subdomain {value!r} is reserved"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("support-bot", "support-bot"),
        ("Support_Bot", "support-bot"),
        ("  Mixed  ", "mixed"),
        ("bot_", None),  # would end with '-'
        ("_x", None),
        ("api", None),  # reserved
        ("WWW", None),
        ("xn--abc", None),
        ("a" * 63, "a" * 63),
    ],
)
def test_the_default_comes_from_the_name_when_that_is_a_valid_label(name: str, expected: str | None) -> None:
    assert subdomains.from_name(name) == expected


def test_requests_validate_the_field() -> None:
    assert BotCreate.model_validate({"name": "b", "image": "i", "subdomain": "ok-1"}).subdomain == "ok-1"
    assert BotCreate.model_validate({"name": "b", "image": "i"}).subdomain is None
    assert BotPatch.model_validate({"subdomain": "new"}).changes() == {"subdomain": "new"}
    for bad in ("Nope", "www", 5, "x" * 1000):
        with pytest.raises(ValidationError):
            BotCreate.model_validate({"name": "b", "image": "i", "subdomain": bad})
        with pytest.raises(ValidationError):
            BotPatch.model_validate({"subdomain": bad})
