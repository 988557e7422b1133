"""The table catalog: every lake table once, with its layer, Arrow schema, pandera schema and partitioning.

Paths, asset keys, the SQL models' `ref()` and the schema gates are all derived from here (ARCHITECTURE.md). A
table is hive-partitioned by day (`<lake>/<layer>/<table>/date=D/part-0.parquet`) unless it is unpartitioned; a
table several assets write (the quarantine and rejection tables) has one more level, `regime=R`, so that each
asset owns its files. Record tables (bronze_<regime>, silver_<regime>) take their columns from the regime
registry (ptdata/core/regimes.py), so a registered regime has its tables without another line here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pandera.polars as pdp
import polars as pl
import pyarrow as pa

from ptdata.core.lake import Lake, TablePartition
from ptdata.core.regimes import MESSAGES, regime_names
from ptdata.core.regimes import regime as regime_spec

COMMON = [
    ("record_id", pa.string()),
    ("source", pa.string()),
    ("source_uri", pa.string()),
    ("source_key", pa.string()),
    ("license", pa.string()),
    ("date", pa.date32()),
    ("content_hash", pa.string()),
]
# fields of the input that the shape did not use, as a JSON object (null when there were none)
META = ("meta", pa.string())


def bronze_schema(regime: str) -> pa.Schema:
    return pa.schema([*COMMON, *regime_spec(regime).columns, META])


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


def prepared_schema(regime: str) -> pa.Schema:
    """A bronze record with its text prepared (normalized, redacted) and the content hash of that text: written
    once by dedup_signatures, read by silver and by the verification of later partitions' near duplicates."""
    return pa.schema([*COMMON, *regime_spec(regime).columns])


def silver_schema(regime: str) -> pa.Schema:
    return pa.schema([*COMMON, *regime_spec(regime).columns, *SILVER_EXTRA])


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

# the gold tables of regimes that pack (sft, text): packed rows
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
# the prompt layout (rlvr): one prompt a row, rendered with the generation prompt, and the regime's other columns
# (answer, verifier, verifier_args) for whoever scores the completions
_PROMPT_ROW = [
    ("record_id", pa.string()),
    ("record_ids", pa.list_(pa.string())),
    ("date", pa.date32()),
    ("prompt_ids", pa.list_(pa.int32())),
]


def gold_schema(regime: str) -> pa.Schema:
    """The gold table's schema, by the regime's gold layout."""
    spec = regime_spec(regime)
    if spec.packs:
        return GOLD_PACKED_SCHEMA
    if spec.gold_layout == "pair":
        return GOLD_PREFERENCE_SCHEMA
    return pa.schema([*_PROMPT_ROW, *((n, t) for n, t in spec.columns if n not in spec.message_fields)])


def token_column(regime: str) -> str:
    """The column of a gold row whose length is its tokens (the release's shards and statistics)."""
    layout = regime_spec(regime).gold_layout
    return {"chat": "input_ids", "document": "input_ids", "pair": "chosen_input_ids", "prompt": "prompt_ids"}[layout]


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

STAGE_RUNS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("asset", pa.string()),
        ("first_partition", pa.date32()),
        ("last_partition", pa.date32()),
        ("partitions", pa.int32()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("seconds", pa.float64()),
        ("cpu_seconds", pa.float64()),
        ("records_in", pa.int64()),
        ("rows_out", pa.int64()),
        ("tokens", pa.int64()),
        ("usd", pa.float64()),
        ("usd_per_core_hour", pa.float64()),
    ]
)
# word n-grams of the registered eval sets (the configured n is in the file's schema metadata)
EVAL_INDEX_SCHEMA = pa.schema(
    [
        ("ngram_hash", pa.uint64()),
        ("ngram_len", pa.int32()),
        ("eval_set", pa.string()),
        ("item_id", pa.string()),
        ("ngram_text", pa.string()),
    ]
)

# ------------------------------------------------------------------------------------------------ pandera

HEX32 = r"^[0-9a-f]{32}$"
CANONICAL_ROLES = ["system", "user", "assistant", "tool"]
REJECTION_REASON = r"^(exact_dup|near_dup|contaminated|quality:[a-z_]+)$"
GOLD_REJECTION_REASONS = ["too_long", "prompt_too_long", "no_trained_tokens", "special_token_in_content"]
_MESSAGES_DTYPE = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
_COLUMN_CHECKS = {"non_empty": pdp.Check.str_length(min_value=1), "json_object": pdp.Check.str_startswith("{")}


def _valid_messages(data: pdp.PolarsData) -> pl.LazyFrame:
    col = pl.col(data.key)
    return data.lazyframe.select(
        (col.list.len() > 0)
        & col.list.eval(pl.element().struct.field("role").is_in(CANONICAL_ROLES)).list.all()
        & col.list.eval(pl.element().struct.field("content").is_not_null()).list.all()
    )


def _messages_column() -> pdp.Column:
    return pdp.Column(
        _MESSAGES_DTYPE,
        checks=pdp.Check(_valid_messages, error="messages must be non-empty with roles system/user/assistant/tool"),
        nullable=False,
    )


def record_pandera(layer: str, regime: str, sources: Sequence[str], date: dt.date) -> pdp.DataFrameSchema:
    """The schema of a bronze_<regime> or silver_<regime> partition of `date` from `sources`: silver has no `meta`
    (unused input fields, never redacted) and has the language and quality score silver measured."""
    spec = regime_spec(regime)
    columns: dict[str, pdp.Column] = {
        "record_id": pdp.Column(pl.String, pdp.Check.str_matches(HEX32), nullable=False),
        "source": pdp.Column(pl.String, pdp.Check.isin(list(sources)), nullable=False),
        "source_uri": pdp.Column(pl.String, pdp.Check.str_length(min_value=1), nullable=False),
        "source_key": pdp.Column(pl.String, nullable=True),
        "license": pdp.Column(pl.String, pdp.Check.str_length(min_value=1), nullable=False),
        "date": pdp.Column(pl.Date, pdp.Check.eq(date), nullable=False),
        "content_hash": pdp.Column(pl.String, pdp.Check.str_matches(HEX32), nullable=False),
    }
    for name, kind in spec.columns:
        if kind == MESSAGES:
            columns[name] = _messages_column()
        else:
            check = spec.column_checks.get(name)
            columns[name] = pdp.Column(pl.String, _COLUMN_CHECKS[check] if check else None, nullable=False)
    if layer == "silver":
        columns["lang"] = pdp.Column(pl.String, pdp.Check.str_matches(r"^([a-z]{2,3}|und)$"), nullable=False)
        columns["quality_score"] = pdp.Column(pl.Float64, pdp.Check.in_range(0.0, 1.0), nullable=False)
    else:
        columns["meta"] = pdp.Column(pl.String, pdp.Check.str_startswith("{"), nullable=True)
    return pdp.DataFrameSchema(columns, strict=True, ordered=True, name=f"{layer}_{regime}")


QUARANTINE_PANDERA = pdp.DataFrameSchema(
    {
        "record_id": pdp.Column(pl.String, pdp.Check.str_matches(HEX32), nullable=False),
        "source": pdp.Column(pl.String, nullable=False),
        "source_uri": pdp.Column(pl.String, nullable=False),
        "regime": pdp.Column(pl.String, nullable=False),
        "date": pdp.Column(pl.Date, nullable=False),
        "reason": pdp.Column(pl.String, pdp.Check.str_matches(r"^[a-z0-9_]+$"), nullable=False),
        "error": pdp.Column(pl.String, nullable=False),
        "raw": pdp.Column(pl.String, pdp.Check.str_length(max_value=4 * RAW_LIMIT), nullable=True),
    },
    strict=True,
    ordered=True,
    name="bronze_quarantine",
)
REJECTIONS_PANDERA = pdp.DataFrameSchema(
    {
        "record_id": pdp.Column(pl.String, pdp.Check.str_matches(HEX32), nullable=False),
        "source": pdp.Column(pl.String, nullable=False),
        "source_uri": pdp.Column(pl.String, nullable=False),
        "regime": pdp.Column(pl.String, nullable=False),
        "date": pdp.Column(pl.Date, nullable=False),
        "reason": pdp.Column(pl.String, pdp.Check.str_matches(REJECTION_REASON), nullable=False),
        "detail": pdp.Column(pl.String, nullable=True),
        "dup_of": pdp.Column(pl.String, pdp.Check.str_matches(HEX32), nullable=True),
        "eval_set": pdp.Column(pl.String, nullable=True),
    },
    checks=[
        # a duplicate names the record it lost to; nothing else does
        pdp.Check(
            lambda d: d.lazyframe.select(
                pl.col("reason").is_in(["exact_dup", "near_dup"]) == pl.col("dup_of").is_not_null()
            ),
            error="dup_of is set exactly for exact_dup and near_dup rows",
        ),
        pdp.Check(
            lambda d: d.lazyframe.select((pl.col("reason") == "contaminated") == pl.col("eval_set").is_not_null()),
            error="eval_set is set exactly for contaminated rows",
        ),
    ],
    strict=True,
    ordered=True,
    name="silver_rejections",
)
GOLD_REJECTIONS_PANDERA = pdp.DataFrameSchema(
    {
        "record_id": pdp.Column(pl.String, pdp.Check.str_matches(HEX32), nullable=False),
        "source": pdp.Column(pl.String, nullable=False),
        "regime": pdp.Column(pl.String, nullable=False),
        "date": pdp.Column(pl.Date, nullable=False),
        "reason": pdp.Column(pl.String, pdp.Check.isin(GOLD_REJECTION_REASONS)),
        "detail": pdp.Column(pl.String, nullable=True),
    },
    strict=True,
    ordered=True,
    name="gold_rejections",
)

# ------------------------------------------------------------------------------------------------ tables


@dataclass(frozen=True)
class Table:
    name: str
    layer: str
    # None: not a Parquet table (the tokenizer's files), or one whose columns its query decides (a SQL model)
    schema: pa.Schema | None
    partitioned: bool = True  # daily, `date=D`
    by_regime: bool = False  # one `regime=R` part per writing asset below the date
    pandera: pdp.DataFrameSchema | None = None  # record tables: record_pandera, which needs sources and date
    description: str = ""

    @property
    def relpath(self) -> str:
        return f"{self.layer}/{self.name}"

    def url(self, lake: Lake) -> str:
        """The table's folder, as metadata shows it."""
        return f"{lake.url}/{self.relpath}"

    def part(self, date: dt.date | None = None, regime: str | None = None) -> TablePartition:
        """The partition (of `date`, and of `regime` for a table by regime) whose files one writer owns."""
        if self.partitioned != (date is not None) or self.by_regime != (regime is not None):
            raise ValueError(
                f"{self.name}: a partition is named by {'a date' if self.partitioned else 'no date'}"
                f"{' and a regime' if self.by_regime else ''}"
            )
        return TablePartition(self.layer, self.name, date, regime)


BRONZE_QUARANTINE = Table(
    "bronze_quarantine",
    "bronze",
    QUARANTINE_SCHEMA,
    by_regime=True,
    pandera=QUARANTINE_PANDERA,
    description="Every input record that could not be read or mapped, with its reason and the raw input.",
)
DEDUP_SIGNATURES = Table("dedup_signatures", "silver", DEDUP_SIGNATURES_SCHEMA, by_regime=True)
EVAL_INDEX = Table("eval_index", "silver", EVAL_INDEX_SCHEMA, partitioned=False)
SILVER_REJECTIONS = Table(
    "silver_rejections",
    "silver",
    REJECTIONS_SCHEMA,
    by_regime=True,
    pandera=REJECTIONS_PANDERA,
    description="Every bronze record silver did not keep: its reason, the kept record a duplicate lost to, the eval "
    "set a contaminated one matched.",
)
TOKENIZER = Table("tokenizer", "gold", None, partitioned=False)
GOLD_REJECTIONS = Table(
    "gold_rejections",
    "gold",
    GOLD_REJECTIONS_SCHEMA,
    by_regime=True,
    pandera=GOLD_REJECTIONS_PANDERA,
    description="Every silver record gold could not use (too long for seq_len, a prompt over max_prompt_tokens), "
    "with why.",
)
STAGE_RUNS = Table("stage_runs", "ops", STAGE_RUNS_SCHEMA, partitioned=False)

# a rollout as the dataplane logs it (ptdata/rl/dataplane/records.py checks what a client posts)
ROLLOUT_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),  # intake order, from 0: the log's own key
        ("rollout_id", pa.string()),
        ("prompt_id", pa.string()),
        ("group_id", pa.string()),
        ("sample_index", pa.int32()),
        ("policy_version", pa.int64()),
        ("oldest_version", pa.int64()),
        ("prompt_ids", pa.list_(pa.int32())),
        ("completion_ids", pa.list_(pa.int32())),
        ("token_policy_versions", pa.list_(pa.int64())),
        ("logprobs", pa.list_(pa.float32())),
        ("text", pa.string()),
        ("status", pa.string()),
        ("reward", pa.float64()),  # the client's; null when the server verifies
        ("timings", pa.map_(pa.string(), pa.float64())),
        ("received_at", pa.float64()),
    ]
)
ROLLOUTS = Table(
    "rollouts",
    "rl",
    pa.schema([*ROLLOUT_SCHEMA, pa.field("date", pa.date32())]),
    description="The rollouts the dataplane took in on the day (UTC), from its closed segments, as generated: "
    "token ids, policy versions, the client's reward.",
)
VERIFIED_ROLLOUTS = Table(
    "verified_rollouts",
    "rl",
    pa.schema([*ROLLOUTS.schema, pa.field("reward_source", pa.string()), pa.field("verifier_error", pa.string())]),
    description="rollouts with the reward each was trained on: the client's, else the dataplane's verdict "
    "(reward_source client | server; null while unverified), and the verifier's error kind.",
)
ROLLOUT_GROUPS = Table(
    "rollout_groups",
    "rl",
    pa.schema(
        [
            ("group_id", pa.string()),
            ("prompt_id", pa.string()),
            # acknowledged (trained on), stale, failed, zero_variance (evicted), or open (still in the buffer)
            ("outcome", pa.string()),
            ("rollouts", pa.int32()),
            ("oldest_version", pa.int64()),
            ("newest_version", pa.int64()),
            ("staleness_served", pa.int64()),  # the most of its rollouts' when it was acknowledged
            ("mean_reward", pa.float64()),
            ("date", pa.date32()),
        ]
    ),
    description="Each prompt group that began on the day (its first rollout), with what became of it, from the "
    "dataplane's control log: trained on (with the staleness it was served at) or evicted and why.",
)


def release_folder(lake: Lake, name: str) -> str:
    """Where the release `name` is published: a folder of files, not a table (ptdata/release/build.py)."""
    return f"{lake.root}/releases/{name}"


def bronze(regime: str) -> Table:
    return Table(f"bronze_{regime}", "bronze", bronze_schema(regime))


def silver(regime: str) -> Table:
    return Table(f"silver_{regime}", "silver", silver_schema(regime))


def prepared(regime: str) -> Table:
    return Table(f"prepared_{regime}", "silver", prepared_schema(regime))


def gold(regime: str) -> Table:
    return Table(f"gold_{regime}", "gold", gold_schema(regime))


def mart(name: str, partitioned: bool) -> Table:
    """A SQL model's table (dbt_like_sql/<name>.sql): its columns are its query's."""
    return Table(name, "marts", None, partitioned=partitioned)


def tables() -> list[Table]:
    """Every lake table but the marts, layer by layer."""
    names = regime_names()
    return [
        *(bronze(r) for r in names),
        BRONZE_QUARANTINE,
        EVAL_INDEX,
        DEDUP_SIGNATURES,
        *(prepared(r) for r in names),
        *(silver(r) for r in names),
        SILVER_REJECTIONS,
        TOKENIZER,
        *(gold(r) for r in names),
        GOLD_REJECTIONS,
        STAGE_RUNS,
        ROLLOUTS,
        VERIFIED_ROLLOUTS,
        ROLLOUT_GROUPS,
    ]


def table(name: str) -> Table:
    """The lake table `name`; a KeyError when there is none."""
    for t in tables():
        if t.name == name:
            return t
    raise KeyError(name)
