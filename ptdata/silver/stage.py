"""Silver staging: what the silver assets run, without Dagster (as ingest.py is for bronze).

Two steps, each a function of bronze and the config only, so that any materialization order gives the same
silver (ARCHITECTURE.md, principle 5):
- `stage_signatures(D)`: per bronze record of D, normalize and redact, detect the language, apply the quality
  rules, search the eval index, and keep what global dedup joins on (exact key, MinHash band keys) with whether
  the record may survive a dedup at all (it passed the quality rules and is not contaminated).
- `stage_silver(D)`: read the signatures of every partition up to D, resolve D's exact and near duplicates
  against all of them (`dedup.resolve_duplicates`), and write D's kept records and its rejections. Earlier
  records whose text a verification needs are read back from their bronze partition.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from ptdata.bronze.records import content_hash
from ptdata.core import catalog
from ptdata.core.catalog import DEDUP_SIGNATURES_SCHEMA, REJECTIONS_SCHEMA, silver_schema
from ptdata.core.config import LoadedConfig, stable_hash
from ptdata.core.lake import Lake, TablePartition, parquet_list
from ptdata.core.regimes import regime as regime_spec
from ptdata.silver.decontam import EvalIndex, find_contamination_batch
from ptdata.silver.dedup import (
    NO_BUCKET,
    band_keys,
    lsh_bands,
    minhash_signatures,
    ngram_hashes,
    resolve_duplicates,
)
from ptdata.silver.langid import detect_record_lang
from ptdata.silver.normalize import map_text_fields
from ptdata.silver.pii import Allowlist
from ptdata.silver.prepare import dedup_key, exact_key, prepare_record
from ptdata.silver.quality import QualityRules, evaluate

# bump when a change of code changes what is written
SIGNATURES_CODE_VERSION = "2"
SILVER_CODE_VERSION = "1"
EVAL_INDEX = catalog.EVAL_INDEX.part()
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


@dataclass(frozen=True)
class SourceRules:
    allow: Allowlist
    quality: QualityRules


def source_rules(cfg: LoadedConfig, regime: str) -> dict[str, SourceRules]:
    return {
        s.name: SourceRules(Allowlist.from_config(s.pii_allowlist), s.quality_rules())
        for s in cfg.pipeline.sources_of(regime)
    }


def all_text(regime: str, record: dict[str, Any]) -> str:
    """Every text field of a record, one after another: what decontamination and the residual PII scan read."""
    parts: list[str] = []

    def collect(text: str) -> str:
        parts.append(text)
        return text

    map_text_fields(regime, record, collect)
    return "\n".join(parts)


def load_eval_index(lake: Lake) -> EvalIndex:
    if not lake.exists(EVAL_INDEX):
        raise SilverInputError("eval_index is not materialized: materialize eval_index first")
    return EvalIndex.from_arrow(lake.read_table(lake.path(EVAL_INDEX)))


# ------------------------------------------------------------------------------------------------ signatures


def signatures_of_records(
    cfg: LoadedConfig, regime: str, records: list[dict[str, Any]], rules: Mapping[str, SourceRules], index: EvalIndex
) -> pa.Table:
    """The signature rows (DEDUP_SIGNATURES_SCHEMA) of a batch of bronze records of one partition."""
    dedup = cfg.pipeline.dedup
    bands, rows = lsh_bands(dedup.threshold, dedup.num_perm)
    prepared, pii = [], []
    for r in records:
        rec, counts = prepare_record(regime, r, rules[r["source"]].allow)
        prepared.append(rec)
        pii.append(orjson.dumps(dict(sorted(counts.items()))).decode() if counts else None)
    langs = [detect_record_lang(regime, rec) for rec in prepared]
    quality = [
        evaluate(regime, rec, rules[rec["source"]].quality, lang) for rec, lang in zip(prepared, langs, strict=True)
    ]
    matches = find_contamination_batch(index, [all_text(regime, rec) for rec in prepared]) if len(index) else None
    reject, detail, eval_set = [], [], []
    for i, q in enumerate(quality):
        match = matches[i] if matches else None
        if not q.passed:
            reject.append(q.reason)
            detail.append(",".join(q.failed_rules))
            eval_set.append(None)
        elif match is not None:
            reject.append("contaminated")
            detail.append(f"{match.item_id}: {match.ngram}")
            eval_set.append(match.eval_set)
        else:
            reject.append(None)
            detail.append(None)
            eval_set.append(None)
    keys = [dedup_key(regime, rec, dedup.fields.get(regime)) for rec in prepared]
    hashes = ngram_hashes(keys, dedup.ngram)
    band = band_keys(minhash_signatures(hashes, dedup.num_perm), bands, rows)
    columns = {
        "record_id": [r["record_id"] for r in records],
        "source": [r["source"] for r in records],
        "regime": [regime] * len(records),
        "date": [r["date"] for r in records],
        "exact_key": [exact_key(k) for k in keys],
        "band_keys": pa.FixedSizeListArray.from_arrays(pa.array(band.ravel(), pa.uint64()), bands).cast(
            pa.list_(pa.uint64())
        ),
        "shingles": [len(np.unique(h)) for h in hashes],
        "reject": reject,
        "detail": detail,
        "eval_set": eval_set,
        "lang": [code for code, _ in langs],
        "quality_score": [q.score for q in quality],
        "pii": pii,
    }
    return pa.table(columns, schema=DEDUP_SIGNATURES_SCHEMA)


def stage_signatures(lake: Lake, cfg: LoadedConfig, regime: str, date: dt.date, staged: str, index: EvalIndex) -> int:
    """Stage the signatures of one bronze partition, row group by row group; returns the rows written."""
    rules = source_rules(cfg, regime)
    bronze = lake.parquet_file(lake.path(catalog.bronze(regime).part(date)))
    schema = DEDUP_SIGNATURES_SCHEMA.with_metadata({VERSION_META: signatures_version(cfg, regime).encode()})
    written = 0
    with lake.parquet_writer(staged, schema) as writer:
        for i in range(bronze.num_row_groups):
            records = bronze.read_row_group(i).to_pylist()
            writer.write_table(signatures_of_records(cfg, regime, records, rules, index).cast(schema))
            written += len(records)
    return written


# ------------------------------------------------------------------------------------------------ silver


def partition_days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def signature_inputs(lake: Lake, cfg: LoadedConfig, regime: str, date: dt.date) -> tuple[list[str], list[dt.date]]:
    """The signatures files of the partitions from start_date to `date` (the last is `date`'s own), and the
    earlier dates that have none yet.

    Dagster lets any partition be materialized alone, so silver(D) runs with the history there is: an earlier
    partition materialized later makes silver(D) stale (its partition mapping covers every earlier date), and
    the asset's `complete_history` check warns until it is re-materialized; the result is then the same as in
    date order. Signatures built with another config are never mixed in: that fails, naming the dates."""
    want = signatures_version(cfg, regime)
    paths, missing, other = [], [], []
    for day in partition_days(cfg.pipeline.start_date, date):
        part = catalog.DEDUP_SIGNATURES.part(day, regime)
        if not lake.exists(part):
            missing.append(day)
            continue
        meta = lake.parquet_file(lake.path(part)).schema_arrow.metadata or {}
        if meta.get(VERSION_META, b"").decode() != want:
            other.append(day.isoformat())
        paths.append(lake.path(part))
    if date in missing:
        raise SilverInputError(f"silver_{regime} {date}: dedup_signatures is not materialized for {date}")
    if other:
        raise SilverInputError(
            f"silver_{regime} {date}: dedup_signatures of {_dates(other)} were built with another config or code "
            "version: re-materialize dedup_signatures for those dates first"
        )
    return paths, missing


def _dates(days: list[str]) -> str:
    return ", ".join(days) if len(days) <= 4 else f"{', '.join(days[:3])} and {len(days) - 3} more"


def dedup_inputs(lake: Lake, paths: list[str], day_path: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """From the signatures up to D (`day_path` is D's): D's eligible records (record_id, exact_key), the
    representative of each of their exact keys (exact_key, rep_id), and the band keys that two or more eligible
    exact representatives share (record_id, date, band, key), restricted to what D's dedup can reach.

    What D's records can reach is found breadth-first: the records sharing a band key with D's, then those
    sharing one with them, until no new key turns up. Each step is one DuckDB scan of the history's band keys
    with a small filter, so memory stays bounded by what is reached (near-dup clusters and their buckets), not
    by the history; the number of steps is the longest chain of buckets, usually two or three.
    """
    files = parquet_list(paths)
    eligible = f"(select record_id, date, exact_key, band_keys from read_parquet({files}) where reject is null)"
    long_schema = {"record_id": pl.String, "date": pl.Date, "exact_key": pl.String, "band": pl.Int16, "key": pl.UInt64}
    with lake.duckdb() as con:
        day = con.sql(
            f"select record_id, exact_key from read_parquet('{day_path}') where reject is null order by record_id"
        ).pl()
        frontier = con.sql(
            f"select distinct unnest(band_keys) as key from read_parquet('{day_path}') where reject is null"
        ).pl()
        seen_keys = frontier
        reached = pl.DataFrame(schema=long_schema)
        while frontier.height:
            con.register("frontier", frontier.filter(pl.col("key") != NO_BUCKET).to_arrow())
            found = con.sql(
                f"select distinct record_id, date, exact_key, band_keys from (select *, unnest(band_keys) as key "
                f"from {eligible}) where key in (select key from frontier)"
            ).pl()
            con.unregister("frontier")
            found = found.join(reached.select("record_id").unique(), on="record_id", how="anti")
            rows = found.with_columns(band=pl.int_ranges(pl.col("band_keys").list.len(), dtype=pl.Int16)).explode(
                ["band_keys", "band"]
            )
            rows = rows.select("record_id", "date", "exact_key", "band", key="band_keys")
            reached = pl.concat([reached, rows.cast(long_schema)])
            frontier = rows.select("key").unique().join(seen_keys, on="key", how="anti")
            seen_keys = pl.concat([seen_keys, frontier])
        needed = pl.concat([day.select("exact_key"), reached.select("exact_key")]).unique()
        con.register("needed", needed.to_arrow())
        reps_all = con.sql(
            f"select exact_key, arg_min(record_id, strftime(date, '%Y-%m-%d') || record_id) as rep_id from {eligible} "
            "where exact_key in (select exact_key from needed) group by exact_key"
        ).pl()
    reps = reps_all.join(day.select("exact_key").unique(), on="exact_key", how="semi").sort("exact_key")
    rep_rows = reached.join(reps_all, left_on=["record_id", "exact_key"], right_on=["rep_id", "exact_key"], how="semi")
    shared = rep_rows.filter((pl.col("key") != NO_BUCKET) & pl.col("key").is_duplicated())
    return day, reps, shared.select("record_id", "date", "band", "key").sort("record_id", "band")


def shingle_reader(
    lake: Lake, cfg: LoadedConfig, regime: str, dates: Mapping[str, dt.date], rules: Mapping[str, SourceRules]
) -> Callable[[list[str]], dict[str, np.ndarray]]:
    """A function giving the shingles of records by id, read back from their bronze partitions and prepared as
    the signatures were, so a verification sees exactly the text the band keys came from."""
    dedup = cfg.pipeline.dedup

    def shingles_of(ids: list[str]) -> dict[str, np.ndarray]:
        by_date: dict[dt.date, list[str]] = defaultdict(list)
        for rid in ids:
            by_date[dates[rid]].append(rid)
        out: dict[str, np.ndarray] = {}
        for day, wanted in sorted(by_date.items()):
            part = catalog.bronze(regime).part(day)
            records = lake.read_table(lake.path(part), filters=[("record_id", "in", wanted)]).to_pylist()
            keys = [
                dedup_key(regime, prepare_record(regime, r, rules[r["source"]].allow)[0], dedup.fields.get(regime))
                for r in records
            ]
            for r, h in zip(records, ngram_hashes(keys, dedup.ngram), strict=True):
                out[r["record_id"]] = np.unique(h)
        lost = set(ids) - set(out)
        if lost:
            raise SilverInputError(f"records {sorted(lost)[:3]} of dedup_signatures are not in bronze any more")
        return out

    return shingles_of


FUNNEL_STAGES = ("bronze", "quality", "decontaminated", "exact_unique", "silver")


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
    # per source: records left after each stage of FUNNEL_STAGES
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
    rules = source_rules(cfg, regime)
    bronze_part = catalog.bronze(regime).part(date)
    silver, rejections = catalog.silver(regime).part(date), catalog.SILVER_REJECTIONS.part(date, regime)
    st = StagedSilver(
        regime, date, silver, rejections, lake.staged_path(silver, stage_id), lake.staged_path(rejections, stage_id)
    )
    st.missing_history = missing
    day, reps, shared = dedup_inputs(lake, paths, paths[-1])
    st.seconds["history"] = time.perf_counter() - t0
    st.bucket_records = shared["record_id"].n_unique() if shared.height else 0
    dates = dict(zip(shared["record_id"].to_list(), shared["date"].to_list(), strict=True))
    shingles_of = shingle_reader(lake, cfg, regime, dates, rules)
    decisions, st.candidate_pairs, st.verified_pairs = resolve_duplicates(
        day, reps, shared, shingles_of, cfg.pipeline.dedup.threshold
    )
    st.seconds["dedup"] = time.perf_counter() - t0 - st.seconds["history"]
    decisions = decisions.rename({"detail": "dup_detail"})
    features = _features(lake, paths[-1]).join(decisions, on="record_id", how="left")
    _write(lake, regime, date, lake.parquet_file(lake.path(bronze_part)), features, rules, st)
    st.seconds["total"] = time.perf_counter() - t0
    return st


def _write(
    lake: Lake,
    regime: str,
    date: dt.date,
    bronze: Any,
    features: pl.DataFrame,
    rules: Mapping[str, SourceRules],
    st: StagedSilver,
) -> None:
    """Stream bronze D row group by row group into silver rows and rejection rows."""
    schema = silver_schema(regime)
    with (
        lake.parquet_writer(st.silver_staged, schema) as silver_w,
        lake.parquet_writer(st.rejections_staged, REJECTIONS_SCHEMA) as reject_w,
    ):
        for i in range(bronze.num_row_groups):
            records = bronze.read_row_group(i).to_pylist()
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
                prepared, _ = prepare_record(regime, rec, rules[rec["source"]].allow)
                cols = {name: prepared[name] for name in regime_spec(regime).column_names}
                row = {**prepared, **cols, "content_hash": content_hash(cols)}
                row |= {"lang": f["lang"], "quality_score": f["quality_score"]}
                for name in schema.names:
                    kept[name].append(row[name])
            silver_w.write_table(pa.table(kept, schema=schema))
            reject_w.write_table(pa.table(rejected, schema=REJECTIONS_SCHEMA))
            st.bronze_rows += len(records)
            st.silver_rows += len(kept["record_id"])


def _decision(f: dict[str, Any]) -> tuple[str | None, str | None, str | None, str | None]:
    """(reason, dup_of, detail, eval_set) of a record from its signature and its dedup decision."""
    if f["reject"] is not None:
        return f["reject"], None, f["detail"], f["eval_set"]
    return f["reason"], f["dup_of"], f["dup_detail"], None


def _count(st: StagedSilver, source: str, reason: str | None, f: dict[str, Any], eval_set: str | None) -> None:
    funnel = st.funnel[source]
    funnel["bronze"] += 1
    if f["pii"]:
        st.pii.update(orjson.loads(f["pii"]))
    if reason is not None:
        st.reasons[reason] += 1
    if reason is not None and reason.startswith("quality:"):
        return
    funnel["quality"] += 1
    if reason == "contaminated":
        st.eval_hits[eval_set].add(f["detail"].split(":", 1)[0])
        st.eval_removed[eval_set] += 1
        return
    funnel["decontaminated"] += 1
    if reason == "exact_dup":
        return
    funnel["exact_unique"] += 1
    if reason == "near_dup":
        return
    funnel["silver"] += 1


def iter_texts(lake: Lake, path: str, regime: str) -> Iterator[tuple[str, str, str]]:
    """(record_id, source, all text) of every record of a silver file, row group by row group."""
    pf = lake.parquet_file(path)
    for i in range(pf.num_row_groups):
        for rec in pf.read_row_group(i).to_pylist():
            yield rec["record_id"], rec["source"], all_text(regime, rec)
