"""The release's shard plan: rows in order into shards of at most the token budget, a longer row alone."""

import random

import numpy as np

from ptdata.release.build import shard_plan


def _greedy(counts: list[int], budget: int) -> list[list[int]]:
    """Row by row: a row opens a new shard when the open one has rows and would go over the budget."""
    shards: list[list[int]] = []
    tokens = 0
    for i, n in enumerate(counts):
        if not shards or (shards[-1] and tokens + n > budget):
            shards.append([])
            tokens = 0
        shards[-1].append(i)
        tokens += n
    return shards


def test_the_plan_cuts_rows_as_one_row_at_a_time_would():
    rng = random.Random(3)
    for budget in (1, 50, 400, 10_000):
        groups = [[rng.choice((1, 7, 60, 120, 900)) for _ in range(rng.randint(0, 40))] for _ in range(25)]
        lengths = [("part", g, np.asarray(c, dtype=np.int64)) for g, c in enumerate(groups)]
        plan = shard_plan(lengths, budget)
        firsts = np.cumsum([0, *map(len, groups)])
        rows = [[int(firsts[g]) + a + k for _, g, a, r in shard for k in range(r)] for shard in plan]
        assert rows == _greedy([n for c in groups for n in c], budget)
        # pieces are whole row groups or parts of one, never empty
        assert all(r > 0 and a + r <= len(groups[g]) for shard in plan for _, g, a, r in shard)


def test_no_rows_no_shard():
    assert shard_plan([("part", 0, np.zeros(0, dtype=np.int64))], 100) == []


def test_shards_written_by_workers_are_the_shards_one_process_writes(demo_home, tmp_path):
    """Small shards, so that each table has many and the workers write them: the same files, byte for byte."""
    import dataclasses

    from ptdata.core.config import Settings
    from ptdata.core.executor import INLINE, LocalExecutor
    from ptdata.core.lake import Lake
    from ptdata.release.build import build_release, plan_release

    settings = Settings.from_env({"PTDATA_HOME": str(demo_home)})
    lake, cfg = Lake(settings.lake), settings.load_config()
    pipeline = cfg.pipeline.model_copy(
        update={"release": cfg.pipeline.release.model_copy(update={"shard_tokens": 20_000})}
    )
    cfg = dataclasses.replace(cfg, pipeline=pipeline)
    release = plan_release(lake, cfg, "shards", None)
    manifests, files = [], []
    for name, executor in (("one", INLINE), ("two", LocalExecutor(2))):
        out = tmp_path / name
        manifests.append(build_release(lake, cfg, release, str(out), {}, executor))
        files.append({p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert manifests[0] == manifests[1] and files[0] == files[1]
    shards = manifests[0]["shards"]
    assert len(shards["gold_sft"]) > 10 and all(s["tokens"] <= 20_000 or s["rows"] == 1 for s in shards["gold_sft"])
    for table, listed in shards.items():
        parts = [p for p in manifests[0]["partitions"] if p["table"] == table]
        assert sum(s["rows"] for s in listed) == sum(p["rows"] for p in parts)
        assert sum(s["tokens"] for s in listed) == sum(p["tokens"] for p in parts)
