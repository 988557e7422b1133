"""The per-record front of silver: normalize, then redact PII, every text field. Pure.

Silver stores what this returns, and dedup keys are computed on it, so that two records differing only in
mojibake, line ends or a phone number count as the same record.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import xxhash

from ptdata.silver.dedup import dedup_text
from ptdata.silver.normalize import dedup_key_text, map_text_fields, normalize_text
from ptdata.silver.pii import Allowlist, redact


def prepare_record(regime: str, record: dict[str, Any], allow: Allowlist) -> tuple[dict[str, Any], Counter[str]]:
    """The record with every text field normalized then redacted, and the PII spans redacted per type."""
    counts: Counter[str] = Counter()

    def clean(text: str) -> str:
        redacted, found = redact(normalize_text(text), allow)
        counts.update(found)
        return redacted

    return map_text_fields(regime, record, clean), counts


def exact_key(key_text: str) -> str:
    """The exact-duplicate key: a hash of the dedup key text (case, punctuation and spacing folded)."""
    return xxhash.xxh3_128_hexdigest(key_text.encode("utf-8"))


def dedup_key(regime: str, prepared: dict[str, Any], fields: list[str] | None = None) -> str:
    """The key text a prepared record is deduplicated on (each regime's default: its dedup_fields)."""
    return dedup_key_text(dedup_text(regime, prepared, fields))
