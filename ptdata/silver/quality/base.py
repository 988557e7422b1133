"""What every quality rule shares: its config model's base, and the parts of a record the rules read."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(Strict):
    enabled: bool = True


def blank(s: Any) -> bool:
    return not isinstance(s, str) or not s.strip()


def last_assistant(messages: list[dict[str, Any]] | None) -> str | None:
    for m in reversed(messages or ()):
        if m.get("role") == "assistant":
            return m.get("content") or ""
    return None
