"""Arrow schemas of the lake tables (CONTRACT.md section 5), in their column order."""

from __future__ import annotations

import pyarrow as pa

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))

COMMON = [
    ("record_id", pa.string()),
    ("source", pa.string()),
    ("source_uri", pa.string()),
    ("source_key", pa.string()),
    ("license", pa.string()),
    ("date", pa.date32()),
    ("content_hash", pa.string()),
]
REGIME_COLUMNS: dict[str, list[tuple[str, pa.DataType]]] = {
    "sft": [("messages", MESSAGES)],
    "preference": [("prompt", MESSAGES), ("chosen", MESSAGES), ("rejected", MESSAGES)],
    "rlvr": [("prompt", MESSAGES), ("answer", pa.string()), ("verifier", pa.string()), ("verifier_args", pa.string())],
    "text": [("text", pa.string())],
}
# fields of the input that the shape did not use, as a JSON object (null when there were none)
META = ("meta", pa.string())


def bronze_schema(regime: str) -> pa.Schema:
    return pa.schema([*COMMON, *REGIME_COLUMNS[regime], META])


QUARANTINE_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("source", pa.string()),
        ("source_uri", pa.string()),
        ("regime", pa.string()),
        ("date", pa.date32()),
        ("reason", pa.string()),  # the error's code, e.g. invalid_json; `error` has the detail
        ("error", pa.string()),
        ("raw", pa.string()),  # the input cut to 4 KiB; bytes that are not UTF-8 shown as \xNN
    ]
)
RAW_LIMIT = 4096

# per bronze record: the keys global dedup joins on (silver/dedup_signatures/date=D/regime=R/)
DEDUP_SIGNATURES_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("source", pa.string()),
        ("regime", pa.string()),
        ("date", pa.date32()),
        ("exact_key", pa.string()),  # hash of the normalized, redacted, folded dedup text
        ("band_keys", pa.list_(pa.uint64())),  # one MinHash LSH key per band; 0 for an empty text
        ("shingles", pa.int32()),  # word n-grams in the dedup text, for the record's weight in reports
        # what silver needs of every earlier record to decide which duplicate survives: only records that pass
        # the quality rules and are not contaminated take part in dedup, so a kept record's dup_of is kept too
        ("reject", pa.string()),  # quality:<rule> or contaminated; null when the record may survive
        ("detail", pa.string()),  # every failed rule, or the eval item and matched n-gram
        ("eval_set", pa.string()),
        ("lang", pa.string()),  # ISO 639-1 code, or und
        ("quality_score", pa.float64()),
        ("pii", pa.string()),  # PII spans redacted, by type, as a JSON object (null when none)
    ]
)

# silver keeps bronze's columns except `meta` (unused input fields, unredacted), and adds what silver measured
SILVER_EXTRA = [("lang", pa.string()), ("quality_score", pa.float64())]


def silver_schema(regime: str) -> pa.Schema:
    return pa.schema([*COMMON, *REGIME_COLUMNS[regime], *SILVER_EXTRA])


REJECTIONS_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("source", pa.string()),
        ("source_uri", pa.string()),
        ("regime", pa.string()),
        ("date", pa.date32()),
        ("reason", pa.string()),  # exact_dup | near_dup | contaminated | quality:<rule>
        ("detail", pa.string()),
        ("dup_of", pa.string()),  # the kept record a duplicate lost to
        ("eval_set", pa.string()),
    ]
)

# gold_sft, gold_text: packed rows (CONTRACT.md section 5)
GOLD_PACKED_SCHEMA = pa.schema(
    [
        ("input_ids", pa.list_(pa.int32())),
        ("loss_mask", pa.list_(pa.int8())),
        ("position_ids", pa.list_(pa.int32())),  # restart at 0 where each sequence starts
        ("seq_lens", pa.list_(pa.int32())),  # the row's sequences, in order (cumulative sums: cu_seqlens)
        ("record_ids", pa.list_(pa.string())),
        ("truncated", pa.list_(pa.string())),  # the records of record_ids cut to fit (packing.overlong: truncate)
        ("date", pa.date32()),
        ("tokens", pa.int32()),
        ("trained_tokens", pa.int32()),
    ]
)
# one preference pair a row: prompt + chosen and prompt + rejected, rendered and masked alike
GOLD_PREFERENCE_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("record_ids", pa.list_(pa.string())),
        ("date", pa.date32()),
        ("chosen_input_ids", pa.list_(pa.int32())),
        ("chosen_loss_mask", pa.list_(pa.int8())),
        ("rejected_input_ids", pa.list_(pa.int32())),
        ("rejected_loss_mask", pa.list_(pa.int8())),
        ("prompt_tokens", pa.int32()),
    ]
)
GOLD_RLVR_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("record_ids", pa.list_(pa.string())),
        ("date", pa.date32()),
        ("prompt_ids", pa.list_(pa.int32())),  # the prompt rendered with the generation prompt
        ("answer", pa.string()),
        ("verifier", pa.string()),
        ("verifier_args", pa.string()),
    ]
)
GOLD_REJECTIONS_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("source", pa.string()),
        ("regime", pa.string()),
        ("date", pa.date32()),
        ("reason", pa.string()),  # too_long | prompt_too_long | no_trained_tokens | special_token_in_content
        ("detail", pa.string()),
    ]
)
