"""The group buffer on its own: whole groups, staleness, admission, leases, acknowledgements and its replay."""

from __future__ import annotations

import numpy as np
import pytest

from ptdata.rl.dataplane.buffer import Full, GroupBuffer, LeaseConflict, Settings
from ptdata.rl.dataplane.records import BadRollout, Rollout


def _rollout(group: str, k: int, version: int = 0, reward: float | None = 1.0, oldest: int | None = None, **kw):
    ids = np.arange(k, k + 5, dtype=np.int32)
    return Rollout(
        f"{group}-{k}",
        f"p-{group}",
        group,
        k,
        version,
        version if oldest is None else oldest,
        None,
        ids,
        None,
        None,
        "text",
        kw.get("status", "completed"),
        reward if k % 2 or reward is None else (reward if kw.get("same") else 0.0),
        None,
    )


def _fill(buf: GroupBuffer, groups: list[str], version: int = 0, **kw) -> None:
    rollouts = [_rollout(g, k, version, **kw) for g in groups for k in range(buf.s.group_size)]
    fresh, _ = buf.admit(rollouts, 0.0)
    buf.apply(fresh)


def test_groups_are_served_whole_and_oldest_first():
    buf = GroupBuffer(Settings(group_size=4, max_staleness=2, batch_size=100))
    _fill(buf, ["a", "b", "c"])
    buf.apply(buf.admit([_rollout("d", 0)], 0.0)[0])  # an incomplete group is never served
    lease, _ = buf.take(10, now=1.0)
    assert lease.groups == ["a", "b"]  # 10 rollouts hold two whole groups of 4
    lease2, _ = buf.take(10, now=1.0)
    assert lease2.groups == ["c"]
    assert buf.take(10, now=1.0)[0] is None
    with pytest.raises(ValueError):
        buf.take(3, now=1.0)


def test_stale_groups_are_dropped_or_held_and_the_accounting_holds():
    for policy, evicted in (("drop", 8), ("wait", 0)):
        buf = GroupBuffer(Settings(group_size=4, max_staleness=1, batch_size=100, staleness_policy=policy))
        _fill(buf, ["old1", "old2"], version=0)
        buf.replay(buf.set_version(2))
        _fill(buf, ["new"], version=2)
        lease, entries = buf.take(100, now=1.0)
        assert lease.groups == ["new"] and max(lease.staleness) == 0
        buf.replay(entries)
        stats = buf.stats()
        assert stats["evicted"].get("stale", 0) == evicted
        assert stats["held_stale_groups"] == (2 if policy == "wait" else 0)
        assert stats["accounting_holds"]


def test_a_rollout_whose_oldest_token_is_stale_makes_its_group_stale():
    buf = GroupBuffer(Settings(group_size=2, max_staleness=1, batch_size=100))
    buf.replay(buf.set_version(3))
    rollouts = [_rollout("g", 0, version=3), _rollout("g", 1, version=3, oldest=1)]
    buf.apply(buf.admit(rollouts, 0.0)[0])
    lease, entries = buf.take(10, now=0.0)
    assert lease is None and entries[0]["reason"] == "stale"


def test_admission_is_bounded_by_staleness_and_version():
    buf = GroupBuffer(Settings(group_size=2, max_staleness=1, batch_size=4))
    _fill(buf, ["a", "b", "c", "d"])  # (1 + 0 + 1) x 4 = 8 rollouts at version 0
    with pytest.raises(Full):
        buf.admit([_rollout("e", 0)], 0.0)
    buf.replay(buf.set_version(1))
    buf.apply(buf.admit([_rollout("e", 0)], 0.0)[0])


def test_groups_do_not_take_more_than_their_size_or_another_prompt():
    buf = GroupBuffer(Settings(group_size=2, batch_size=100))
    _fill(buf, ["a"])
    with pytest.raises(BadRollout, match="has its 2 rollouts"):
        buf.admit([_rollout("a", 7)], 0.0)
    other = _rollout("a", 9)
    other.prompt_id = "p-other"
    buf2 = GroupBuffer(Settings(group_size=4, batch_size=100))
    buf2.apply(buf2.admit([_rollout("a", 0)], 0.0)[0])
    with pytest.raises(BadRollout, match="is of prompt"):
        buf2.admit([other], 0.0)
    fresh, duplicates = buf.admit([_rollout("a", 0)], 0.0)
    assert (fresh, duplicates) == ([], 1)  # a resend is harmless


def test_failed_and_zero_variance_groups_are_evicted_and_counted():
    buf = GroupBuffer(Settings(group_size=2, batch_size=100, filter_zero_variance=True))
    _fill(buf, ["same"], same=True)
    _fill(buf, ["mixed"])
    buf.apply(buf.admit([_rollout("bad", 0), _rollout("bad", 1, status="aborted")], 0.0)[0])
    lease, entries = buf.take(100, now=0.0)
    assert lease.groups == ["mixed"]
    assert sorted(e["reason"] for e in entries) == ["failed", "zero_variance"]
    assert buf.stats()["zero_variance_groups_by_reward"] == {"1": 1}


def test_an_unacknowledged_lease_returns_and_an_acknowledged_one_never_does():
    buf = GroupBuffer(Settings(group_size=2, batch_size=100, lease_timeout_s=10))
    _fill(buf, ["a", "b"])
    first, _ = buf.take(2, now=0.0)
    second, _ = buf.take(2, now=0.0)
    buf.replay(buf.ack(second.lease_id, now=1.0))
    assert buf.ack(second.lease_id, now=1.0) == []  # a second ack is harmless
    again, _ = buf.take(4, now=11.0)  # first expired
    assert again.groups == first.groups
    with pytest.raises(LeaseConflict):
        buf.ack(first.lease_id, now=11.0)
    with pytest.raises(BadRollout, match="already served"):
        buf.admit([_rollout("b", 0).__class__(**{**_rollout("b", 0).__dict__, "rollout_id": "new"})], 0.0)
    assert buf.stats()["accounting_holds"]


def test_replaying_the_logs_gives_the_same_state():
    settings = Settings(group_size=2, max_staleness=1, batch_size=100)
    buf = GroupBuffer(settings)
    log: list[dict] = []
    rollouts = []
    for group in ("a", "b", "c", "d"):
        fresh, _ = buf.admit([_rollout(group, k, reward=None) for k in range(2)], 0.0)
        buf.apply(fresh)
        rollouts += fresh
    verdicts = [{"t": "verdict", "seq": r.seq, "reward": float(r.seq % 2), "error": None} for r in rollouts[:6]]
    for entries in (verdicts, buf.set_version(1)):
        log += entries
        buf.replay(entries)
    lease, evictions = buf.take(2, now=0.0)
    log += evictions
    log += buf.ack(lease.lease_id, now=0.0)
    buf.replay(log[-1:])
    again = GroupBuffer(settings)
    again.apply(rollouts)
    again.replay(log)
    keep = ("admitted", "acknowledged", "evicted", "buffered", "unverified", "accounting_holds", "rewards")
    assert {k: again.stats()[k] for k in keep} == {k: buf.stats()[k] for k in keep}
    assert again.stats()["buffered"] == {"pending": 2, "ready": 4, "leased": 0}  # d waits for its verdicts


def test_a_restart_loads_only_what_is_above_the_low_water_mark():
    settings = Settings(group_size=2, batch_size=100)
    buf = GroupBuffer(settings)
    rollouts = []
    for group in ("a", "b", "c"):
        fresh, _ = buf.admit([_rollout(group, k) for k in range(2)], 0.0)
        buf.apply(fresh)
        rollouts += fresh
    log: list[dict] = []
    lease, _ = buf.take(2, now=0.0)  # a: the oldest
    log += buf.ack(lease.lease_id, now=0.0)
    buf.replay(log)
    assert log[-1]["lwm"] == 2  # a's two rollouts are done
    again = GroupBuffer(settings)
    again.recover(rollouts, log)
    assert set(again.groups) == {"b", "c"}
    assert {k: again.stats()[k] for k in ("admitted", "acknowledged", "buffered", "accounting_holds")} == {
        k: buf.stats()[k] for k in ("admitted", "acknowledged", "buffered", "accounting_holds")
    }
    assert again.admit([_rollout("a", 0)], 0.0) == ([], 1)  # a resend of a done rollout is still recognised
