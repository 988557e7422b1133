"""dedup_signatures: the record steps of silver (ptdata/silver/pipeline.py) over one bronze partition, once per
record, and what global dedup joins on.

Per bronze record of a partition it keeps, in `dedup_signatures`, the exact key and MinHash band keys of its
prepared (normalized, redacted) text, whether it may survive a dedup at all (it passed the quality rules and is
not contaminated), its language, quality score and PII counts; and in `prepared_<regime>` the prepared record
itself, which silver_<regime> writes out and the verification of later partitions' near duplicates reads back,
so no record is prepared twice. A function of bronze and the config only (ARCHITECTURE.md, principle 5).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ptdata.bronze.records import content_hash
from ptdata.core import catalog
from ptdata.core.catalog import DEDUP_SIGNATURES_SCHEMA, prepared_schema
from ptdata.core.config import LoadedConfig, stable_hash
from ptdata.core.executor import INLINE, Executor
from ptdata.core.lake import Lake, TablePartition
from ptdata.core.regimes import regime as regime_spec
from ptdata.silver.decontam import EvalIndex
from ptdata.silver.dedup import band_keys, dedup_keys, exact_key, key_ngram_hashes, lsh_bands, minhash_signatures
from ptdata.silver.pii import Allowlist
from ptdata.silver.pipeline import RecordBatch, SourceRules, run_record_steps

# bump when a change of code changes what is written (3: the unparseable_answer rule asks the verifier registry,
# which knows more verifiers than the three it listed)
SIGNATURES_CODE_VERSION = "3"
# the schema metadata key of a signatures file that names the version it was built with
VERSION_META = b"ptdata.signatures_version"


class SilverInputError(RuntimeError):
    """An input silver needs is missing or was built with another config; the message says which and why."""


def eval_files_hash(cfg: LoadedConfig) -> str:
    """The eval files' contents belong in versions: a changed eval set must make the index and its users stale."""
    h = hashlib.sha256()
    for ev in cfg.pipeline.eval_sets:
        h.update(cfg.resolve(ev.path).read_bytes())
    return h.hexdigest()[:12]


def signatures_version(cfg: LoadedConfig, regime: str) -> str:
    """Everything a regime's signatures depend on besides bronze: code, dedup, decontamination and eval sets,
    and each source's redaction allowlist, quality rules and languages."""
    p = cfg.pipeline
    sources = [(s.name, s.pii_allowlist, s.quality, s.allowed_languages) for s in p.sources_of(regime)]
    settings = [p.dedup, p.decontam, p.eval_sets, sources]
    return f"{SIGNATURES_CODE_VERSION}-{stable_hash(settings)}-{eval_files_hash(cfg)}"


def source_rules(cfg: LoadedConfig, regime: str) -> dict[str, SourceRules]:
    return {
        s.name: SourceRules(Allowlist.from_config(s.pii_allowlist), s.quality_rules())
        for s in cfg.pipeline.sources_of(regime)
    }


def load_eval_index(lake: Lake) -> EvalIndex:
    if not lake.exists(catalog.EVAL_INDEX.part()):
        raise SilverInputError("eval_index is not materialized: materialize eval_index first")
    return EvalIndex.from_arrow(lake.read_table(lake.path(catalog.EVAL_INDEX.part())))


def signatures_of_batch(cfg: LoadedConfig, batch: RecordBatch) -> pa.Table:
    """The signature rows (DEDUP_SIGNATURES_SCHEMA) of a batch that went through the record steps."""
    dedup = cfg.pipeline.dedup
    regime = batch.regime
    bands, rows = lsh_bands(dedup.threshold, dedup.num_perm)
    keys = dedup_keys(regime, batch.records, dedup.fields.get(regime))
    hashes = key_ngram_hashes(keys, dedup.ngram)
    # band keys read only the first bands × rows permutations (18 × 6 of 128 by default), and a permutation's
    # coefficients depend only on its index, so computing just those gives the same keys for less work
    band = band_keys(minhash_signatures(hashes, bands * rows), bands, rows)
    columns = {
        "record_id": [r["record_id"] for r in batch.records],
        "source": [r["source"] for r in batch.records],
        "regime": [regime] * len(batch.records),
        "date": [r["date"] for r in batch.records],
        "exact_key": [exact_key(k) for k in keys],
        "band_keys": pa.FixedSizeListArray.from_arrays(pa.array(band.ravel(), pa.uint64()), bands).cast(
            pa.list_(pa.uint64())
        ),
        "shingles": [len(np.unique(h)) for h in hashes],
        "reject": batch.reject,
        "detail": batch.detail,
        "eval_set": batch.eval_set,
        "lang": [code for code, _ in batch.lang],
        "quality_score": batch.quality_score,
        "pii": batch.pii_json(),
    }
    return pa.table(columns, schema=DEDUP_SIGNATURES_SCHEMA)


def prepared_rows(batch: RecordBatch) -> pa.Table:
    """The prepared records of a batch (prepared_schema): bronze's columns with the prepared text, and the
    content hash of that text, which silver keeps."""
    schema = prepared_schema(batch.regime)
    names = regime_spec(batch.regime).column_names
    rows = [{**r, "content_hash": content_hash({n: r[n] for n in names})} for r in batch.records]
    return pa.Table.from_pylist(rows, schema=schema)


@dataclass(frozen=True)
class _PartitionWork:
    """What each row group's task needs: the context the executor ships once to every worker."""

    lake: Lake
    cfg: LoadedConfig
    regime: str
    bronze: str
    rules: dict[str, SourceRules]
    index: EvalIndex
    schema: pa.Schema


def _row_group_signatures(work: _PartitionWork, group: int) -> tuple[pa.Table, pa.Table]:
    """The signature rows and prepared records of one bronze row group (a task of the executor)."""
    records = work.lake.parquet_file(work.bronze).read_row_group(group).to_pylist()
    batch = run_record_steps(RecordBatch(work.regime, records, work.rules, work.index))
    return signatures_of_batch(work.cfg, batch).cast(work.schema), prepared_rows(batch)


def stage_signatures(
    lake: Lake,
    cfg: LoadedConfig,
    regime: str,
    date: dt.date,
    stage_id: str,
    index: EvalIndex,
    executor: Executor = INLINE,
) -> tuple[int, list[tuple[str, TablePartition]]]:
    """Stage the signatures and the prepared records of one bronze partition, a task per bronze row group on the
    executor's workers, written in row-group order; returns the rows written and the (staged path, live
    partition) of both files."""
    bronze = lake.path(catalog.bronze(regime).part(date))
    schema = DEDUP_SIGNATURES_SCHEMA.with_metadata({VERSION_META: signatures_version(cfg, regime).encode()})
    signatures, prepared = catalog.DEDUP_SIGNATURES.part(date, regime), catalog.prepared(regime).part(date)
    files = [(lake.staged_path(signatures, stage_id), signatures), (lake.staged_path(prepared, stage_id), prepared)]
    work = _PartitionWork(lake, cfg, regime, bronze, source_rules(cfg, regime), index, schema)
    written = 0
    with (
        lake.parquet_writer(files[0][0], schema) as signatures_w,
        lake.parquet_writer(files[1][0], prepared_schema(regime)) as prepared_w,
    ):
        groups = range(lake.parquet_file(bronze).num_row_groups)
        for signature_rows, prepared_records in executor.map(_row_group_signatures, work, groups):
            signatures_w.write_table(signature_rows)
            prepared_w.write_table(prepared_records)
            written += signature_rows.num_rows
    return written, files
