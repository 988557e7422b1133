"""Silver assets. So far: eval_index, the n-gram index of the registered eval sets that decontamination reads,
and dedup_signatures, the per-partition keys that global dedup joins on."""

import datetime as dt
import hashlib
import time

import dagster as dg
import numpy as np
import pyarrow as pa

from ptdata.assets.common import SINGLE_RUN, check_result, column_schema, combined_version, partition_dates
from ptdata.checks.outcome import Outcome
from ptdata.config import REGIMES, LoadedConfig, stable_hash
from ptdata.lake import Lake, TablePartition
from ptdata.resources import PtdataResource
from ptdata.tables import DEDUP_SIGNATURES_SCHEMA
from ptdata.transforms.decontam import INDEX_SCHEMA, EvalIndex
from ptdata.transforms.dedup import band_keys, lsh_bands, minhash_signatures, ngram_hashes
from ptdata.transforms.eval_io import load_eval_items
from ptdata.transforms.pii import Allowlist
from ptdata.transforms.prepare import dedup_key, exact_key, prepare_record

EVAL_INDEX_CODE_VERSION = "1"
# bump when normalization, redaction or the signature scheme change what is written
DEDUP_SIGNATURES_CODE_VERSION = "1"
EVAL_INDEX = TablePartition("silver", "eval_index")


def _eval_files_hash(cfg: LoadedConfig) -> str:
    """The eval files' contents belong in the code version: a changed eval set must make the index stale."""
    h = hashlib.sha256()
    for ev in cfg.pipeline.eval_sets:
        h.update(cfg.resolve(ev.path).read_bytes())
    return h.hexdigest()[:12]


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
        f"-{_eval_files_hash(cfg)}"
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
        staged = lake.staged_path(EVAL_INDEX, f"{context.run_id}-eval_index")
        with lake.parquet_writer(staged, INDEX_SCHEMA.with_metadata(table.schema.metadata)) as w:
            w.write_table(table)
        version = lake.data_version(lake.publish(staged, EVAL_INDEX))
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": table.num_rows,
                "dagster/column_schema": column_schema(INDEX_SCHEMA),
                "ngram": cfg.pipeline.decontam.ngram,
                "items_per_set": per_set,
                "path": dg.MetadataValue.path(lake.path(EVAL_INDEX)),
            },
            data_version=dg.DataVersion(version),
        )

    return _eval_index


def signatures_of_partition(
    lake: Lake, cfg: LoadedConfig, regime: str, date: dt.date, staged: str, bands: int, rows: int
) -> int:
    """Stage the dedup signatures of one bronze partition, row group by row group; returns the rows written."""
    dedup = cfg.pipeline.dedup
    allow = {s.name: Allowlist.from_config(s.pii_allowlist) for s in cfg.pipeline.sources_of(regime)}
    fields = dedup.fields.get(regime)
    bronze = lake.parquet_file(lake.path(TablePartition("bronze", f"bronze_{regime}", date)))
    written = 0
    with lake.parquet_writer(staged, DEDUP_SIGNATURES_SCHEMA) as writer:
        for i in range(bronze.num_row_groups):
            records = bronze.read_row_group(i).to_pylist()
            keys = [dedup_key(regime, prepare_record(regime, r, allow[r["source"]])[0], fields) for r in records]
            hashes = ngram_hashes(keys, dedup.ngram)
            band = band_keys(minhash_signatures(hashes, dedup.num_perm), bands, rows)
            batch = {
                "record_id": [r["record_id"] for r in records],
                "source": [r["source"] for r in records],
                "regime": [regime] * len(records),
                "date": [date] * len(records),
                "exact_key": [exact_key(k) for k in keys],
                "band_keys": pa.FixedSizeListArray.from_arrays(pa.array(band.ravel()), bands).cast(
                    pa.list_(pa.uint64())
                ),
                "shingles": [len(np.unique(h)) for h in hashes],
            }
            writer.write_table(pa.table(batch, schema=DEDUP_SIGNATURES_SCHEMA))
            written += len(records)
    return written


def dedup_signatures_asset(partitions: dg.PartitionsDefinition, cfg: LoadedConfig) -> dg.AssetsDefinition:
    """Per partition and regime, the exact key and MinHash band keys of every bronze record: the persistent
    index that makes silver's dedup global (a new partition is joined against every earlier one's keys)."""
    allowlists = [(s.name, s.pii_allowlist) for s in cfg.pipeline.sources]
    version = f"{DEDUP_SIGNATURES_CODE_VERSION}-{stable_hash([cfg.pipeline.dedup, allowlists])}"

    @dg.asset(
        name="dedup_signatures",
        group_name="silver",
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        code_version=version,
        deps=[f"bronze_{r}" for r in REGIMES],
        kinds={"parquet", "numpy"},
        description="Exact keys and MinHash LSH band keys of every bronze record, after normalization and redaction.",
        check_specs=[
            dg.AssetCheckSpec(
                "coverage", asset="dedup_signatures", blocking=True, description="one row per bronze record"
            )
        ],
    )
    def _signatures(context: dg.AssetExecutionContext, ptdata: PtdataResource):  # noqa: ANN202 - events
        cfg = ptdata.load_config()
        lake = ptdata.lake()
        dedup = cfg.pipeline.dedup
        bands, rows = lsh_bands(dedup.threshold, dedup.num_perm)
        t0 = time.perf_counter()
        staged, audits, counts = [], [], {}
        for date in partition_dates(context):
            problems = []
            for regime in REGIMES:
                source_part = TablePartition("bronze", f"bronze_{regime}", date)
                if not lake.exists(source_part):
                    problems.append(f"bronze_{regime} {date} is not materialized")
                    continue
                part = TablePartition("silver", "dedup_signatures", date, regime)
                path = lake.staged_path(part, f"{context.run_id}-dedup_signatures")
                n = signatures_of_partition(lake, cfg, regime, date, path, bands, rows)
                expected = lake.parquet_file(lake.path(source_part)).metadata.num_rows
                if n != expected:
                    problems.append(f"{regime} {date}: {n} signatures for {expected} bronze records")
                counts[f"{date}/{regime}"] = n
                staged.append((path, part))
            desc = f"dedup_signatures {date}: {problems[0]}" if problems else ""
            audits.append((date, Outcome("coverage", not problems, {"problems": problems}, desc)))
        result = check_result("dedup_signatures", "coverage", audits)
        yield result
        if not result.passed:
            raise dg.Failure(description=result.description)
        versions = {f"{part.date}/{part.regime}": lake.data_version(lake.publish(path, part)) for path, part in staged}
        seconds = time.perf_counter() - t0
        total = sum(counts.values())
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": total,
                "dagster/column_schema": column_schema(DEDUP_SIGNATURES_SCHEMA),
                "rows": counts,
                "bands": bands,
                "rows_per_band": rows,
                "seconds": round(seconds, 3),
                "records_per_s": round(total / seconds, 1) if seconds else 0.0,
                "path": dg.MetadataValue.path(f"{lake.url}/silver/dedup_signatures"),
            },
            data_version=dg.DataVersion(combined_version(versions)),
        )

    return _signatures
