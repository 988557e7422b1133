"""silver_<regime>(D): the history steps of silver (exact and near dedup, ptdata/silver/pipeline.py) against every
partition up to D, and D's kept records and rejections written out.

It reads the signatures of every partition up to D (what dedup_signatures left, ptdata/silver/signatures.py),
resolves D's exact and near duplicates against all of them (`dedup.resolve_duplicates`, with the history walk of
`dedup/history.py`), and streams D's prepared records into silver rows and rejection rows. A function of bronze
and the config only, so that any materialization order gives the same silver (ARCHITECTURE.md, principle 5).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl
import pyarrow as pa

from ptdata.core import catalog
from ptdata.core.catalog import REJECTIONS_SCHEMA, silver_schema
from ptdata.core.config import LoadedConfig
from ptdata.core.lake import Lake, TablePartition
from ptdata.core.regimes import all_text
from ptdata.silver.dedup import resolve_duplicates
from ptdata.silver.dedup.history import dedup_inputs, prepared_path, shingle_reader, signature_inputs
from ptdata.silver.pipeline import funnel_passed
from ptdata.silver.signatures import SilverInputError

SILVER_CODE_VERSION = "1"


@dataclass
class StagedSilver:
    regime: str
    date: dt.date
    silver: TablePartition
    rejections: TablePartition
    silver_staged: str
    rejections_staged: str
    bronze_rows: int = 0
    silver_rows: int = 0
    # per source: records left after each stage of the funnel (pipeline.FUNNEL_STAGES)
    funnel: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    reasons: Counter[str] = field(default_factory=Counter)
    pii: Counter[str] = field(default_factory=Counter)
    # per eval set: the items matched, and the records removed for it
    eval_hits: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    eval_removed: Counter[str] = field(default_factory=Counter)
    candidate_pairs: int = 0
    verified_pairs: int = 0
    bucket_records: int = 0  # records up to D sharing a band key with one D reaches (D's own included)
    # earlier partitions without signatures when this one was staged (see signature_inputs)
    missing_history: list[dt.date] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def quality_passed(self) -> int:
        return sum(c["quality"] for c in self.funnel.values())


def _features(lake: Lake, day_path: str) -> pl.DataFrame:
    return pl.from_arrow(
        lake.read_table(day_path, columns=["record_id", "reject", "detail", "eval_set", "lang", "quality_score", "pii"])
    )


def stage_silver(lake: Lake, cfg: LoadedConfig, regime: str, date: dt.date, stage_id: str) -> StagedSilver:
    """Stage silver_<regime> and its silver_rejections part for one partition (see the module docstring)."""
    t0 = time.perf_counter()
    paths, missing = signature_inputs(lake, cfg, regime, date)
    silver, rejections = catalog.silver(regime).part(date), catalog.SILVER_REJECTIONS.part(date, regime)
    st = StagedSilver(
        regime, date, silver, rejections, lake.staged_path(silver, stage_id), lake.staged_path(rejections, stage_id)
    )
    st.missing_history = missing
    day, reps, shared = dedup_inputs(lake, paths, paths[-1])
    st.seconds["history"] = time.perf_counter() - t0
    st.bucket_records = shared["record_id"].n_unique() if shared.height else 0
    dates = dict(zip(shared["record_id"].to_list(), shared["date"].to_list(), strict=True))
    decisions, st.candidate_pairs, st.verified_pairs = resolve_duplicates(
        day, reps, shared, shingle_reader(lake, cfg, regime, dates), cfg.pipeline.dedup.threshold
    )
    st.seconds["dedup"] = time.perf_counter() - t0 - st.seconds["history"]
    decisions = decisions.rename({"detail": "dup_detail"})
    features = _features(lake, paths[-1]).join(decisions, on="record_id", how="left")
    _write(lake, regime, date, prepared_path(lake, regime, date), features, st)
    st.seconds["total"] = time.perf_counter() - t0
    return st


def _write(lake: Lake, regime: str, date: dt.date, prepared: str, features: pl.DataFrame, st: StagedSilver) -> None:
    """Stream D's prepared records, row group by row group, into silver rows and rejection rows."""
    schema = silver_schema(regime)
    pf = lake.parquet_file(prepared)
    with (
        lake.parquet_writer(st.silver_staged, schema) as silver_w,
        lake.parquet_writer(st.rejections_staged, REJECTIONS_SCHEMA) as reject_w,
    ):
        for i in range(pf.num_row_groups):
            records = pf.read_row_group(i).to_pylist()
            ids = pl.DataFrame({"record_id": [r["record_id"] for r in records]}, schema={"record_id": pl.String})
            feats = ids.join(features, on="record_id", how="left", maintain_order="left").to_dicts()
            kept: dict[str, list] = {name: [] for name in schema.names}
            rejected: dict[str, list] = {name: [] for name in REJECTIONS_SCHEMA.names}
            for rec, f in zip(records, feats, strict=True):
                if f["lang"] is None:
                    raise SilverInputError(f"record {rec['record_id']} of bronze_{regime} {date} has no signature")
                reason, dup_of, detail, eval_set = _decision(f)
                _count(st, rec["source"], reason, f, eval_set)
                if reason is not None:
                    for name, value in (
                        ("record_id", rec["record_id"]),
                        ("source", rec["source"]),
                        ("source_uri", rec["source_uri"]),
                        ("regime", regime),
                        ("date", date),
                        ("reason", reason),
                        ("detail", detail),
                        ("dup_of", dup_of),
                        ("eval_set", eval_set),
                    ):
                        rejected[name].append(value)
                    continue
                row = {**rec, "lang": f["lang"], "quality_score": f["quality_score"]}
                for name in schema.names:
                    kept[name].append(row[name])
            silver_w.write_table(pa.table(kept, schema=schema))
            reject_w.write_table(pa.table(rejected, schema=REJECTIONS_SCHEMA))
            st.bronze_rows += len(records)
            st.silver_rows += len(kept["record_id"])


def _decision(f: dict[str, Any]) -> tuple[str | None, str | None, str | None, str | None]:
    """(reason, dup_of, detail, eval_set) of a record: a record step's rejection comes first (the step order is the
    precedence), then the dedup decision."""
    if f["reject"] is not None:
        return f["reject"], None, f["detail"], f["eval_set"]
    return f["reason"], f["dup_of"], f["dup_detail"], None


def _count(st: StagedSilver, source: str, reason: str | None, f: dict[str, Any], eval_set: str | None) -> None:
    st.funnel[source].update(funnel_passed(reason))
    if f["pii"]:
        st.pii.update(orjson.loads(f["pii"]))
    if reason is not None:
        st.reasons[reason] += 1
    if reason == "contaminated":
        st.eval_hits[eval_set].add(f["detail"].split(":", 1)[0])
        st.eval_removed[eval_set] += 1


def iter_texts(lake: Lake, path: str, regime: str) -> Iterator[tuple[str, str, str]]:
    """(record_id, source, all text) of every record of a silver file, row group by row group."""
    pf = lake.parquet_file(path)
    for i in range(pf.num_row_groups):
        for rec in pf.read_row_group(i).to_pylist():
            yield rec["record_id"], rec["source"], all_text(regime, rec)
