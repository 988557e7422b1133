"""The loop back to data: the dataplane's closed segments become the lake's `rollouts` and `verified_rollouts`.

`rollouts` of day D are the rows of the closed segments (ptdata/rl/dataplane/log.py) received on D (UTC), in
intake order; the segments are only read, never opened for writing, so a running server is not disturbed. The day
is complete once a later day's rollouts have come in (segments rotate at midnight, so D's are then all in closed
segments): before that, the active segment may still take rollouts of D. `rollout_groups` says what became of
each group that began on D (acknowledged with the staleness it was served at, or evicted and why) from the
control log's acknowledgements and evictions. `verified_rollouts` adds the reward each rollout was trained on, the
client's or else the server's verdict from the control log, and reports rewards per policy version, the pass
rate per prompt (its difficulty), verifier error rates, and the prompts whose pass rate stayed 0 or 1 over the
window (for curriculum filtering). ARCHITECTURE.md, "RL dataplane".
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ptdata.core import catalog
from ptdata.core.config import LoadedConfig
from ptdata.core.lake import Lake
from ptdata.rl.dataplane.log import CONTROL_LOG, SEGMENTS, read_frames, read_segment

# a reward at least this is a pass (all tests passed, the answer matched)
PASS = 1.0


def dataplane_dir(cfg: LoadedConfig, home: Path) -> Path:
    d = cfg.pipeline.rl.dataplane_dir
    return cfg.resolve(d) if d else home / "dataplane"


def segments(folder: Path) -> list[Path]:
    """The segment files, oldest first: all but the last are closed; the last is the one the server appends to."""
    return sorted((folder / SEGMENTS).glob("segment-*.arrow"))


def _later_day_begun(active: Path | None, date: dt.date) -> bool:
    # the active segment's first rollouts are of a day after `date`: segments rotate at midnight, so `date` is over
    for batch in read_segment(active) if active else ():
        return pc.any(pc.greater(_utc_date(batch.column("received_at")), pa.scalar(date, pa.date32()))).as_py()
    return False


@dataclass
class StagedRollouts:
    rows: int = 0
    complete: bool = False
    segments: int = 0
    figures: dict[str, Any] = field(default_factory=dict)


def _utc_date(column: pa.Array) -> pa.Array:
    seconds = pc.cast(pc.multiply(column, 1_000_000), pa.int64())
    return pc.cast(pc.cast(seconds, pa.timestamp("us", tz="UTC")), pa.date32())


def stage_rollouts(lake: Lake, folder: Path, date: dt.date, staged: str) -> StagedRollouts:
    """Write day `date`'s rollouts from the closed segments to `staged`."""
    out = StagedRollouts()
    schema = catalog.ROLLOUTS.schema
    files = segments(folder)
    with lake.parquet_writer(staged, schema) as writer:
        for path in files[:-1]:
            out.segments += 1
            for batch in read_segment(path):
                days = _utc_date(batch.column("received_at"))
                out.complete |= pc.any(pc.greater(days, pa.scalar(date, pa.date32()))).as_py() or False
                mask = pc.equal(days, pa.scalar(date, pa.date32()))
                picked = pa.Table.from_batches([batch]).filter(mask)
                if picked.num_rows:
                    picked = picked.append_column("date", pa.array([date] * picked.num_rows, pa.date32()))
                    writer.write_table(picked.cast(schema))
                    out.rows += picked.num_rows
    out.complete |= _later_day_begun(files[-1] if files else None, date)
    return out


def read_verdicts(folder: Path) -> dict[int, tuple[float, str | None]]:
    """The server's verdicts by rollout seq, read from the control log without opening it for writing."""
    out = {}
    for frame in read_frames(folder / CONTROL_LOG):
        entry = orjson.loads(frame)
        if entry["t"] == "verdict":
            out[entry["seq"]] = (entry["reward"], entry.get("error"))
    return out


def read_outcomes(folder: Path) -> dict[str, tuple[str, int | None]]:
    """What became of each closed group, by group id: (acknowledged, the most staleness it was served at) or
    (the eviction's reason, None), from the control log."""
    out: dict[str, tuple[str, int | None]] = {}
    for frame in read_frames(folder / CONTROL_LOG):
        entry = orjson.loads(frame)
        if entry["t"] == "ack":
            at = 0
            for gid, n in zip(entry["groups"], entry["rollouts"], strict=True):
                out[gid] = ("acknowledged", max(entry["staleness"][at : at + n]))
                at += n
        elif entry["t"] == "evict":
            out[entry["group"]] = (entry["reason"], None)
    return out


def stage_groups(lake: Lake, folder: Path, date: dt.date, staged: str) -> StagedRollouts:
    """The groups whose first rollout came in on `date` (from the day's verified rollouts), with their outcome."""
    rollouts = lake.read_table(
        lake.path(catalog.VERIFIED_ROLLOUTS.part(date)),
        columns=["seq", "group_id", "prompt_id", "oldest_version", "policy_version", "reward"],
    ).sort_by("seq")
    groups: dict[str, dict[str, Any]] = {}
    for r in rollouts.to_pylist():
        g = groups.setdefault(
            r["group_id"], {"prompt_id": r["prompt_id"], "n": 0, "old": r["oldest_version"], "new": 0, "rewards": []}
        )
        g["n"] += 1
        g["old"], g["new"] = min(g["old"], r["oldest_version"]), max(g["new"], r["policy_version"])
        if r["reward"] is not None:
            g["rewards"].append(r["reward"])
    outcomes = read_outcomes(folder)
    rows = []
    for gid, g in groups.items():
        outcome, staleness = outcomes.get(gid, ("open", None))
        rewards = g["rewards"]
        rows.append(
            {
                "group_id": gid,
                "prompt_id": g["prompt_id"],
                "outcome": outcome,
                "rollouts": g["n"],
                "oldest_version": g["old"],
                "newest_version": g["new"],
                "staleness_served": staleness,
                "mean_reward": sum(rewards) / len(rewards) if rewards else None,
                "date": date,
            }
        )
    table = pa.Table.from_pylist(rows, schema=catalog.ROLLOUT_GROUPS.schema)
    with lake.parquet_writer(staged, catalog.ROLLOUT_GROUPS.schema) as writer:
        writer.write_table(table)
    out = StagedRollouts(rows=len(rows), complete=all(r["outcome"] != "open" for r in rows))
    out.figures = {"outcomes": dict(sorted(Counter(r["outcome"] for r in rows).items()))}
    return out


def stage_verified(lake: Lake, cfg: LoadedConfig, folder: Path, date: dt.date, staged: str) -> StagedRollouts:
    """Day `date`'s rollouts with the reward each was trained on, written to `staged`, and the day's figures."""
    rollouts = lake.read_table(lake.path(catalog.ROLLOUTS.part(date)))
    verdicts = read_verdicts(folder)
    seqs = rollouts["seq"].to_pylist()
    client = rollouts["reward"].to_pylist()
    found = [_trained_reward(seq, given, verdicts) for seq, given in zip(seqs, client, strict=True)]
    rewards, sources, errors = ([f[k] for f in found] for k in range(3))
    table = rollouts.set_column(rollouts.schema.get_field_index("reward"), "reward", pa.array(rewards, pa.float64()))
    table = table.append_column("reward_source", pa.array(sources, pa.string()))
    table = table.append_column("verifier_error", pa.array(errors, pa.string()))
    with lake.parquet_writer(staged, catalog.VERIFIED_ROLLOUTS.schema) as writer:
        writer.write_table(table.cast(catalog.VERIFIED_ROLLOUTS.schema))
    out = StagedRollouts(rows=table.num_rows, complete=all(s is not None for s in sources))
    out.figures = _figures(table)
    out.figures["curriculum"] = curriculum(lake, cfg, date, table)
    return out


def _trained_reward(
    seq: int, given: float | None, verdicts: dict[int, tuple[float, str | None]]
) -> tuple[float | None, str | None, str | None]:
    """(reward, reward_source, verifier_error): the client's reward, else the server's verdict, else none yet."""
    if given is not None:
        return given, "client", None
    if seq in verdicts:
        reward, error = verdicts[seq]
        return reward, "server", error
    return None, None, None


def _figures(table: pa.Table) -> dict[str, Any]:
    by_version: dict[int, list[float]] = defaultdict(list)
    errors: Counter[str] = Counter()
    for version, reward, error in zip(
        table["policy_version"].to_pylist(),
        table["reward"].to_pylist(),
        table["verifier_error"].to_pylist(),
        strict=True,
    ):
        if reward is not None:
            by_version[version].append(reward)
        if error:
            errors[error] += 1
    rates = pass_rates(table)
    sources = Counter(table["reward_source"].to_pylist())
    server = sources["server"]
    return {
        "rewards_by_policy_version": {
            str(v): {"count": len(r), "mean": round(sum(r) / len(r), 6)} for v, r in sorted(by_version.items())
        },
        "unverified": sources[None],
        "verifier_error_rate": {k: round(n / server, 6) for k, n in sorted(errors.items())} if server else {},
        "prompts": len(rates),
        "pass_rate_histogram": _histogram([p for p, _ in rates.values()]),
    }


def pass_rates(table: pa.Table) -> dict[str, tuple[float, int]]:
    """(share of rewarded rollouts that pass, rewarded rollouts) per prompt."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for prompt, reward in zip(table["prompt_id"].to_pylist(), table["reward"].to_pylist(), strict=True):
        if reward is not None:
            counts[prompt][0] += reward >= PASS
            counts[prompt][1] += 1
    return {p: (passed / n, n) for p, (passed, n) in counts.items()}


def _histogram(rates: list[float]) -> dict[str, int]:
    edges = ["0", "(0, 0.25]", "(0.25, 0.5]", "(0.5, 0.75]", "(0.75, 1)", "1"]
    out = dict.fromkeys(edges, 0)
    for r in rates:
        key = "0" if r == 0 else "1" if r == 1 else edges[1 + min(3, int((r - 1e-12) * 4))]
        out[key] += 1
    return out


def curriculum(lake: Lake, cfg: LoadedConfig, date: dt.date, today: pa.Table) -> dict[str, Any]:
    """Prompts whose pass rate over the window (this day and the verified days before it) is 0 or 1 with enough
    samples: always solved or never, so they teach nothing under group-relative advantages."""
    rl = cfg.pipeline.rl
    tables = [today.select(["prompt_id", "reward"])]
    for back in range(1, rl.curriculum_window_days):
        part = catalog.VERIFIED_ROLLOUTS.part(date - dt.timedelta(days=back))
        if lake.exists(part):
            tables.append(lake.read_table(lake.path(part), columns=["prompt_id", "reward"]))
    rates = pass_rates(pa.concat_tables(tables))
    solved = sorted(p for p, (r, n) in rates.items() if n >= rl.curriculum_min_samples and r == 1.0)
    unsolved = sorted(p for p, (r, n) in rates.items() if n >= rl.curriculum_min_samples and r == 0.0)
    return {
        "window_days": rl.curriculum_window_days,
        "always_solved": len(solved),
        "never_solved": len(unsolved),
        "first_always_solved": solved[:10],
        "first_never_solved": unsolved[:10],
    }
