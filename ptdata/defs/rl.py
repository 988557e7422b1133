"""RL assets: `rollouts`, `verified_rollouts` and `rollout_groups`, daily, from the dataplane's closed segments (ptdata/rl/loop.py);
specs of the staged-asset factory (ptdata/defs/factory.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg

from ptdata.core import catalog
from ptdata.core.lake import TablePartition
from ptdata.core.outcome import Outcome
from ptdata.defs.factory import Gate, Staged, StagedFile, Step, table_asset
from ptdata.rl.dataplane.log import SEGMENTS
from ptdata.rl.loop import StagedRollouts, dataplane_dir, stage_groups, stage_rollouts, stage_verified

RL_CODE_VERSION = "1"


def _stage_rollouts(step: Step, date: dt.date | None, _: Any) -> Staged:
    folder = dataplane_dir(step.cfg, step.ptdata.settings.home)
    part = catalog.ROLLOUTS.part(date)
    st = stage_rollouts(step.lake, folder, date, step.lake.staged_path(part, step.stage_id))
    # without a dataplane folder there is nothing to wait for
    complete = st.complete or not (folder / SEGMENTS).exists()
    desc = f"rollouts {date}: the dataplane's active segment may still take rollouts of the day"
    meta = {"dataplane_dir": str(folder), "closed_segments": st.segments, "day_closed": st.complete}
    return _staged(step, part, st, Outcome("complete", complete, meta, "" if complete else desc))


def _stage_verified(step: Step, date: dt.date | None, _: Any) -> Staged:
    folder = dataplane_dir(step.cfg, step.ptdata.settings.home)
    part = catalog.VERIFIED_ROLLOUTS.part(date)
    st = stage_verified(step.lake, step.cfg, folder, date, step.lake.staged_path(part, step.stage_id))
    n = st.figures["unverified"]
    desc = f"verified_rollouts {date}: {n} rollouts have no reward yet (the server is verifying them)" if n else ""
    return _staged(step, part, st, Outcome("verified", not n, {"unverified": n}, desc))


def _stage_groups(step: Step, date: dt.date | None, _: Any) -> Staged:
    folder = dataplane_dir(step.cfg, step.ptdata.settings.home)
    part = catalog.ROLLOUT_GROUPS.part(date)
    st = stage_groups(step.lake, folder, date, step.lake.staged_path(part, step.stage_id))
    n = st.figures["outcomes"].get("open", 0)
    desc = f"rollout_groups {date}: {n} groups are still in the dataplane's buffer" if n else ""
    return _staged(step, part, st, Outcome("closed", not n, {"open": n}, desc))


def _staged(step: Step, part: TablePartition, st: StagedRollouts, gate: Outcome) -> Staged:
    staged = step.lake.staged_path(part, step.stage_id)
    files = [StagedFile(staged, part, part.date.isoformat())]
    return Staged(part.date, files=files, audits={gate.name: gate}, records_in=st.rows, info=st)


def _metadata(step: Step, runs: list[Staged], versions: dict[str, str], _: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"dagster/row_count": sum(r.info.rows for r in runs), "data_versions": versions}
    figures = {r.date.isoformat(): r.info.figures for r in runs if r.info.figures}
    if figures:
        out["days"] = figures
    return out


# each table: how a partition is staged, its WARN gate, and what it is read from
_ASSETS = (
    (
        catalog.ROLLOUTS,
        _stage_rollouts,
        Gate("complete", "a later day has begun: the day's rollouts are whole", False),
        [],
    ),
    (catalog.VERIFIED_ROLLOUTS, _stage_verified, Gate("verified", "every rollout has its reward", False), ["rollouts"]),
    (
        catalog.ROLLOUT_GROUPS,
        _stage_groups,
        Gate("closed", "every group was trained on or evicted", False),
        ["verified_rollouts"],
    ),
)


def rl_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [
        table_asset(
            table,
            partitions,
            description=table.description,
            code_version=RL_CODE_VERSION,
            stage=stage,
            metadata=_metadata,
            gates=(gate,),
            deps=deps,
            kinds=frozenset({"parquet", "arrow"}),
        )
        for table, stage, gate, deps in _ASSETS
    ]
