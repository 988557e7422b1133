"""language: the detected language is not in the source's `allowed` list."""

from __future__ import annotations

from ptdata.silver.langid import UNDETERMINED
from ptdata.silver.quality.base import Rule


class LanguageRule(Rule):
    allowed: tuple[str, ...] | None = None  # ISO 639-1 codes; None allows every language
    allow_und: bool = True  # text too short or too mixed to tell passes unless this is off


def not_allowed(code: str, rule: LanguageRule) -> bool:
    return not (code in rule.allowed or (code == UNDETERMINED and rule.allow_und))
