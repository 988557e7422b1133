"""The stage_runs asset: what every run of every asset cost, read from the Dagster instance (the rows and the
projections from them are ptdata/ops/cost.py)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence

import dagster as dg

from ptdata.core.catalog import STAGE_RUNS
from ptdata.core.config import LoadedConfig, stable_hash
from ptdata.defs.factory import Staged, StagedFile, Step, table_asset
from ptdata.ops.cost import StageRun, stage_runs_table

# bump when the export changes what it writes; the cost config part is added (its price is a column)
OPS_CODE_VERSION = "1"
# materializations read per call, and runs looked up per call (SQLite bounds the variables of one query)
_PAGE = 1000
_RUNS_PER_QUERY = 500


def _stage(step: Step, exported: Sequence[dg.AssetKey]) -> Staged:
    runs = read_stage_runs(step.context.instance, [*exported, dg.AssetKey("stage_runs")])
    table = stage_runs_table(runs, step.cfg.pipeline.cost.usd_per_core_hour)
    part = STAGE_RUNS.part()
    staged = step.lake.staged_path(part, step.stage_id)
    with step.lake.parquet_writer(staged, table.schema) as w:
        w.write_table(table)
    return Staged(
        None,
        files=[StagedFile(staged, part, "all")],
        # what it read: one materialization per partition, one for an unpartitioned asset
        records_in=sum(max(r.partitions, 1) for r in runs),
        info={
            "dagster/row_count": table.num_rows,
            "runs": len({r.run_id for r in runs}),
            "without_timing": sum(r.cpu_seconds is None for r in runs),
        },
    )


def stage_runs_asset(
    cfg: LoadedConfig, exported: Sequence[dg.AssetKey], upstream: Sequence[dg.AssetKey]
) -> dg.AssetsDefinition:
    """`exported`: the other assets whose runs it lists (its own are listed too); `upstream`: those it runs after
    when a run materializes them as well, so that its export holds that run's stages."""
    return table_asset(
        STAGE_RUNS,
        None,
        description="One row per run and asset from the Dagster instance's materializations: partition range, "
        "run start, wall and CPU seconds, records in, rows out, tokens, $ and the configured $ per core-hour.",
        code_version=f"{OPS_CODE_VERSION}-{stable_hash(cfg.pipeline.cost)}",
        stage=lambda step, _, __: _stage(step, exported),
        metadata=lambda step, staged, versions, figures: dict(staged[0].info),
        deps=list(upstream),
        kinds=frozenset({"parquet", "dagster"}),
    )


def read_stage_runs(instance: dg.DagsterInstance, assets: Iterable[dg.AssetKey]) -> list[StageRun]:
    """Every materialization of `assets` in the instance, one row per (run, asset), oldest run first."""
    # keyed by run, or by event for a materialization reported without a run: each of those stands alone
    events: dict[tuple[str, str], list[dg.EventLogRecord]] = defaultdict(list)
    for key in assets:
        cursor = None
        while True:
            page = instance.fetch_materializations(key, limit=_PAGE, cursor=cursor, ascending=True)
            for record in page.records:
                events[(record.run_id or f"event {record.storage_id}", key.to_user_string())].append(record)
            if not page.has_more:
                break
            cursor = page.cursor
    starts = _run_starts(instance, sorted({r[0].run_id for r in events.values() if r[0].run_id}))
    rows = []
    for (_, asset), records in events.items():
        # a materialization without a run, or whose run record was deleted: its own time is the closest known
        start = starts.get(records[0].run_id, min(r.timestamp for r in records))
        rows.append(_stage_run(records[0].run_id or None, asset, records, start))
    return sorted(rows, key=lambda r: (r.started_at, r.run_id or "", r.asset))


def _run_starts(instance: dg.DagsterInstance, run_ids: Sequence[str]) -> dict[str, float]:
    starts = {}
    for i in range(0, len(run_ids), _RUNS_PER_QUERY):
        for rec in instance.get_run_records(dg.RunsFilter(run_ids=list(run_ids[i : i + _RUNS_PER_QUERY]))):
            starts[rec.dagster_run.run_id] = rec.start_time or rec.create_timestamp.timestamp()
    return starts


def _stage_run(run_id: str | None, asset: str, records: list[dg.EventLogRecord], started_at: float) -> StageRun:
    dates = sorted({dt.date.fromisoformat(r.partition_key) for r in records if r.partition_key})
    metadata = records[-1].asset_materialization.metadata  # every partition's event repeats the run's figures
    return StageRun(
        run_id=run_id,
        asset=asset,
        first_partition=dates[0] if dates else None,
        last_partition=dates[-1] if dates else None,
        partitions=len(dates),
        started_at=dt.datetime.fromtimestamp(started_at, dt.UTC),
        seconds=_number(metadata, "seconds", float),
        cpu_seconds=_number(metadata, "cpu_seconds", float),
        records_in=_number(metadata, "records_in", int),
        rows_out=_number(metadata, "dagster/row_count", int),
        tokens=_number(metadata, "tokens", int),
        usd=_number(metadata, "usd", float),
    )


def _number(metadata: dict[str, dg.MetadataValue], key: str, kind: type[int] | type[float]) -> int | float | None:
    """A numeric metadata value, or None when it is missing or not a number (the release's `tokens` is a dict)."""
    value = getattr(metadata.get(key), "value", None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return kind(value)
