"""Silver audits, run on the staged files before publish. Each recomputes what it checks from the staged files
themselves (the eval index search, the PII scan, the accounting), rather than trusting the counts the staging
kept: a gate that reads the staging code's own bookkeeping cannot catch that code's bugs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ptdata.core import catalog
from ptdata.core.catalog import SILVER_REJECTIONS, record_pandera
from ptdata.core.config import LoadedConfig
from ptdata.core.executor import INLINE, Executor
from ptdata.core.lake import Lake, parquet_list, partition_days
from ptdata.core.outcome import Outcome
from ptdata.core.validate import validate_file
from ptdata.silver.decontam import EvalIndex, find_contamination_batch
from ptdata.silver.pii import Allowlist, find_pii
from ptdata.silver.signatures import source_rules
from ptdata.silver.stage import StagedSilver, iter_texts


def schema(lake: Lake, cfg: LoadedConfig, st: StagedSilver) -> Outcome:
    sources = [s.name for s in cfg.pipeline.sources_of(st.regime)]
    silver = validate_file(lake, st.silver_staged, record_pandera("silver", st.regime, sources, st.date))
    rejections = validate_file(lake, st.rejections_staged, SILVER_REJECTIONS.pandera)
    failures = silver.metadata["failures"] + rejections.metadata["failures"]
    desc = (
        f"schema failed on {st.date}: {(silver if not silver.passed else rejections).description}" if failures else ""
    )
    return Outcome("schema", not failures, {"failures": failures[:5]}, desc)


def accounting(lake: Lake, st: StagedSilver) -> Outcome:
    """Each bronze record is in exactly one of silver or the rejections, counted per source from the files."""
    bronze = lake.path(catalog.bronze(st.regime).part(st.date))
    with lake.duckdb() as con:
        con.execute(
            f"create temp table b as select record_id, source from read_parquet('{bronze}'); "
            f"create temp table o as select record_id, source, 'silver' as side from read_parquet('{st.silver_staged}') "
            f"union all select record_id, source, 'rejected' from read_parquet('{st.rejections_staged}')"
        )
        lost = con.sql("select count(*) from b anti join o using (record_id)").fetchone()[0]
        extra = con.sql("select count(*) from o anti join b using (record_id)").fetchone()[0]
        twice = con.sql("select count(*) - count(distinct record_id) from o").fetchone()[0]
        rows = con.sql(
            "select source, side, count(*) from (select source, 'bronze' as side from b union all "
            "select source, side from o) group by all order by all"
        ).fetchall()
    per_source: dict[str, dict[str, int]] = {}
    for source, side, n in rows:
        per_source.setdefault(source, {"bronze": 0, "silver": 0, "rejected": 0})[side] = n
    bad = [f"{lost} bronze records are in neither silver nor the rejections"] if lost else []
    bad += [f"{extra} records are not in bronze"] if extra else []
    bad += [f"{twice} records are written twice"] if twice else []
    bad += [
        f"{s}: {c['bronze']} bronze records but {c['silver']} silver + {c['rejected']} rejected"
        for s, c in per_source.items()
        if c["bronze"] != c["silver"] + c["rejected"]
    ]
    desc = f"accounting failed on {st.date}: {bad[0]}" if bad else ""
    return Outcome("accounting", not bad, {"per_source": per_source, "problems": bad}, desc)


def unique_content(lake: Lake, cfg: LoadedConfig, st: StagedSilver) -> Outcome:
    """No two kept records share a content hash, within the partition or with an earlier published one."""
    earlier = [
        lake.path(p)
        for day in partition_days(cfg.pipeline.start_date, st.date)[:-1]
        if lake.exists(p := catalog.silver(st.regime).part(day))
    ]
    with lake.duckdb() as con:
        within = con.sql(
            f"select count(*) - count(distinct content_hash) from read_parquet('{st.silver_staged}')"
        ).fetchone()[0]
        across = 0
        if earlier:
            across = con.sql(
                f"select count(*) from read_parquet('{st.silver_staged}') where content_hash in "
                f"(select content_hash from read_parquet({parquet_list(earlier)}))"
            ).fetchone()[0]
    bad = [f"{within} records repeat a content hash within the partition"] if within else []
    bad += [f"{across} records repeat the content hash of an earlier partition's record"] if across else []
    desc = f"unique_content failed on {st.date}: {bad[0]}" if bad else ""
    return Outcome("unique_content", not bad, {"earlier_partitions": len(earlier), "problems": bad}, desc)


def decontaminated(lake: Lake, st: StagedSilver, index: EvalIndex, batch: int = 4096) -> Outcome:
    """The staged silver searched in the eval index again: nothing may match."""
    found: list[str] = []
    if len(index):
        ids, texts = [], []
        for rid, _, text in iter_texts(lake, st.silver_staged, st.regime):
            ids.append(rid)
            texts.append(text)
            if len(texts) == batch:
                found += _matches(index, ids, texts)
                ids, texts = [], []
        found += _matches(index, ids, texts)
    desc = (
        f"decontaminated failed on {st.date}: {len(found)} kept records match an eval item, first {found[0]}"
        if found
        else ""
    )
    return Outcome("decontaminated", not found, {"contaminated": len(found), "first": found[:5]}, desc)


def _matches(index: EvalIndex, ids: list[str], texts: list[str]) -> list[str]:
    return [
        f"{rid} ~ {m.eval_set}/{m.item_id}"
        for rid, m in zip(ids, find_contamination_batch(index, texts), strict=True)
        if m
    ]


@dataclass(frozen=True)
class _PiiScan:
    """What each row group's residual PII scan needs (the executor ships it once to every worker)."""

    lake: Lake
    path: str
    regime: str
    allow: dict[str, Allowlist]


def _pii_left(scan: _PiiScan, group: int) -> tuple[Counter[str], list[str]]:
    """The PII spans found in one row group's kept texts, per type, and the first five (record_id: type)."""
    by_type: Counter[str] = Counter()
    first: list[str] = []
    for rid, source, text in iter_texts(scan.lake, scan.path, scan.regime, [group]):
        spans = find_pii(text, scan.allow[source])
        by_type.update(s.type for s in spans)
        if spans and len(first) < 5:
            first.append(f"{rid}: {spans[0].type}")
    return by_type, first


def pii_free(lake: Lake, cfg: LoadedConfig, st: StagedSilver, executor: Executor = INLINE) -> Outcome:
    """The staged silver scanned for PII again, with each source's allowlist: nothing may be found. A row group
    per executor task: the scan is per-record work as heavy as the redaction it checks."""
    scan = _PiiScan(lake, st.silver_staged, st.regime, {n: r.allow for n, r in source_rules(cfg, st.regime).items()})
    by_type: Counter[str] = Counter()
    first: list[str] = []
    groups = range(lake.parquet_file(st.silver_staged).num_row_groups)
    for found, examples in executor.map(_pii_left, scan, groups):
        by_type.update(found)
        first += examples[: 5 - len(first)]
    n = sum(by_type.values())
    desc = f"pii_free failed on {st.date}: {n} PII spans left in kept records, first {first[0]}" if n else ""
    return Outcome("pii_free", not n, {"found": dict(by_type), "first": first}, desc)


def quality_pass_rate(st: StagedSilver, floor: float) -> Outcome:
    rate = st.quality_passed / st.bronze_rows if st.bronze_rows else 1.0
    ok = rate >= floor
    desc = "" if ok else f"{st.date}: {rate:.1%} of records pass the quality rules, below the floor {floor:.1%}"
    return Outcome("quality_pass_rate", ok, {"rate": round(rate, 6), "floor": floor}, desc)


def complete_history(st: StagedSilver) -> Outcome:
    """Whether every earlier partition's signatures were there to dedup against (a warning: see
    curate.signature_inputs)."""
    missing = [d.isoformat() for d in st.missing_history]
    desc = (
        f"silver_{st.regime} {st.date} was deduplicated without the earlier partitions {', '.join(missing[:5])}, "
        "which were not materialized: re-materialize it once they are"
    )
    return Outcome("complete_history", not missing, {"missing_partitions": missing}, desc if missing else "")


def audit_staged(
    lake: Lake, cfg: LoadedConfig, st: StagedSilver, index: EvalIndex, executor: Executor = INLINE
) -> dict[str, Outcome]:
    """Every silver audit of one staged partition, by check name (the silver assets' gates)."""
    return {
        "schema": schema(lake, cfg, st),
        "accounting": accounting(lake, st),
        "unique_content": unique_content(lake, cfg, st),
        "decontaminated": decontaminated(lake, st, index),
        "pii_free": pii_free(lake, cfg, st, executor),
        "quality_pass_rate": quality_pass_rate(st, cfg.pipeline.quality.min_pass_rate),
        "complete_history": complete_history(st),
    }
