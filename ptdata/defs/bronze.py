"""Bronze assets: bronze_<regime> for every regime, and bronze_quarantine over all of them (specs of the staged-asset
factory, ptdata/defs/factory.py; the work is ptdata/bronze/)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import dagster as dg

from ptdata.bronze.audits import audit_staged
from ptdata.bronze.stage import StagedBronze, stage_bronze
from ptdata.core import catalog
from ptdata.core.config import LoadedConfig, stable_hash
from ptdata.core.drift import mean_chars
from ptdata.defs.factory import Gate, Staged, StagedFile, Step, table_asset
from ptdata.sources import SourceUnavailable

# bump when the bronze code changes what it writes; the config part is added per asset
BRONZE_CODE_VERSION = "1"
GATES = (
    Gate("schema", "pandera schema and unique record_id"),
    Gate("accounting", "input = bronze + quarantine"),
    Gate("quarantine_rate", "quarantined share under the configured bound", blocking=False),
)


def _stage(step: Step, date: dt.date | None, _: Any) -> Staged:
    regime = step.name.removeprefix("bronze_")
    try:
        st = stage_bronze(step.cfg, step.lake, step.ptdata.landing, regime, date, step.stage_id, executor=step.executor)
    except SourceUnavailable as e:
        retries = step.cfg.pipeline.automation.source_retries
        attempt = f"attempt {step.context.retry_number + 1} of {retries + 1}"
        # retried later from scratch: staging starts over and nothing was published, so a retry is idempotent
        raise dg.Failure(
            description=f"{step.name} {date}: {e}; nothing was published ({attempt})", allow_retries=True
        ) from None
    step.context.log.info(
        f"{step.name} {date}: {st.records} records, {st.bronze_rows} bronze, {st.quarantined} quarantined"
    )
    return Staged(
        date,
        files=[
            StagedFile(st.quarantine_staged, st.quarantine),
            StagedFile(st.bronze_staged, st.bronze, date.isoformat()),
        ],
        audits=audit_staged(step.lake, step.cfg, st),
        records_in=st.records,
        bytes_in=st.bytes_read,
        stats={
            "volume": st.bronze_rows,
            "mean_chars": round(mean_chars(step.lake, st.bronze_staged, regime), 2),
            "quarantine_rate": round(st.quarantined / st.records, 6) if st.records else 0.0,
        },
        info=st,
    )


def _metadata(step: Step, staged: list[Staged], versions: dict[str, str], figures: dict[str, Any]) -> dict[str, Any]:
    runs: list[StagedBronze] = [s.info for s in staged]
    rows_per_source: Counter[str] = Counter()
    quarantined_by_reason: Counter[str] = Counter()
    quarantined_per_source: Counter[str] = Counter()
    for st in runs:
        for name, s in st.stats.items():
            rows_per_source[name] += s.bronze
            quarantined_per_source[name] += s.quarantined
            quarantined_by_reason.update(s.reasons)
    nbytes = sum(st.bytes_read for st in runs)
    return {
        "dagster/row_count": sum(st.bronze_rows for st in runs),
        "input_records": sum(st.records for st in runs),
        "rows_per_source": dict(sorted(rows_per_source.items())),
        "quarantined": sum(st.quarantined for st in runs),
        "quarantined_per_source": dict(sorted(quarantined_per_source.items())),
        "quarantined_by_reason": dict(sorted(quarantined_by_reason.items())),
        "bytes_read": nbytes,
        "data_versions": versions,
        "mb_per_s": round(nbytes / 1e6 / figures["seconds"], 2) if figures["seconds"] else 0.0,
        "notes": [f"{st.date}: {n}" for st in runs for n in st.notes][:50],
    }


def bronze_asset(regime: str, partitions: dg.PartitionsDefinition, cfg: LoadedConfig) -> dg.AssetsDefinition:
    p = cfg.pipeline
    return table_asset(
        catalog.bronze(regime),
        partitions,
        description=f"{regime} records of every {regime} source, mapped to the canonical schema, with provenance.",
        code_version=f"{BRONZE_CODE_VERSION}-{stable_hash([*p.sources_of(regime), p.bronze])}",
        stage=_stage,
        metadata=_metadata,
        gates=GATES,
        kinds=frozenset({"parquet", "python"}),
        # a rollouts source reads the day's verified_rollouts (rejection sampling)
        deps=[catalog.VERIFIED_ROLLOUTS.name] if any(s.kind == "rollouts" for s in p.sources_of(regime)) else [],
        drift="volume, mean length, quarantine rate against the trailing days",
        # a source that cannot be reached fails the step (SourceUnavailable) and is retried later
        retry_policy=dg.RetryPolicy(
            max_retries=p.automation.source_retries,
            delay=p.automation.source_retry_delay_seconds,
            backoff=dg.Backoff.EXPONENTIAL,
            jitter=dg.Jitter.PLUS_MINUS,
        ),
        # the daily schedule lands each day once: an asset not updated for a day and more has missed one
        freshness_policy=dg.FreshnessPolicy.time_window(
            fail_window=dt.timedelta(hours=p.monitoring.freshness_fail_hours),
            warn_window=dt.timedelta(hours=p.monitoring.freshness_warn_hours),
        ),
    )
