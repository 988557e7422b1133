"""The loop back: a dataplane folder's closed segments and verdicts become rollouts and verified_rollouts."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow.parquet as pq

from ptdata.rl.dataplane.log import ControlLog, SegmentLog
from ptdata.rl.dataplane.records import Rollout, to_batch
from ptdata_tests.conftest import run

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
    log.close()
    control.close()


def test_closed_segments_become_the_days_rollouts_with_their_rewards(make_home, instance, tmp_path):
    folder = tmp_path / "dataplane"
    _dataplane(folder)
    settings = make_home(
        {"start_date": D1.isoformat(), "sources": [], "rl": {"dataplane_dir": str(folder), "curriculum_min_samples": 4}}
    )
    result = run(settings, instance, D1.isoformat(), select="key:rollouts or key:verified_rollouts")
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

    later = run(settings, instance, D2.isoformat(), select="key:rollouts")
    check = next(c for c in later.get_asset_check_evaluations() if c.check_name == "complete")
    assert later.success and not check.passed  # the active segment may still take day 2's rollouts
    assert pq.read_table(lake / "rollouts" / f"date={D2}" / "part-0.parquet").num_rows == 0
