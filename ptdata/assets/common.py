"""What every layer's assets share: partitions, check results from audit outcomes, versions, metadata."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

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


def combined_version(versions: dict[str, str]) -> str:
    """A data version for a run: the partition's own when there is one, else a hash over the partitions'."""
    if len(versions) == 1:
        return next(iter(versions.values()))
    return hashlib.sha256("\n".join(f"{k}={v}" for k, v in sorted(versions.items())).encode()).hexdigest()


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])
