"""identical_pair: preference chosen and rejected the same after normalization."""

from __future__ import annotations

from typing import Any

from ptdata.silver.normalize import normalize_text


def comparable(messages: list[dict[str, Any]] | None) -> list[tuple[Any, str]]:
    # whitespace differences carry no preference, so runs of whitespace count as one space
    return [(m.get("role"), " ".join(normalize_text(m.get("content") or "").split())) for m in messages or ()]


def identical(record: dict[str, Any]) -> bool:
    return comparable(record.get("chosen")) == comparable(record.get("rejected"))
