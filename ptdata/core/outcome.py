"""The result of one audit, whatever the layer; assets report it as an AssetCheckResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Outcome:
    """One audit's result: whether it passed, what it measured, and a one-line reason when it did not."""

    name: str
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str = ""
