"""no_assistant_turn: a reply column (sft messages; preference chosen or rejected) without an assistant turn."""

from __future__ import annotations

from typing import Any

from ptdata.core.regimes import regime as regime_spec
from ptdata.silver.quality.base import last_assistant


def has_no_assistant_turn(regime: str, record: dict[str, Any]) -> bool:
    return any(last_assistant(record.get(name)) is None for name in regime_spec(regime).reply_fields)
