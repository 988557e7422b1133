"""The stage_runs asset: what every run of every asset cost, exported from the Dagster instance (see ptdata/ops.py)."""

from collections.abc import Sequence

import dagster as dg

from ptdata.assets.common import SINGLE_RUN, column_schema, exclusive_write
from ptdata.config import LoadedConfig, stable_hash
from ptdata.lake import TablePartition
from ptdata.ops import read_stage_runs, stage_runs_table
from ptdata.resources import PtdataResource

# bump when the export changes what it writes; the cost config part is added (its price is a column)
OPS_CODE_VERSION = "1"
STAGE_RUNS = TablePartition("ops", "stage_runs")


def stage_runs_asset(
    cfg: LoadedConfig, exported: Sequence[dg.AssetKey], upstream: Sequence[dg.AssetKey]
) -> dg.AssetsDefinition:
    """`exported`: the other assets whose runs it lists (its own are listed too); `upstream`: those it runs after
    when a run materializes them as well, so that its export holds that run's stages."""

    @dg.asset(
        name="stage_runs",
        group_name="ops",
        code_version=f"{OPS_CODE_VERSION}-{stable_hash(cfg.pipeline.cost)}",
        # `--partition-range` needs a single-run policy on every selected asset, unpartitioned ones included
        backfill_policy=SINGLE_RUN,
        deps=list(upstream),
        kinds={"parquet", "dagster"},
        description="One row per run and asset from the Dagster instance's materializations: partition range, run "
        "start, wall and CPU seconds, records in, rows out, tokens, $ and the configured $ per core-hour.",
    )
    def _stage_runs(context: dg.AssetExecutionContext, ptdata: PtdataResource) -> dg.MaterializeResult:
        lake = ptdata.lake()
        with exclusive_write(context, ptdata) as writer:
            runs = read_stage_runs(context.instance, [*exported, dg.AssetKey("stage_runs")])
            table = stage_runs_table(runs, ptdata.load_config().pipeline.cost.usd_per_core_hour)
            staged = lake.staged_path(STAGE_RUNS, writer.stage_id)
            with lake.parquet_writer(staged, table.schema) as w:
                w.write_table(table)
            path = lake.publish(staged, STAGE_RUNS)
            return dg.MaterializeResult(
                metadata={
                    "dagster/row_count": table.num_rows,
                    "dagster/column_schema": column_schema(table.schema),
                    "runs": len({r.run_id for r in runs}),
                    "without_timing": sum(r.cpu_seconds is None for r in runs),
                    # what it read: one materialization per partition, one for an unpartitioned asset
                    **writer.figures(sum(max(r.partitions, 1) for r in runs)),
                    "path": dg.MetadataValue.path(f"{lake.url}/{STAGE_RUNS.relpath}"),
                },
                data_version=dg.DataVersion(lake.data_version(path)),
            )

    return _stage_runs
