"""Silver assets: eval_index (the n-gram index of the registered eval sets), dedup_signatures (per partition, the
record steps and what global dedup joins on), silver_<regime> (each partition's kept records) and
silver_rejections; specs of the staged-asset factory (ptdata/defs/factory.py), the work is ptdata/silver/.

silver_<regime>(D) reads dedup_signatures of every partition up to D, so it depends on all of them; the partition
mapping says so, and Dagster shows later silver partitions stale when an earlier signatures partition changes
(Dagster tracks this for up to 99 upstream partitions; past that, the asset still refuses signatures built with
another config, see dedup/history.signature_inputs)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import dagster as dg

from ptdata.core import catalog
from ptdata.core.config import LoadedConfig, stable_hash
from ptdata.core.outcome import Outcome
from ptdata.core.regimes import regime_names
from ptdata.defs.factory import Gate, Staged, StagedFile, Step, table_asset
from ptdata.silver.audits import audit_staged
from ptdata.silver.decontam import EvalIndex
from ptdata.silver.dedup import lsh_bands
from ptdata.silver.eval_sets import load_eval_items
from ptdata.silver.pipeline import FUNNEL_STAGES
from ptdata.silver.signatures import (
    SilverInputError,
    eval_files_hash,
    load_eval_index,
    signatures_version,
    stage_signatures,
)
from ptdata.silver.stage import SILVER_CODE_VERSION, StagedSilver, stage_silver

EVAL_INDEX_CODE_VERSION = "1"
# dedup_signatures also writes the prepared records (prepared_<regime>): the signature files are as they were (their
# own version, VERSION_META, names what they hold), but the asset's output is not
PREPARED_RECORDS_VERSION = "p1"
SILVER_GATES = (
    Gate("schema", "pandera schema of silver and of the rejections, unique record_id"),
    Gate("accounting", "bronze = silver + rejections, per source"),
    Gate("unique_content", "no content hash twice, within the partition or with an earlier one"),
    Gate("decontaminated", "no kept record matches an eval item"),
    Gate("pii_free", "a second PII scan of the kept records finds nothing"),
    Gate("quality_pass_rate", "the share passing the quality rules is at least quality.min_pass_rate"),
    Gate("complete_history", "every earlier partition was there to dedup against", blocking=False),
)


def build_eval_index(cfg: LoadedConfig) -> tuple[EvalIndex, dict[str, int], list[str]]:
    """The index over every configured eval set, items per set, and the problems that must stop publishing."""
    items, per_set, problems = [], {}, []
    for ev in cfg.pipeline.eval_sets:
        try:
            loaded = load_eval_items(cfg.resolve(ev.path), ev.fields)
        except ValueError as e:
            problems.append(f"eval set {ev.name}: {e}")
            continue
        with_text = [(ev.name, item_id, text) for item_id, text in loaded if text.strip()]
        per_set[ev.name] = len(with_text)
        if not with_text:
            problems.append(f"eval set {ev.name}: no item has text in fields {ev.fields}")
        items += with_text
    return EvalIndex.build(items, cfg.pipeline.decontam.ngram), per_set, problems


def _stage_eval_index(step: Step, _: dt.date | None, __: Any) -> Staged:
    index, per_set, problems = build_eval_index(step.cfg)
    table = index.to_arrow()
    counts = table.group_by("eval_set").aggregate([("item_id", "count_distinct")]).to_pylist()
    indexed = {r["eval_set"]: r["item_id_count_distinct"] for r in counts}
    missing = {s: per_set[s] - indexed.get(s, 0) for s in per_set if per_set[s] != indexed.get(s, 0)}
    problems += [f"eval set {s}: {n} items with text have no n-gram in the index" for s, n in missing.items()]
    part = catalog.EVAL_INDEX.part()
    staged = step.lake.staged_path(part, step.stage_id)
    with step.lake.parquet_writer(staged, catalog.EVAL_INDEX_SCHEMA.with_metadata(table.schema.metadata)) as w:
        w.write_table(table)
    meta = {"items_per_set": per_set, "indexed_items_per_set": indexed, "problems": problems[:10]}
    return Staged(
        None,
        files=[StagedFile(staged, part, "all")],
        audits={"coverage": Outcome("coverage", not problems, meta, problems[0] if problems else "")},
        records_in=sum(per_set.values()),
        info=(table.num_rows, per_set),
    )


def eval_index_asset(cfg: LoadedConfig) -> dg.AssetsDefinition:
    p = cfg.pipeline
    return table_asset(
        catalog.EVAL_INDEX,
        None,
        description="Word n-grams of every registered eval set's items; a training record sharing one is contaminated.",
        code_version=f"{EVAL_INDEX_CODE_VERSION}-{stable_hash([*p.eval_sets, p.decontam])}-{eval_files_hash(cfg)}",
        stage=_stage_eval_index,
        metadata=lambda step, staged, versions, figures: {
            "dagster/row_count": staged[0].info[0],
            "ngram": step.cfg.pipeline.decontam.ngram,
            "items_per_set": staged[0].info[1],
        },
        gates=(Gate("coverage", "every eval set indexed"),),
    )


def _stage_signatures(step: Step, date: dt.date | None, index: EvalIndex) -> Staged:
    problems, files, counts, prepared_bytes, bronze_bytes = [], [], {}, 0, 0
    for regime in regime_names():
        bronze = catalog.bronze(regime).part(date)
        if not step.lake.exists(bronze):
            problems.append(f"bronze_{regime} {date} is not materialized")
            continue
        bronze_bytes += step.lake.fs.size(step.lake.path(bronze))
        n, (signatures, prepared) = stage_signatures(
            step.lake, step.cfg, regime, date, step.stage_id, index, step.executor
        )
        expected = step.lake.parquet_file(step.lake.path(bronze)).metadata.num_rows
        if n != expected:
            problems.append(f"{regime} {date}: {n} signatures for {expected} bronze records")
        counts[f"{date}/{regime}"] = n
        prepared_bytes += step.lake.fs.size(prepared[0])
        files += [StagedFile(*prepared), StagedFile(*signatures, f"{date}/{regime}")]
    desc = f"dedup_signatures {date}: {problems[0]}" if problems else ""
    return Staged(
        date,
        files=files,
        audits={"coverage": Outcome("coverage", not problems, {"problems": problems}, desc)},
        records_in=sum(counts.values()),
        bytes_in=bronze_bytes,
        info=(counts, prepared_bytes),
    )


def _signatures_metadata(step: Step, staged: list[Staged], versions: dict[str, str], _: dict) -> dict[str, Any]:
    counts = {k: v for st in staged for k, v in st.info[0].items()}
    bands, rows = lsh_bands(step.cfg.pipeline.dedup.threshold, step.cfg.pipeline.dedup.num_perm)
    return {
        "dagster/row_count": sum(counts.values()),
        "rows": counts,
        "bands": bands,
        "rows_per_band": rows,
        # the disk the prepared records cost: the price of preparing each record once
        "prepared_bytes": sum(st.info[1] for st in staged),
    }


def dedup_signatures_asset(partitions: dg.PartitionsDefinition, cfg: LoadedConfig) -> dg.AssetsDefinition:
    """Per partition and regime, what silver needs of every bronze record to dedup later partitions against it:
    exact key, MinHash band keys, and whether it may survive (quality, contamination), with its language and
    quality score; and the prepared record. The persistent index that makes silver's dedup global."""
    version = stable_hash([signatures_version(cfg, r) for r in regime_names()])
    return table_asset(
        catalog.DEDUP_SIGNATURES,
        partitions,
        description="Per bronze record: exact key and MinHash LSH band keys of its normalized, redacted text, "
        "its quality verdict, contamination and language; and the prepared record itself (prepared_<regime>), "
        "which silver writes out and later partitions' verification reads, so no record is prepared twice.",
        code_version=f"{version}-{PREPARED_RECORDS_VERSION}",
        stage=_stage_signatures,
        metadata=_signatures_metadata,
        gates=(Gate("coverage", "one row per bronze record"),),
        deps=[*(f"bronze_{r}" for r in regime_names()), "eval_index"],
        kinds=frozenset({"parquet", "numpy"}),
        input_errors=(SilverInputError,),
        prepare=lambda step: load_eval_index(step.lake),
    )


def _stage_silver(step: Step, date: dt.date | None, index: EvalIndex) -> Staged:
    regime = step.name.removeprefix("silver_")
    st = stage_silver(step.lake, step.cfg, regime, date, step.stage_id)
    step.context.log.info(
        f"{step.name} {date}: {st.bronze_rows} bronze, {st.silver_rows} silver, "
        f"{st.bronze_rows - st.silver_rows} rejected ({dict(st.reasons)})"
    )
    audits = audit_staged(step.lake, step.cfg, st, index, step.executor)
    if not audits["complete_history"].passed:
        step.context.log.warning(audits["complete_history"].description)
    per = max(st.bronze_rows, 1)
    langs = step.lake.read_table(st.silver_staged, columns=["lang"]).column("lang").value_counts().to_pylist()
    return Staged(
        date,
        files=[
            StagedFile(st.rejections_staged, st.rejections),
            StagedFile(st.silver_staged, st.silver, date.isoformat()),
        ],
        audits=audits,
        records_in=st.bronze_rows,
        bytes_in=step.lake.fs.size(step.lake.path(catalog.prepared(regime).part(date))),
        # what the drift check compares from one day to the next: rates over the day's bronze records
        stats={
            "volume": st.silver_rows,
            "dup_rate": round((st.reasons["exact_dup"] + st.reasons["near_dup"]) / per, 6),
            "pii_per_record": round(sum(st.pii.values()) / per, 6),
            "contaminated": st.reasons["contaminated"],
            "lang_mix": {str(v["values"]): v["counts"] for v in langs},
        },
        info=st,
    )


def _silver_metadata(step: Step, runs: list[Staged], versions: dict[str, str], _: dict) -> dict[str, Any]:
    staged: list[StagedSilver] = [r.info for r in runs]
    funnel: dict[str, Counter[str]] = {}
    reasons: Counter[str] = Counter()
    pii: Counter[str] = Counter()
    eval_items: dict[str, set[str]] = {}
    eval_removed: Counter[str] = Counter()
    for st in staged:
        for source, counts in st.funnel.items():
            funnel.setdefault(source, Counter()).update(counts)
        reasons.update(st.reasons)
        pii.update(st.pii)
        eval_removed.update(st.eval_removed)
        for eval_set, items in st.eval_hits.items():
            eval_items.setdefault(eval_set, set()).update(items)
    bronze = sum(st.bronze_rows for st in staged)
    silver = sum(st.silver_rows for st in staged)
    return {
        "dagster/row_count": silver,
        "bronze_records": bronze,
        "rejected": bronze - silver,
        "rejected_by_reason": dict(sorted(reasons.items())),
        "funnel_per_source": {s: {k: c[k] for k in FUNNEL_STAGES} for s, c in sorted(funnel.items())},
        "pii_redacted_by_type": dict(sorted(pii.items())),
        "decontamination_per_eval_set": {
            k: {"items_hit": len(v), "records_removed": eval_removed[k], "items": sorted(v)[:20]}
            for k, v in sorted(eval_items.items())
        },
        "candidate_pairs": sum(st.candidate_pairs for st in staged),
        "verified_pairs": sum(st.verified_pairs for st in staged),
        "records_in_shared_buckets": sum(st.bucket_records for st in staged),
        "stage_seconds": {
            st.date.isoformat(): {k: round(v, 3) for k, v in sorted(st.seconds.items())} for st in staged
        },
        "data_versions": versions,
    }


def silver_asset(regime: str, partitions: dg.PartitionsDefinition, cfg: LoadedConfig) -> dg.AssetsDefinition:
    return table_asset(
        catalog.silver(regime),
        partitions,
        description=f"{regime} records normalized, redacted, passing the quality rules, free of eval leaks, and "
        "unique (exact and near) against every partition up to this one.",
        code_version=f"{SILVER_CODE_VERSION}-{stable_hash([signatures_version(cfg, regime), cfg.pipeline.quality])}",
        stage=_stage_silver,
        metadata=_silver_metadata,
        gates=SILVER_GATES,
        deps=[
            f"bronze_{regime}",
            # silver(D) reads every earlier partition's signatures: a window reaching back past any start date
            dg.AssetDep(
                "dedup_signatures",
                partition_mapping=dg.TimeWindowPartitionMapping(
                    start_offset=-100_000, end_offset=0, allow_nonexistent_upstream_partitions=True
                ),
            ),
            "eval_index",
        ],
        kinds=frozenset({"parquet", "duckdb", "polars"}),
        input_errors=(SilverInputError,),
        prepare=lambda step: load_eval_index(step.lake),
        drift="duplicate, PII and contamination rates and language mix against the trailing days",
    )
