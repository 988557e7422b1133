"""What every layer's assets share: partitions, check results from audit outcomes, versions, metadata."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Sequence

import dagster as dg
import pyarrow as pa

from ptdata.checks.outcome import Outcome

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
    with that one-line reason (DESIGN principle 3). Returns normally when every blocking audit passed."""
    for check in blocking:
        yield check_result(name, check, [(d, a[check]) for d, a in audits])
    for check in warnings:
        yield check_result(name, check, [(d, a[check]) for d, a in audits], dg.AssetCheckSeverity.WARN)
    failed = [a[c] for _, a in audits for c in blocking if not a[c].passed]
    if failed:
        raise dg.Failure(
            description=f"{name} not published: {failed[0].description}",
            metadata={"staged_files_kept_at": staged_at} if staged_at else None,
        )


def combined_version(versions: dict[str, str]) -> str:
    """A data version for a run: the partition's own when there is one, else a hash over the partitions'."""
    if len(versions) == 1:
        return next(iter(versions.values()))
    return hashlib.sha256("\n".join(f"{k}={v}" for k, v in sorted(versions.items())).encode()).hexdigest()


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])
