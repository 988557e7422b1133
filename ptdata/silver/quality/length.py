"""length: the response's length in characters outside [min_chars, max_chars]; the response is each reply (the
last assistant turn of each of the regime's reply columns) or, for a regime without replies, its length_fields."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from ptdata.core.regimes import regime as regime_spec
from ptdata.silver.quality.base import Rule, last_assistant


class LengthRule(Rule):
    min_chars: int = Field(1, ge=0)
    max_chars: int = Field(32_000, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> LengthRule:
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars {self.min_chars} is above max_chars {self.max_chars}")
        return self


def responses(regime: str, record: dict[str, Any]) -> list[str | None]:
    """The texts the length rule measures; the first is the one the reply rules judge."""
    spec = regime_spec(regime)
    if spec.reply_fields:
        return [last_assistant(record.get(name)) for name in spec.reply_fields]
    return [_joined(record.get(name)) for name in spec.length_fields]


def _joined(value: str | list[dict[str, Any]] | None) -> str | None:
    """A text column as it is, a message column's contents one after another."""
    if value is None or isinstance(value, str):
        return value
    return "\n".join(m.get("content") or "" for m in value)


def too_long_or_short(responses: list[str | None], rule: LengthRule) -> bool:
    return any(r is not None and not rule.min_chars <= len(r) <= rule.max_chars for r in responses)
