"""refusal: the final reply is or starts with refusal boilerplate ("As an AI language model", ...)."""

from __future__ import annotations

import functools
import re

from pydantic import model_validator

from ptdata.silver.quality.base import Rule

# Matched at the start of the final reply (after leading whitespace), case-insensitive, with ’ read as '.
# Each needs the refusal itself, not just an apology: "I'm sorry to hear that, here is how to fix it" passes.
DEFAULT_REFUSAL_PATTERNS = (
    r"as an ai(?: language)? model\b",
    r"as an (?:ai|artificial intelligence)\b[^.!?\n]{0,80}?\b(?:cannot|can ?not|can't|unable|not able|won't|will not)\b",
    r"i(?:'m| am) sorry,? but\b[^.!?\n]{0,80}?\bi(?: cannot| can ?not| can't| won't| will not|'m unable| am unable"
    r"|'m not able| am not able| must decline)\b",
    r"(?:sorry|i apologi[sz]e),? (?:but )?i(?: cannot| can ?not| can't| won't| will not|'m unable| am unable"
    r"|'m not able| am not able)\b",
    r"(?:unfortunately,? )?i(?: cannot| can ?not| can't| won't| will not|'m unable to| am unable to|'m not able to"
    r"| am not able to) (?:help|assist|provide|fulfil|fulfill|comply|do that|support|answer|engage|create|generate"
    r"|write)\b(?! but)",
    r"i must (?:decline|refuse)\b",
)


class RefusalRule(Rule):
    patterns: tuple[str, ...] = DEFAULT_REFUSAL_PATTERNS

    @model_validator(mode="after")
    def _compiles(self) -> RefusalRule:
        for p in self.patterns:
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"refusal pattern {p!r} is not a regular expression: {e}") from None
        return self


@functools.lru_cache(maxsize=32)
def _refusal_regex(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def is_refusal(text: str, patterns: tuple[str, ...] = DEFAULT_REFUSAL_PATTERNS) -> bool:
    """Whether `text` is, or starts with, refusal boilerplate."""
    return bool(patterns) and _refusal_regex(patterns).match(text.lstrip()[:400].replace("’", "'")) is not None
