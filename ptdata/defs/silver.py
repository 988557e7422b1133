"""Silver assets: eval_index (the n-gram index of the registered eval sets), dedup_signatures (per partition,
what global dedup joins on), silver_<regime> (each partition's kept records) and silver_rejections.

silver_<regime>(D) reads dedup_signatures of every partition up to D, so it depends on all of them; the
partition mapping says so, and Dagster shows later silver partitions stale when an earlier signatures
partition changes (Dagster tracks this for up to 99 upstream partitions; past that, the asset still refuses
signatures built with another config, see curate.signature_inputs)."""

from collections import Counter

import dagster as dg

from ptdata.core import catalog
from ptdata.core.catalog import (
    DEDUP_SIGNATURES_SCHEMA,
    EVAL_INDEX_SCHEMA,
    silver_schema,
)
from ptdata.core.config import LoadedConfig, stable_hash
from ptdata.core.drift import drift_outcomes, write_stats
from ptdata.core.lake import Lake
from ptdata.core.outcome import Outcome
from ptdata.core.regimes import regime_names
from ptdata.defs.factory import (
    SINGLE_RUN,
    Writer,
    check_result,
    column_schema,
    combined_version,
    exclusive_write,
    partition_dates,
    report_audits,
)
from ptdata.defs.parts import regime_parts_asset
from ptdata.defs.resources import PtdataResource
from ptdata.silver.audits import SILVER_CHECKS, audit_staged
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
PREPARED_RECORDS_VERSION = "p1"


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


def eval_index_asset(cfg: LoadedConfig) -> dg.AssetsDefinition:
    version = (
        f"{EVAL_INDEX_CODE_VERSION}-{stable_hash([*cfg.pipeline.eval_sets, cfg.pipeline.decontam])}"
        f"-{eval_files_hash(cfg)}"
    )

    @dg.asset(
        name="eval_index",
        group_name="silver",
        code_version=version,
        backfill_policy=SINGLE_RUN,
        kinds={"parquet"},
        description="Word n-grams of every registered eval set's items; a training record sharing one is contaminated.",
        check_specs=[
            dg.AssetCheckSpec("coverage", asset="eval_index", blocking=True, description="every eval set indexed")
        ],
    )
    def _eval_index(context: dg.AssetExecutionContext, ptdata: PtdataResource):  # noqa: ANN202 - events
        cfg = ptdata.load_config()
        lake = ptdata.lake()
        with exclusive_write(context, ptdata) as writer:
            index, per_set, problems = build_eval_index(cfg)
            table = index.to_arrow()
            counts = table.group_by("eval_set").aggregate([("item_id", "count_distinct")]).to_pylist()
            indexed = {r["eval_set"]: r["item_id_count_distinct"] for r in counts}
            missing = {s: per_set[s] - indexed.get(s, 0) for s in per_set if per_set[s] != indexed.get(s, 0)}
            problems += [f"eval set {s}: {n} items with text have no n-gram in the index" for s, n in missing.items()]
            yield dg.AssetCheckResult(
                asset_key="eval_index",
                check_name="coverage",
                passed=not problems,
                metadata={"items_per_set": per_set, "indexed_items_per_set": indexed, "problems": problems[:10]},
                description=problems[0] if problems else None,
            )
            if problems:
                raise dg.Failure(description=f"eval_index not published: {problems[0]}")
            staged = lake.staged_path(catalog.EVAL_INDEX.part(), writer.stage_id)
            with lake.parquet_writer(staged, EVAL_INDEX_SCHEMA.with_metadata(table.schema.metadata)) as w:
                w.write_table(table)
            version = lake.data_version(lake.publish(staged, catalog.EVAL_INDEX.part()))
            yield dg.MaterializeResult(
                metadata={
                    "dagster/row_count": table.num_rows,
                    "dagster/column_schema": column_schema(EVAL_INDEX_SCHEMA),
                    "ngram": cfg.pipeline.decontam.ngram,
                    "items_per_set": per_set,
                    **writer.figures(sum(per_set.values())),
                    "path": dg.MetadataValue.path(lake.path(catalog.EVAL_INDEX.part())),
                },
                data_version=dg.DataVersion(version),
            )

    return _eval_index


def dedup_signatures_asset(partitions: dg.PartitionsDefinition, cfg: LoadedConfig) -> dg.AssetsDefinition:
    """Per partition and regime, what silver needs of every bronze record to dedup later partitions against it:
    exact key, MinHash band keys, and whether it may survive (quality, contamination), with its language and
    quality score. The persistent index that makes silver's dedup global."""
    # the prepared records it writes beside the signatures leave the signature files as they were (their own
    # version, VERSION_META, names what they hold), but the asset's output changed: PREPARED_RECORDS_VERSION
    version = f"{stable_hash([signatures_version(cfg, r) for r in regime_names()])}-{PREPARED_RECORDS_VERSION}"

    @dg.asset(
        name="dedup_signatures",
        group_name="silver",
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        code_version=version,
        deps=[*(f"bronze_{r}" for r in regime_names()), "eval_index"],
        kinds={"parquet", "numpy"},
        description="Per bronze record: exact key and MinHash LSH band keys of its normalized, redacted text, its "
        "quality verdict, contamination and language; and the prepared record itself (prepared_<regime>), which "
        "silver writes out and later partitions' verification reads, so no record is prepared twice.",
        check_specs=[
            dg.AssetCheckSpec(
                "coverage", asset="dedup_signatures", blocking=True, description="one row per bronze record"
            )
        ],
    )
    def _signatures(context: dg.AssetExecutionContext, ptdata: PtdataResource):  # noqa: ANN202 - events
        cfg = ptdata.load_config()
        lake = ptdata.lake()
        with exclusive_write(context, ptdata) as writer:
            try:
                index = load_eval_index(lake)
            except SilverInputError as e:
                raise dg.Failure(description=str(e)) from None
            staged, audits, counts = [], [], {}
            for date in partition_dates(context):
                problems = []
                for regime in regime_names():
                    source_part = catalog.bronze(regime).part(date)
                    if not lake.exists(source_part):
                        problems.append(f"bronze_{regime} {date} is not materialized")
                        continue
                    n, files = stage_signatures(lake, cfg, regime, date, writer.stage_id, index)
                    expected = lake.parquet_file(lake.path(source_part)).metadata.num_rows
                    if n != expected:
                        problems.append(f"{regime} {date}: {n} signatures for {expected} bronze records")
                    counts[f"{date}/{regime}"] = n
                    staged.append(files)
                desc = f"dedup_signatures {date}: {problems[0]}" if problems else ""
                audits.append((date, Outcome("coverage", not problems, {"problems": problems}, desc)))
            result = check_result("dedup_signatures", "coverage", audits)
            yield result
            if not result.passed:
                raise dg.Failure(description=result.description)
            prepared_bytes = sum(lake.fs.size(path) for (_, _), (path, _) in staged)
            versions = {}
            for (signatures, part), (prepared, prepared_part) in staged:
                lake.publish(prepared, prepared_part)
                versions[f"{part.date}/{part.regime}"] = lake.data_version(lake.publish(signatures, part))
            total = sum(counts.values())
            bands, rows = lsh_bands(cfg.pipeline.dedup.threshold, cfg.pipeline.dedup.num_perm)
            yield dg.MaterializeResult(
                metadata={
                    "dagster/row_count": total,
                    "dagster/column_schema": column_schema(DEDUP_SIGNATURES_SCHEMA),
                    "rows": counts,
                    "bands": bands,
                    "rows_per_band": rows,
                    # the disk the prepared records cost: the price of preparing each record once
                    "prepared_bytes": prepared_bytes,
                    **writer.figures(total),
                    "path": dg.MetadataValue.path(catalog.DEDUP_SIGNATURES.url(lake)),
                },
                data_version=dg.DataVersion(combined_version(versions)),
            )

    return _signatures


def silver_asset(regime: str, partitions: dg.PartitionsDefinition, cfg: LoadedConfig) -> dg.AssetsDefinition:
    name = f"silver_{regime}"
    version = f"{SILVER_CODE_VERSION}-{stable_hash([signatures_version(cfg, regime), cfg.pipeline.quality])}"

    @dg.asset(
        name=name,
        group_name="silver",
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        code_version=version,
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
        kinds={"parquet", "duckdb", "polars"},
        description=f"{regime} records normalized, redacted, passing the quality rules, free of eval leaks, and "
        "unique (exact and near) against every partition up to this one.",
        check_specs=[
            dg.AssetCheckSpec(c, asset=name, blocking=True, description=d)
            for c, d in (
                ("schema", "pandera schema of silver and of the rejections, unique record_id"),
                ("accounting", "bronze = silver + rejections, per source"),
                ("unique_content", "no content hash twice, within the partition or with an earlier one"),
                ("decontaminated", "no kept record matches an eval item"),
                ("pii_free", "a second PII scan of the kept records finds nothing"),
                ("quality_pass_rate", "the share passing the quality rules is at least quality.min_pass_rate"),
            )
        ]
        + [
            dg.AssetCheckSpec(
                "complete_history", asset=name, description="every earlier partition was there to dedup against"
            ),
            dg.AssetCheckSpec(
                "drift",
                asset=name,
                description="duplicate, PII and contamination rates and language mix against the trailing days",
            ),
        ],
    )
    def _silver(context: dg.AssetExecutionContext, ptdata: PtdataResource):  # noqa: ANN202 - events
        cfg = ptdata.load_config()
        lake = ptdata.lake()
        with exclusive_write(context, ptdata) as writer:
            staged, audits = [], []
            try:
                index = load_eval_index(lake)
                for date in partition_dates(context):
                    staged.append(stage_silver(lake, cfg, regime, date, writer.stage_id))
            except SilverInputError as e:
                raise dg.Failure(description=str(e)) from None
            stats = {st.date: _stats(lake, st) for st in staged}
            drifts = drift_outcomes(lake, name, stats, cfg.pipeline.monitoring)
            for st in staged:
                audits.append((st.date, {**audit_staged(lake, cfg, st, index), "drift": drifts[st.date]}))
                context.log.info(
                    f"{name} {st.date}: {st.bronze_rows} bronze, {st.silver_rows} silver, "
                    f"{st.bronze_rows - st.silver_rows} rejected ({dict(st.reasons)})"
                )
            for _, audit in audits:
                if not audit["complete_history"].passed:
                    context.log.warning(audit["complete_history"].description)
            kept = lake.staging(writer.stage_id, url=True)
            yield from report_audits(name, audits, SILVER_CHECKS, ("complete_history", "drift"), kept)
            versions = {}
            for st in staged:
                lake.publish(st.rejections_staged, st.rejections)
                versions[st.date.isoformat()] = lake.data_version(lake.publish(st.silver_staged, st.silver))
            for date, s in stats.items():
                write_stats(lake, name, date, s)
            yield dg.MaterializeResult(
                metadata=_silver_metadata(staged, versions, lake, name, writer),
                data_version=dg.DataVersion(combined_version(versions)),
            )

    return _silver


def _stats(lake: Lake, st: StagedSilver) -> dict:
    """What the drift check compares from one day to the next: rates over the day's bronze records."""
    per = max(st.bronze_rows, 1)
    langs = lake.read_table(st.silver_staged, columns=["lang"]).column("lang").value_counts().to_pylist()
    return {
        "volume": st.silver_rows,
        "dup_rate": round((st.reasons["exact_dup"] + st.reasons["near_dup"]) / per, 6),
        "pii_per_record": round(sum(st.pii.values()) / per, 6),
        "contaminated": st.reasons["contaminated"],
        "lang_mix": {str(v["values"]): v["counts"] for v in langs},
    }


def _silver_metadata(
    staged: list[StagedSilver], versions: dict[str, str], lake: Lake, name: str, writer: Writer
) -> dict:
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
        "dagster/column_schema": column_schema(silver_schema(staged[0].regime)),
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
        **writer.figures(bronze),
        "data_versions": versions,
        "path": dg.MetadataValue.path(catalog.table(name).url(lake)),
    }


def silver_rejections_asset(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    return regime_parts_asset(
        catalog.SILVER_REJECTIONS,
        partitions,
        SILVER_CODE_VERSION,
        "Every bronze record silver did not keep: its reason, the kept record a duplicate lost to, the eval set "
        "a contaminated one matched.",
    )
