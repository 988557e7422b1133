"""What each run of each asset cost (read from the Dagster instance by ptdata/defs/stage_runs.py), and what a target
volume would cost.

Every asset's materialization carries, for the whole run of that asset, `seconds` (wall), `cpu_seconds` (all its
threads), `records_in`, `dagster/row_count`, `usd`, and on the gold assets `tokens`. A run over a range of partitions
(single-run backfill) records one materialization per partition, each repeating those figures, so a (run, asset) is
one row here, with its partition range. The stage_runs asset exports these rows, the pipeline_cost mart sums them per
day, and `ptdata size` projects from them.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import pyarrow as pa

from ptdata.core.catalog import STAGE_RUNS_SCHEMA
from ptdata.core.regimes import regime_names


@dataclass(frozen=True)
class StageRun:
    """One run of one asset. The figures are None for materializations recorded before they were measured."""

    run_id: str | None  # None: a materialization reported without a run (the UI's "Report materialization")
    asset: str
    first_partition: dt.date | None  # None: an unpartitioned asset
    last_partition: dt.date | None
    partitions: int  # 0 for an unpartitioned asset
    started_at: dt.datetime  # when the run started, UTC
    seconds: float | None
    cpu_seconds: float | None
    records_in: int | None
    rows_out: int | None
    tokens: int | None
    usd: float | None


def stage_runs_table(runs: Sequence[StageRun], usd_per_core_hour: float) -> pa.Table:
    """The rows as the stage_runs table, with the configured price of a core-hour on each."""
    return pa.Table.from_pylist(
        [{**asdict(r), "usd_per_core_hour": usd_per_core_hour} for r in runs], schema=STAGE_RUNS_SCHEMA
    )


@dataclass(frozen=True)
class StageProjection:
    asset: str  # "total" for the whole pipeline
    runs: int  # the runs measured
    records: float  # what the stage reads for the target; for the total, the target in gold records
    records_per_cpu_second: float | None  # None for the total
    core_hours: float
    cores: int  # to finish within the wall-hour budget
    wall_hours: float  # with those cores
    usd: float


@dataclass(frozen=True)
class Projection:
    tokens_per_gold_record: float
    stages: list[StageProjection]
    total: StageProjection
    not_projected: dict[str, str]  # asset: why


class NoHistory(Exception):
    """No materialization with the figures a projection needs."""


def project(
    runs: Sequence[StageRun],
    usd_per_core_hour: float,
    *,
    tokens: float | None = None,
    records: float | None = None,
    hours: float = 24.0,
    last: int = 5,
) -> Projection:
    """Cores, wall hours and cost per stage for a target of gold `tokens` or gold `records`.

    Per stage, from its last `last` measured runs: its throughput (records read per CPU-second) and its records read
    per partition. A stage's funnel ratio is its records per partition over the gold stages' (the silver records gold
    reads), so a target in gold records sets what each stage reads; a target in tokens becomes gold records through
    the measured tokens per gold record. Partitions, not runs, are the unit because a run covers one day or a range.
    Unpartitioned assets (tokenizer, eval index, release, unpartitioned marts) run once or over the whole lake, not
    per record: they are named in `not_projected`. The cores of a stage finish it alone within `hours`; the total's
    finish every stage within `hours`.
    """
    if (tokens is None) == (records is None):
        raise ValueError("give a target in tokens or in records")
    measured: dict[str, list[StageRun]] = defaultdict(list)
    for r in sorted(runs, key=lambda r: r.started_at, reverse=True):
        if r.cpu_seconds is not None and len(measured[r.asset]) < last:
            measured[r.asset].append(r)
    if not measured:
        raise NoHistory("no materializations with timing")
    per_partition = {a: _per_partition(rs, "records_in") for a, rs in measured.items() if rs[0].partitions}
    gold = sum(per_partition.get(a, 0.0) for a in _gold_assets())
    if not gold:
        raise NoHistory("no gold materializations with records_in")
    tokens_per_record = sum(_per_partition(measured[a], "tokens") for a in _gold_assets() if a in measured) / gold
    if tokens is not None and not tokens_per_record:
        raise NoHistory("no gold materializations with tokens")
    target = tokens / tokens_per_record if tokens is not None else records
    stages, skipped = [], {}
    for asset, rs in sorted(measured.items()):
        cpu = sum(r.cpu_seconds for r in rs)
        read = sum(r.records_in or 0 for r in rs)
        if asset not in per_partition:
            skipped[asset] = "unpartitioned"
        elif all(r.records_in is None for r in rs):
            skipped[asset] = "no records_in recorded"
        elif not read or not cpu:
            skipped[asset] = "no records read or no CPU time"
        else:
            need = target * per_partition[asset] / gold
            stages.append(
                _stage(asset, len(rs), need, read / cpu, need / (read / cpu) / 3600, hours, usd_per_core_hour)
            )
    for asset in sorted({r.asset for r in runs} - measured.keys()):
        skipped[asset] = "no timing recorded"
    runs_measured = len({r.run_id for s in stages for r in measured[s.asset]})
    core_hours = sum(s.core_hours for s in stages)
    total = _stage("total", runs_measured, target, None, core_hours, hours, usd_per_core_hour)
    return Projection(tokens_per_record, stages, total, skipped)


def _gold_assets() -> tuple[str, ...]:
    return tuple(f"gold_{r}" for r in regime_names())


def _per_partition(runs: Sequence[StageRun], field: str) -> float:
    return sum(getattr(r, field) or 0 for r in runs) / sum(r.partitions for r in runs)


def _stage(
    asset: str,
    runs: int,
    records: float,
    throughput: float | None,
    core_hours: float,
    hours: float,
    usd_per_core_hour: float,
) -> StageProjection:
    cores = max(1, math.ceil(core_hours / hours))
    return StageProjection(
        asset, runs, records, throughput, core_hours, cores, core_hours / cores, core_hours * usd_per_core_hour
    )
