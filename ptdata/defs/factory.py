"""What every layer's assets share: partitions, check results from audit outcomes, versions, metadata."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import dagster as dg
import pyarrow as pa

from ptdata.core.locks import PartitionBusy, partition_locks
from ptdata.core.outcome import Outcome
from ptdata.defs.resources import PtdataResource

SINGLE_RUN = dg.BackfillPolicy.single_run()


def daily_partitions(start_date: dt.date) -> dg.DailyPartitionsDefinition:
    # end_offset=1: today's partition exists, so data that lands today can be ingested today
    return dg.DailyPartitionsDefinition(start_date=start_date.isoformat(), end_offset=1)


def partition_dates(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The dates of a run: one partition, or a range under the single-run backfill policy."""
    return [dt.date.fromisoformat(k) for k in context.partition_keys]


def check_result(
    asset: str,
    name: str,
    per_date: Sequence[tuple[dt.date, Outcome]],
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    """One check result over all partitions of the run; it passes only when every partition's audit passed."""
    failed = [(d, o) for d, o in per_date if not o.passed]
    metadata = {"partitions": {d.isoformat(): o.metadata for d, o in per_date}}
    if failed:
        metadata["failed_partitions"] = [d.isoformat() for d, _ in failed]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=name,
        passed=not failed,
        severity=severity,
        metadata=metadata,
        description=failed[0][1].description if failed else None,
    )


def report_audits(
    name: str,
    audits: Sequence[tuple[dt.date, dict[str, Outcome]]],
    blocking: Sequence[str],
    warnings: Sequence[str] = (),
    staged_at: str | None = None,
) -> Iterator[dg.AssetCheckResult]:
    """Yield one check result per check over the run's partitions (ERROR for `blocking`, WARN for `warnings`),
    then raise dg.Failure naming the first failed blocking audit: the asset publishes nothing, and the run fails
    with that one-line reason (ARCHITECTURE.md, principle 3). Returns normally when every blocking audit passed."""
    for check in blocking:
        yield check_result(name, check, [(d, a[check]) for d, a in audits])
    for check in warnings:
        yield check_result(name, check, [(d, a[check]) for d, a in audits], dg.AssetCheckSeverity.WARN)
    failed = [a[c] for _, a in audits for c in blocking if not a[c].passed]
    if failed:
        raise dg.Failure(
            description=f"{name} not published: {failed[0].description}",
            metadata={"staged_files_kept_at": staged_at} if staged_at else None,
            allow_retries=False,  # the same data fails the same audit again
        )


def combined_version(versions: dict[str, str]) -> str:
    """A data version for a run: the partition's own when there is one, else a hash over the partitions'."""
    if len(versions) == 1:
        return next(iter(versions.values()))
    return hashlib.sha256("\n".join(f"{k}={v}" for k, v in sorted(versions.items())).encode()).hexdigest()


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


@dataclass
class Writer:
    """One asset's write of its run's partitions: where it stages, and what it costs."""

    stage_id: str  # `<run id>-<asset>`: the staging folder no other writer uses
    usd_per_core_hour: float
    wall0: float = field(default_factory=time.perf_counter)
    cpu0: float = field(default_factory=time.process_time)

    def figures(self, records_in: int) -> dict[str, float | int]:
        """Time, CPU and cost of the write so far, for its metadata (the pipeline_cost mart and `ptdata size` read
        them). CPU time is the process's, all threads: steps run one at a time in a process (in-process executor)
        or in a process each (multiprocess executor), so it is this step's."""
        seconds = time.perf_counter() - self.wall0
        cpu = time.process_time() - self.cpu0
        return {
            "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "records_in": records_in,
            "records_per_s": round(records_in / seconds, 1) if seconds else 0.0,
            "usd": round(cpu / 3600 * self.usd_per_core_hour, 6),
        }


@contextlib.contextmanager
def exclusive_write(context: dg.AssetExecutionContext, ptdata: PtdataResource) -> Iterator[Writer]:
    """What every asset that writes the lake runs inside: it holds the locks of the partitions it writes (a second
    run for one of them stops at once, saying which run holds it, having written nothing), removes what earlier
    runs of the same asset left staged for them (a killed run, a failed audit), and times the write."""
    asset = context.asset_key.to_user_string()
    dates = partition_dates(context) if context.assets_def.partitions_def is not None else None
    keys = [d.isoformat() for d in dates] if dates is not None else ["all"]
    try:
        with partition_locks(ptdata.settings.home / "locks", asset, keys, context.run_id):
            stage_id = f"{context.run_id}-{asset}"
            for path in ptdata.lake().discard_staged(stage_id, dates):
                context.log.info(f"removed files an earlier run of {asset} left staged: {path}")
            yield Writer(stage_id, ptdata.load_config().pipeline.cost.usd_per_core_hour)
    except PartitionBusy as e:
        raise dg.Failure(
            description=f"{e}; this run wrote nothing for it. Re-run once that run has finished.",
            allow_retries=False,
        ) from None
