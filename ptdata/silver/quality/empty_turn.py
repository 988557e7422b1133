"""empty_turn: a message (other than a tool turn) with blank content, an empty message list, or a blank text
column (an rlvr answer, a document)."""

from __future__ import annotations

from typing import Any

from ptdata.core.regimes import regime as regime_spec
from ptdata.silver.quality.base import blank


def has_empty_turn(regime: str, record: dict[str, Any]) -> bool:
    spec = regime_spec(regime)
    for name in spec.message_fields:
        messages = record.get(name)
        if not messages:
            return True
        # a tool may legitimately return nothing (a command without output)
        if any(blank(m.get("content")) for m in messages if m.get("role") != "tool"):
            return True
    return any(blank(record.get(name)) for name in spec.string_fields)
