"""Running assets for a partition or a range in one Dagster run; shared by the CLI and the tests."""

from __future__ import annotations

import logging

import dagster as dg

from ptdata.core.config import Settings
from ptdata.defs.location import build_definitions


def partition_tags(start: str | None, end: str | None) -> dict[str, str]:
    """The run tags Dagster's own CLI sets: one partition, or a range for single-run backfills; none at all for a run
    of unpartitioned assets."""
    if start is None or end is None:
        return {}
    if start == end:
        return {"dagster/partition": start}
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


def selected_keys(settings: Settings, select: str, defs: dg.Definitions | None = None) -> set[dg.AssetKey]:
    defs = defs or build_definitions(settings)
    try:
        selection = dg.AssetSelection.all() if select == "*" else dg.AssetSelection.from_string(select)
    except dg.DagsterError as e:  # a selection Dagster cannot parse: say how one is written, not its traceback
        raise ValueError(
            f"the selection {select!r} is not one Dagster can read ({e}); write asset keys and groups with "
            "'or', e.g. 'key:bronze_sft or group:silver'"
        ) from None
    keys = selection.resolve(defs.resolve_asset_graph())
    if not keys:
        raise ValueError(f"the selection {select!r} matches no asset")
    return keys


def partitioned_keys(settings: Settings, select: str) -> set[dg.AssetKey]:
    """The daily partitioned assets among `select`."""
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    return {k for k in selected_keys(settings, select, defs) if graph.get(k).partitions_def is not None}


def execute(
    settings: Settings,
    select: str,
    start: str | None,
    end: str | None,
    instance: dg.DagsterInstance,
    logger: logging.Handler | None = None,
) -> dg.ExecuteInProcessResult:
    """One run over the selected assets and partitions, recorded in `instance`; failures are in the result.

    With `logger`, the run's events go to that handler alone (the CLI's progress lines) instead of the console.
    """
    loggers = {"handler": _handler_logger(logger)} if logger else None
    defs = build_definitions(settings, loggers)
    job = defs.resolve_implicit_global_asset_job_def()
    run_config = {"loggers": {"handler": {}}} if logger else None
    return job.execute_in_process(
        instance=instance,
        asset_selection=list(selected_keys(settings, select, defs)),
        tags=partition_tags(start, end),
        raise_on_error=False,
        run_config=run_config,
    )


def _handler_logger(handler: logging.Handler) -> dg.LoggerDefinition:
    @dg.logger(description="sends the run's events to one logging handler")
    def _logger(_init_context: dg.InitLoggerContext) -> logging.Logger:
        log = logging.Logger("ptdata.run", level=logging.DEBUG)
        log.addHandler(handler)
        return log

    return _logger
