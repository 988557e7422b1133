"""Bronze assets: one per regime, and bronze_quarantine over all of them.
Each bronze_<regime> materialization stages its partitions, audits them (schema, accounting), and publishes
only when every blocking audit passed; otherwise it records the failed checks and fails the run, leaving the
published partitions as they were.
"""

import datetime as dt
from collections import Counter

import dagster as dg

from ptdata.bronze.audits import audit_staged
from ptdata.bronze.stage import StagedBronze, stage_bronze
from ptdata.core import catalog
from ptdata.core.catalog import bronze_schema
from ptdata.core.config import LoadedConfig, stable_hash
from ptdata.core.drift import drift_outcomes, mean_chars, write_stats
from ptdata.core.lake import Lake
from ptdata.core.outcome import Outcome
from ptdata.defs.factory import (
    SINGLE_RUN,
    Writer,
    column_schema,
    combined_version,
    exclusive_write,
    partition_dates,
    report_audits,
)
from ptdata.defs.parts import regime_parts_asset
from ptdata.defs.resources import PtdataResource
from ptdata.sources import SourceUnavailable

# bump when the bronze code changes what it writes; the config part is added per asset
BRONZE_CODE_VERSION = "1"


def _metadata(staged: list[StagedBronze], versions: dict[str, str], lake: Lake, table: str, writer: Writer) -> dict:
    rows_per_source: Counter[str] = Counter()
    quarantined_by_reason: Counter[str] = Counter()
    quarantined_per_source: Counter[str] = Counter()
    for st in staged:
        for name, s in st.stats.items():
            rows_per_source[name] += s.bronze
            quarantined_per_source[name] += s.quarantined
            quarantined_by_reason.update(s.reasons)
    records = sum(st.records for st in staged)
    nbytes = sum(st.bytes_read for st in staged)
    figures = writer.figures(records)
    return {
        "dagster/row_count": sum(st.bronze_rows for st in staged),
        "dagster/column_schema": column_schema(bronze_schema(staged[0].regime)),
        "input_records": records,
        "rows_per_source": dict(sorted(rows_per_source.items())),
        "quarantined": sum(st.quarantined for st in staged),
        "quarantined_per_source": dict(sorted(quarantined_per_source.items())),
        "quarantined_by_reason": dict(sorted(quarantined_by_reason.items())),
        "bytes_read": nbytes,
        **figures,
        "mb_per_s": round(nbytes / 1e6 / figures["seconds"], 2) if figures["seconds"] else 0.0,
        "data_versions": versions,
        "notes": [f"{st.date}: {n}" for st in staged for n in st.notes][:50],
        "path": dg.MetadataValue.path(catalog.table(table).url(lake)),
    }


def _stats(lake: Lake, st: StagedBronze) -> dict:
    """What the drift check compares from one day to the next."""
    return {
        "volume": st.bronze_rows,
        "mean_chars": round(mean_chars(lake, st.bronze_staged, st.regime), 2),
        "quarantine_rate": round(st.quarantined / st.records, 6) if st.records else 0.0,
    }


def bronze_asset(regime: str, partitions: dg.PartitionsDefinition, cfg: LoadedConfig) -> dg.AssetsDefinition:
    name = f"bronze_{regime}"
    version = f"{BRONZE_CODE_VERSION}-{stable_hash([*cfg.pipeline.sources_of(regime), cfg.pipeline.bronze])}"

    @dg.asset(
        name=name,
        group_name="bronze",
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        code_version=version,
        # the daily schedule lands each day once: an asset not updated for a day and more has missed one
        freshness_policy=dg.FreshnessPolicy.time_window(
            fail_window=dt.timedelta(hours=cfg.pipeline.monitoring.freshness_fail_hours),
            warn_window=dt.timedelta(hours=cfg.pipeline.monitoring.freshness_warn_hours),
        ),
        # a source that cannot be reached fails the step (SourceUnavailable); it is retried later, from scratch:
        # staging starts over and nothing was published, so a retry is idempotent
        retry_policy=dg.RetryPolicy(
            max_retries=cfg.pipeline.automation.source_retries,
            delay=cfg.pipeline.automation.source_retry_delay_seconds,
            backoff=dg.Backoff.EXPONENTIAL,
            jitter=dg.Jitter.PLUS_MINUS,
        ),
        kinds={"parquet", "python"},
        description=f"{regime} records of every {regime} source, mapped to the canonical schema, with provenance.",
        check_specs=[
            dg.AssetCheckSpec("schema", asset=name, blocking=True, description="pandera schema and unique record_id"),
            dg.AssetCheckSpec("accounting", asset=name, blocking=True, description="input = bronze + quarantine"),
            dg.AssetCheckSpec(
                "quarantine_rate", asset=name, description="quarantined share under the configured bound"
            ),
            dg.AssetCheckSpec(
                "drift", asset=name, description="volume, mean length, quarantine rate against the trailing days"
            ),
        ],
    )
    def _bronze(context: dg.AssetExecutionContext, ptdata: PtdataResource):  # noqa: ANN202 - a generator of events
        cfg = ptdata.load_config()
        lake = ptdata.lake()
        staged, audits = [], []
        with exclusive_write(context, ptdata) as writer:
            for date in partition_dates(context):
                try:
                    st = stage_bronze(cfg, lake, ptdata.landing, regime, date, writer.stage_id)
                except SourceUnavailable as e:
                    attempt = f"attempt {context.retry_number + 1} of {cfg.pipeline.automation.source_retries + 1}"
                    raise dg.Failure(
                        description=f"{name} {date}: {e}; nothing was published ({attempt})", allow_retries=True
                    ) from None
                staged.append(st)
                audits.append((date, audit_staged(lake, cfg, st)))
                context.log.info(
                    f"{name} {date}: {st.records} records, {st.bronze_rows} bronze, {st.quarantined} quarantined"
                )
            stats = {st.date: _stats(lake, st) for st in staged}
            drifts = drift_outcomes(lake, name, stats, cfg.pipeline.monitoring)
            audits = [(date, {**audit, "drift": drifts[date]}) for date, audit in audits]
            yield from _publish_or_fail(name, lake, staged, audits, writer)
            for date, s in stats.items():
                write_stats(lake, name, date, s)

    return _bronze


def _publish_or_fail(
    name: str,
    lake: Lake,
    staged: list[StagedBronze],
    audits: list[tuple[dt.date, dict[str, Outcome]]],
    writer: Writer,
):  # noqa: ANN202 - a generator of events
    kept = ", ".join(sorted({st.bronze_staged.rsplit("/", 2)[0] for st in staged}))
    yield from report_audits(name, audits, ("schema", "accounting"), ("quarantine_rate", "drift"), kept)
    versions = {}
    for st in staged:
        lake.publish(st.quarantine_staged, st.quarantine)
        versions[st.date.isoformat()] = lake.data_version(lake.publish(st.bronze_staged, st.bronze))
    yield dg.MaterializeResult(
        metadata=_metadata(staged, versions, lake, name, writer),
        data_version=dg.DataVersion(combined_version(versions)),
    )


def bronze_quarantine_asset(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    return regime_parts_asset(
        catalog.BRONZE_QUARANTINE,
        partitions,
        BRONZE_CODE_VERSION,
        "Every input record that could not be read or mapped, with its reason and the raw input.",
    )
