"""Bronze audits, run on staged files before publish (ARCHITECTURE.md, principle 3). Plain functions; the asset
reports each outcome as an AssetCheckResult and publishes only when every blocking one passed."""

from __future__ import annotations

from collections import Counter

from ptdata.bronze.stage import StagedBronze
from ptdata.core.catalog import BRONZE_QUARANTINE, record_pandera
from ptdata.core.config import LoadedConfig
from ptdata.core.lake import Lake
from ptdata.core.outcome import Outcome
from ptdata.core.validate import validate_file


def source_counts(lake: Lake, path: str) -> Counter[str]:
    table = lake.read_table(path, columns=["source"])
    return Counter(table.column("source").to_pylist())


def accounting(lake: Lake, staged: StagedBronze) -> Outcome:
    """Each input record is in exactly one of bronze or quarantine: counted per source from the staged files."""
    bronze = source_counts(lake, staged.bronze_staged)
    quarantine = source_counts(lake, staged.quarantine_staged)
    per_source = {}
    bad = []
    for name, st in staged.stats.items():
        got = bronze[name] + quarantine[name]
        per_source[name] = {"input": st.records, "bronze": bronze[name], "quarantine": quarantine[name]}
        if got != st.records:
            bad.append(f"{name}: {st.records} input records but {bronze[name]} bronze + {quarantine[name]} quarantined")
    unknown = (set(bronze) | set(quarantine)) - set(staged.stats)
    if unknown:
        bad.append(f"rows from sources that were not read: {sorted(unknown)}")
    desc = f"accounting failed on {staged.date}: {bad[0]}" if bad else ""
    return Outcome("accounting", not bad, {"per_source": per_source, "problems": bad}, desc)


def quarantine_rate(staged: StagedBronze, bound: float) -> Outcome:
    rate = staged.quarantined / staged.records if staged.records else 0.0
    ok = rate <= bound
    desc = "" if ok else f"{staged.date}: {rate:.1%} of records quarantined, above the bound {bound:.1%}"
    return Outcome("quarantine_rate", ok, {"rate": round(rate, 6), "bound": bound}, desc)


def audit_staged(lake: Lake, cfg: LoadedConfig, st: StagedBronze) -> dict[str, Outcome]:
    """Every bronze audit of one staged partition, by check name."""
    sources = [s.name for s in cfg.pipeline.sources_of(st.regime)]
    schema = validate_file(lake, st.bronze_staged, record_pandera("bronze", st.regime, sources, st.date))
    q_schema = validate_file(lake, st.quarantine_staged, BRONZE_QUARANTINE.pandera)
    if not q_schema.passed:
        schema = Outcome("schema", False, {**schema.metadata, "quarantine": q_schema.metadata}, q_schema.description)
    return {
        "schema": schema,
        "accounting": accounting(lake, st),
        "quarantine_rate": quarantine_rate(st, cfg.pipeline.bronze.max_quarantine_rate),
    }
