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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ptdata.core import catalog
from ptdata.core.catalog import REJECTIONS_SCHEMA, SILVER_EXTRA, silver_schema
from ptdata.core.config import LoadedConfig
from ptdata.core.lake import Lake, TablePartition
from ptdata.core.regimes import all_text
from ptdata.core.regimes import regime as regime_spec
from ptdata.core.writer import RowGroupWriter
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
        lake.read_table(
            day_path, columns=["record_id", "source", "reject", "detail", "eval_set", "lang", "quality_score", "pii"]
        )
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
    features = _features(lake, paths[-1]).join(decisions, on="record_id", how="left", maintain_order="left")
    _write(lake, regime, date, prepared_path(lake, regime, date), _decisions(features), st)
    st.seconds["total"] = time.perf_counter() - t0
    return st


def _write(lake: Lake, regime: str, date: dt.date, prepared: str, decided_all: pl.DataFrame, st: StagedSilver) -> None:
    """Stream D's prepared records, row group by row group, into silver rows and rejection rows: columnar, the
    records' text is never turned into Python objects. The prepared records and the signatures were written in
    the same order (one executor task per bronze row group makes both), so a row group's decisions are the
    next slice of `decided_all`; its record ids are checked."""
    schema = silver_schema(regime)
    pf = lake.parquet_file(prepared)
    if pf.metadata.num_rows != decided_all.height:
        raise SilverInputError(
            f"prepared_{regime} {date} has {pf.metadata.num_rows} records and dedup_signatures {decided_all.height}"
        )
    offset = 0
    with (
        lake.parquet_writer(st.silver_staged, schema) as silver_w,
        lake.parquet_writer(st.rejections_staged, REJECTIONS_SCHEMA) as reject_w,
        # a row group of silver per row group of the prepared records, as written in line, each encoded on a
        # thread while the next is read and filtered
        RowGroupWriter(silver_w, schema, 1) as silver_out,
    ):
        for i in range(pf.num_row_groups):
            records = pf.read_row_group(i)
            decided = decided_all.slice(offset, records.num_rows)
            offset += records.num_rows
            if not decided["record_id"].equals(pl.Series(records["record_id"]), check_names=False):
                raise SilverInputError(f"prepared_{regime} {date} and its dedup_signatures are not in the same order")
            keep = decided["reason"].is_null().to_arrow()
            extra = decided.select(name for name, _ in SILVER_EXTRA).to_arrow()
            kept = records.filter(keep)
            for name in extra.column_names:
                kept = kept.append_column(name, extra[name].filter(keep))
            silver_out.add(kept.select(schema.names).cast(schema))
            dropped = decided.filter(pl.col("reason").is_not_null())
            columns = {
                "record_id": records["record_id"].filter(pc.invert(keep)),
                "source": records["source"].filter(pc.invert(keep)),
                "source_uri": records["source_uri"].filter(pc.invert(keep)),
                "regime": pa.array([regime] * dropped.height, pa.string()),
                "date": pa.array([date] * dropped.height, pa.date32()),
                **{name: dropped[name].to_arrow() for name in ("reason", "detail", "dup_of", "eval_set")},
            }
            reject_w.write_table(pa.table(columns, schema=REJECTIONS_SCHEMA))
            _count(st, decided)
            st.bronze_rows += records.num_rows
            st.silver_rows += kept.num_rows
        silver_out.close()


def _decisions(features: pl.DataFrame) -> pl.DataFrame:
    """Per record, in signature order: (record_id, source, reason, dup_of, detail, eval_set, lang, quality_score,
    pii). A record step's rejection comes first (the step order is the precedence), then the dedup decision."""
    by_step = pl.col("reject").is_not_null()
    return features.select(
        "record_id",
        "source",
        reason=pl.when(by_step).then(pl.col("reject")).otherwise(pl.col("reason")),
        dup_of=pl.when(by_step).then(None).otherwise(pl.col("dup_of")),
        detail=pl.when(by_step).then(pl.col("detail")).otherwise(pl.col("dup_detail")),
        eval_set=pl.when(by_step).then(pl.col("eval_set")).otherwise(None),
        lang="lang",
        quality_score="quality_score",
        pii="pii",
    )


def _count(st: StagedSilver, decided: pl.DataFrame) -> None:
    """The funnel per source, the rejection reasons, PII per type and the eval sets' hits of a row group."""
    groups = decided.group_by("source", "reason", maintain_order=True).len()
    for source, reason, n in groups.iter_rows():
        for stage in funnel_passed(reason):
            st.funnel[source][stage] += n
        if reason is not None:
            st.reasons[reason] += n
    for found in decided["pii"].drop_nulls():
        st.pii.update(orjson.loads(found))
    for eval_set, detail in decided.filter(pl.col("reason") == "contaminated").select("eval_set", "detail").iter_rows():
        st.eval_hits[eval_set].add(detail.split(":", 1)[0])
        st.eval_removed[eval_set] += 1


def iter_texts(
    lake: Lake, path: str, regime: str, groups: Iterable[int] | None = None
) -> Iterator[tuple[str, str, str]]:
    """(record_id, source, all text) of every record of a silver file (or of the row groups `groups`), row group
    by row group."""
    pf = lake.parquet_file(path)
    columns = ["record_id", "source", *regime_spec(regime).column_names]  # silver's other columns are not text
    for i in range(pf.num_row_groups) if groups is None else groups:
        for rec in pf.read_row_group(i, columns=columns).to_pylist():
            yield rec["record_id"], rec["source"], all_text(regime, rec)
