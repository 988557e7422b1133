"""The loop back: a dataplane folder's closed segments and verdicts become rollouts and verified_rollouts."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow.parquet as pq

from ptdata.rl.dataplane.log import ControlLog, SegmentLog
from ptdata.rl.dataplane.records import Rollout, to_batch
from ptdata_tests.conftest import landing, run

D1, D2 = dt.date(2026, 11, 1), dt.date(2026, 11, 2)


def _at(day: dt.date, hour: int) -> float:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC).timestamp()


def _rollouts(day: dt.date, first_seq: int, prompt: str, rewards: list[float | None]) -> list[Rollout]:
    out = []
    for k, reward in enumerate(rewards):
        r = Rollout(
            f"{day}-{first_seq + k}",
            prompt,
            f"g-{day}-{prompt}",
            k,
            2,
            1,
            None,
            np.arange(5, dtype=np.int32),
            None,
            None,
            "#### 42",
            "completed",
            reward,
            None,
        )
        r.seq, r.received_at = first_seq + k, _at(day, 10 + k)
        out.append(r)
    return out


def _dataplane(folder) -> None:
    log, control = SegmentLog(folder / "segments"), ControlLog(folder / "control.log")
    day1 = _rollouts(D1, 0, "p1", [1.0, 1.0, 1.0, 1.0]) + _rollouts(D1, 4, "p2", [None, None, None, None])
    log.append(to_batch(day1[:4]))
    log.append(to_batch(day1[4:]))
    log.append(to_batch(_rollouts(D2, 8, "p3", [0.0, 1.0, None, None])))  # a new day: a new segment
    control.append(
        *({"t": "verdict", "seq": s, "reward": 0.0, "error": "timeout" if s == 7 else None} for s in range(4, 8))
    )
    control.append(
        {"t": "ack", "lease": "l1", "groups": [f"g-{D1}-p1"], "rollouts": [4], "staleness": [1, 2, 1, 1], "lwm": 4},
        {"t": "evict", "group": f"g-{D1}-p2", "reason": "stale", "rollouts": 4, "lwm": 8},
    )
    log.close()
    control.close()


def test_closed_segments_become_the_days_rollouts_with_their_rewards(make_home, instance, tmp_path):
    folder = tmp_path / "dataplane"
    _dataplane(folder)
    settings = make_home(
        {"start_date": D1.isoformat(), "sources": [], "rl": {"dataplane_dir": str(folder), "curriculum_min_samples": 4}}
    )
    select = "key:rollouts or key:verified_rollouts or key:rollout_groups or key:rl_group_outcomes"
    result = run(settings, instance, D1.isoformat(), select=select)
    assert result.success
    lake = settings.home / "lake" / "rl"
    rollouts = pq.read_table(lake / "rollouts" / f"date={D1}" / "part-0.parquet")
    assert rollouts["seq"].to_pylist() == list(range(8))  # day 1 only, in intake order
    verified = pq.read_table(lake / "verified_rollouts" / f"date={D1}" / "part-0.parquet").to_pydict()
    assert verified["reward_source"] == ["client"] * 4 + ["server"] * 4
    assert verified["reward"] == [1.0] * 4 + [0.0] * 4
    assert verified["verifier_error"][7] == "timeout"
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["complete"].passed and checks["verified"].passed  # day 2 has begun; every rollout rewarded
    meta = next(
        e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["verified_rollouts"]
    )
    day = meta["days"].value[D1.isoformat()]
    assert day["rewards_by_policy_version"] == {"2": {"count": 8, "mean": 0.5}}
    assert day["pass_rate_histogram"]["1"] == 1 and day["pass_rate_histogram"]["0"] == 1
    assert day["curriculum"]["first_always_solved"] == ["p1"] and day["curriculum"]["first_never_solved"] == ["p2"]
    assert day["verifier_error_rate"] == {"timeout": 0.25}
    groups = pq.read_table(lake / "rollout_groups" / f"date={D1}" / "part-0.parquet").to_pylist()
    assert [(g["outcome"], g["rollouts"], g["staleness_served"]) for g in groups] == [
        ("acknowledged", 4, 2),
        ("stale", 4, None),
    ]
    assert checks["closed"].passed
    mart = pq.read_table(settings.home / "lake" / "marts" / "rl_group_outcomes" / f"date={D1}").to_pylist()
    assert [(m["outcome"], m["groups"], m["max_staleness_served"]) for m in mart] == [
        ("acknowledged", 1, 2),
        ("stale", 1, None),
    ]

    later = run(settings, instance, D2.isoformat(), select="key:rollouts")
    check = next(c for c in later.get_asset_check_evaluations() if c.check_name == "complete")
    assert later.success and not check.passed  # the active segment may still take day 2's rollouts
    assert pq.read_table(lake / "rollouts" / f"date={D2}" / "part-0.parquet").num_rows == 0


def test_verified_high_reward_completions_become_sft_records_with_their_provenance(make_home, instance, tmp_path):
    folder = tmp_path / "dataplane"
    settings = make_home(
        {
            "start_date": D1.isoformat(),
            "sources": [
                {"name": "problems", "regime": "rlvr", "kind": "files", "verifier": "exact"},
                {"name": "sampled", "regime": "sft", "kind": "rollouts", "min_reward": 1.0, "license": "cc-by-4.0"},
            ],
            "quality": {"min_pass_rate": 0.5},
            "rl": {"dataplane_dir": str(folder)},
        }
    )
    problems = [
        {"question": f"What is the capital of country number {i}? Answer with one word.", "answer": f"City{i}"}
        for i in range(2)
    ]
    (landing(settings, "problems", D1.isoformat()) / "p.jsonl").write_text(
        "".join(json.dumps(p) + "\n" for p in problems)
    )
    # day 1: the prompts come in (the loop's rollouts of day 1 are none: the dataplane has not begun)
    assert run(settings, instance, D1.isoformat()).success
    silver = pq.read_table(settings.home / "lake" / "silver" / "silver_rlvr" / f"date={D1}" / "part-0.parquet")
    first, second = silver["record_id"].to_pylist()
    log = SegmentLog(folder / "segments")
    day2 = [
        *_rollouts(D2, 0, first, [1.0, 0.0]),
        *_rollouts(D2, 2, second, [1.0, 1.0]),
        *_rollouts(D2, 4, "no-such-prompt", [1.0]),
    ]
    for r, text in zip(day2, ["City0, of course.", "Town0", "City1", "It is City1.", "?"], strict=True):
        r.text = text
    log.append(to_batch(day2))
    log.append(to_batch(_rollouts(D2 + dt.timedelta(days=1), 5, first, [1.0])))  # day 3 begins: day 2 is whole
    log.close()
    result = run(settings, instance, D2.isoformat(), select="key:rollouts or key:verified_rollouts or key:bronze_sft")
    assert result.success
    bronze = pq.read_table(settings.home / "lake" / "bronze" / "bronze_sft" / f"date={D2}" / "part-0.parquet")
    rows = {r["source_key"]: r for r in bronze.to_pylist()}
    assert sorted(rows) == sorted(r.rollout_id for r in day2[:4] if r.reward == 1.0)
    kept = rows[day2[0].rollout_id]
    assert kept["messages"][-1] == {"role": "assistant", "content": "City0, of course."}
    assert kept["messages"][0]["content"].startswith("What is the capital of country number 0")
    meta = json.loads(kept["meta"])
    assert meta["policy_version"] == 2 and meta["prompt_id"] == first and kept["license"] == "cc-by-4.0"
    assert kept["source_uri"] == f"rl/verified_rollouts/date={D2}#0"
    quarantine = pq.read_table(
        settings.home / "lake" / "bronze" / "bronze_quarantine" / f"date={D2}" / "regime=sft" / "part-0.parquet"
    )
    assert [e.split(":")[0] for e in quarantine["error"].to_pylist()] == ["missing_prompt"]
