"""The PII types, their placeholders, and a detection (`Span`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SECRETS: tuple[str, ...] = (
    "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "GITHUB_TOKEN",
    "SLACK_TOKEN",
    "OPENAI_KEY",
    "JWT",
    "PRIVATE_KEY",
    "URL_PASSWORD",
)
PII_TYPES: tuple[str, ...] = ("EMAIL", "PHONE", "IP_ADDRESS", "CREDIT_CARD", "IBAN", "US_SSN", *_SECRETS)
SECRET_TYPES: frozenset[str] = frozenset(_SECRETS)

# When two candidates overlap, the more specific one wins: a whole PEM block over the secrets inside it, a
# JWT over the base64 runs in it, a URL password over the "password@host" that also looks like an e-mail, and
# any structured number over the phone matcher, which is the loosest.
PRIORITY: dict[str, int] = {
    t: i
    for i, t in enumerate(
        (
            "PRIVATE_KEY",
            "JWT",
            "GITHUB_TOKEN",
            "SLACK_TOKEN",
            "OPENAI_KEY",
            "AWS_ACCESS_KEY",
            "AWS_SECRET_KEY",
            "URL_PASSWORD",
            "EMAIL",
            "IBAN",
            "CREDIT_CARD",
            "US_SSN",
            "IP_ADDRESS",
            "PHONE",
        )
    )
}


def placeholder(pii_type: str) -> str:
    """The text that replaces a span of `pii_type`: ``<EMAIL>`` for personal data, ``<SECRET:JWT>`` for secrets."""
    return f"<SECRET:{pii_type}>" if pii_type in SECRET_TYPES else f"<{pii_type}>"


PLACEHOLDER_RE = re.compile("|".join(re.escape(placeholder(t)) for t in PII_TYPES))


@dataclass(frozen=True, slots=True)
class Span:
    """One detection: text[start:end] is personal data or a secret of `type`."""

    start: int
    end: int
    type: str
    text: str
