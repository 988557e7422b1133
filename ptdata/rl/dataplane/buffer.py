"""The rollout buffer: prompt groups from intake to the trainer, whole, fresh enough, oldest first, once.

A group (the rollouts of one `group_id`, all of one prompt) is *pending* until `group_size` rollouts are in and all
their rewards are known (the client's, or the server's verdicts), then *ready*. `take` leases ready groups to a
trainer, oldest first (by the intake order of their first rollout), whole only, at most `size` rollouts: a group
whose staleness (the trainer's version minus the oldest policy version of any token in it) exceeds `max_staleness`
is evicted as `stale` (policy `drop`) or held back and counted (policy `wait`); a group with a failed or aborted
rollout is evicted as `failed`, and with `filter_zero_variance` one whose rewards are all equal as
`zero_variance`. An acknowledged lease's groups are done for good; an unacknowledged one's return to the ready
queue after `lease_timeout_s` (or a restart, since leases are not logged).

Intake is bounded as AReaL bounds it: at most (max_staleness + version + 1) x batch_size rollouts admitted in
all, and at most `max_buffered` held; beyond, the server answers 429. The accounting, in rollouts, holds at every
moment: admitted = acknowledged + evicted (stale, failed) + filtered (zero variance) + buffered (pending, ready,
held or leased).

This module does no I/O: each change that must survive a restart is returned as control-log entries, which the
server writes (and syncs) before it answers and a restart replays (`replay`). Acknowledgements and evictions
carry the low-water mark, the least seq not yet done: a restart loads only the rollouts at or above the last one
(`recover` keeps the ids of those below, so a resend of one is still recognised). ARCHITECTURE.md, "RL dataplane".
"""

from __future__ import annotations

import heapq
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ptdata.rl.dataplane.records import BadRollout, Rollout

StalenessPolicy = Literal["drop", "wait"]
_FAILED = ("failed", "aborted")


class Full(RuntimeError):
    """Intake is at its bound: the client retries after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LeaseConflict(RuntimeError):
    """An ack of a lease that expired (its groups went back to the buffer) or never existed."""


@dataclass
class Group:
    group_id: str
    prompt_id: str
    first_seq: int
    rollouts: list[Rollout] = field(default_factory=list)
    rewards: dict[int, float] = field(default_factory=dict)  # seq -> reward
    state: Literal["pending", "ready", "leased"] = "pending"

    def oldest_version(self) -> int:
        return min(r.oldest_version for r in self.rollouts)


@dataclass
class Lease:
    lease_id: str
    groups: list[str]
    deadline: float
    staleness: list[int]


@dataclass
class Settings:
    group_size: int = 8
    max_staleness: int = 1
    staleness_policy: StalenessPolicy = "drop"
    filter_zero_variance: bool = False
    batch_size: int = 64
    lease_timeout_s: float = 300.0
    max_buffered: int = 100_000


class GroupBuffer:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.version = 0
        self.next_seq = 0
        self.groups: dict[str, Group] = {}
        self.done: set[str] = set()  # groups acknowledged or evicted: never buffered again
        self.seen: set[str] = set()  # every rollout id ever admitted: a resend is harmless
        self.ready: list[tuple[int, str]] = []  # (first_seq, group_id), a heap; stale entries skipped
        self.leases: dict[str, Lease] = {}
        self.acked_leases: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.held_stale = 0  # stale groups the last `take` held back (policy wait)
        self.staleness_served: Counter[int] = Counter()
        self.staleness_trained: Counter[int] = Counter()
        self.rewards: dict[int, list[float]] = {}  # policy version -> [count, sum]
        self.verifier_errors: Counter[str] = Counter()
        self.filtered_rewards: Counter[str] = Counter()  # zero-variance groups by their one reward
        self.unverified: list[Rollout] = []  # rollouts whose reward the server must find

    # -- intake ------------------------------------------------------------------------------------------------

    def admit(self, rollouts: list[Rollout], received_at: float) -> tuple[list[Rollout], int]:
        """The new rollouts of a request, numbered, and how many were resends; BadRollout for a group they do not
        fit, Full at the intake bound. Nothing changes until `apply` (after they are durable)."""
        fresh, duplicates, ids = [], 0, set()
        adding: Counter[str] = Counter()
        for k, r in enumerate(rollouts):
            if r.rollout_id in self.seen or r.rollout_id in ids:
                duplicates += 1
                continue
            where = f"rollouts[{k}].group_id"
            group = self.groups.get(r.group_id)
            if r.group_id in self.done:
                raise BadRollout(where, f"group {r.group_id!r} was already served or evicted", "group_closed")
            if group is not None and group.prompt_id != r.prompt_id:
                raise BadRollout(where, f"group {r.group_id!r} is of prompt {group.prompt_id!r}", "group_conflict")
            have = (len(group.rollouts) if group else 0) + adding[r.group_id]
            if have >= self.s.group_size:
                raise BadRollout(where, f"group {r.group_id!r} has its {self.s.group_size} rollouts", "group_full")
            adding[r.group_id] += 1
            ids.add(r.rollout_id)
            fresh.append(r)
        if fresh:
            bound = (self.s.max_staleness + self.version + 1) * self.s.batch_size
            if self.counts["admitted"] + len(fresh) > bound:
                self.counts["refused_staleness_bound"] += 1
                raise Full(
                    f"{self.counts['admitted']} rollouts admitted: the bound at version {self.version} is {bound}"
                )
            if self.buffered() + len(fresh) > self.s.max_buffered:
                self.counts["refused_full"] += 1
                raise Full(f"{self.buffered()} rollouts buffered, the most is {self.s.max_buffered}")
        for i, r in enumerate(fresh):
            r.seq, r.received_at = self.next_seq + i, received_at
        return fresh, duplicates

    def apply(self, rollouts: Iterable[Rollout]) -> None:
        """Admit rollouts that are now in the log (from `admit`, or read back at a restart)."""
        for r in rollouts:
            self.next_seq = max(self.next_seq, r.seq + 1)
            self.seen.add(r.rollout_id)
            self.counts["admitted"] += 1
            if r.group_id in self.done:  # replayed: its group was acknowledged or evicted after it came in
                continue
            group = self.groups.get(r.group_id)
            if group is None:
                group = self.groups[r.group_id] = Group(r.group_id, r.prompt_id, r.seq)
            group.rollouts.append(r)
            if r.reward is not None:
                self._rewarded(group, r, r.reward)
            else:
                self.unverified.append(r)
            self._maybe_ready(group)

    def verdicts(self, entries: Iterable[dict[str, Any]]) -> None:
        """Server verdicts (control entries {"t": "verdict", "seq", "reward", "error"}) onto their rollouts."""
        by_seq = {e["seq"]: e for e in entries}
        for r in [r for r in self.unverified if r.seq in by_seq]:
            e = by_seq[r.seq]
            if e.get("error"):
                self.verifier_errors[e["error"]] += 1
            group = self.groups.get(r.group_id)
            if group is not None:
                self._rewarded(group, r, e["reward"])
                self._maybe_ready(group)
        self.unverified = [r for r in self.unverified if r.seq not in by_seq]

    def _rewarded(self, group: Group, r: Rollout, reward: float) -> None:
        group.rewards[r.seq] = reward
        count_sum = self.rewards.setdefault(r.policy_version, [0, 0.0])
        count_sum[0] += 1
        count_sum[1] += reward

    def _maybe_ready(self, group: Group) -> None:
        if group.state == "pending" and len(group.rewards) == self.s.group_size:
            group.state = "ready"
            heapq.heappush(self.ready, (group.first_seq, group.group_id))

    # -- the trainer -------------------------------------------------------------------------------------------

    def set_version(self, version: int) -> list[dict[str, Any]]:
        if version < self.version:
            raise ValueError(f"policy version {version} is behind the current {self.version}")
        return [{"t": "policy", "version": version}] if version != self.version else []

    def take(self, size: int, now: float) -> tuple[Lease | None, list[dict[str, Any]]]:
        """Lease up to `size` rollouts of ready groups, oldest first; the eviction entries to log first."""
        if size < self.s.group_size:
            raise ValueError(f"size {size} is less than one group of {self.s.group_size}")
        self.expire(now)
        evictions: list[dict[str, Any]] = []
        chosen: list[Group] = []
        held: list[tuple[int, str]] = []
        while self.ready and (len(chosen) + 1) * self.s.group_size <= size:
            first_seq, gid = heapq.heappop(self.ready)
            group = self.groups.get(gid)
            if group is None or group.state != "ready":
                continue
            reason = self._eviction(group)
            if reason == "held":
                held.append((first_seq, gid))
                continue
            if reason:
                evictions.append(self._evict_entry(group, reason))
                continue
            chosen.append(group)
        for item in held:
            heapq.heappush(self.ready, item)
        self.held_stale = len(held)
        if not chosen:
            return None, evictions
        staleness = [self.version - r.oldest_version for g in chosen for r in g.rollouts]
        lease = Lease(uuid.uuid4().hex, [g.group_id for g in chosen], now + self.s.lease_timeout_s, staleness)
        for g in chosen:
            g.state = "leased"
        self.leases[lease.lease_id] = lease
        self.counts["served_rollouts"] += len(staleness)
        self.counts["served_groups"] += len(chosen)
        self.staleness_served.update(staleness)
        return lease, evictions

    def _eviction(self, group: Group) -> str | None:
        if self.version - group.oldest_version() > self.s.max_staleness:
            return "stale" if self.s.staleness_policy == "drop" else "held"
        if any(r.status in _FAILED for r in group.rollouts):
            return "failed"
        if self.s.filter_zero_variance and len(set(group.rewards.values())) == 1:
            return "zero_variance"
        return None

    def _evict_entry(self, group: Group, reason: str) -> dict[str, Any]:
        entry = {"t": "evict", "group": group.group_id, "reason": reason, "rollouts": len(group.rollouts)}
        if reason == "zero_variance":
            entry["reward"] = next(iter(group.rewards.values()))
        self._close(group.group_id, f"evicted_{reason}", entry.get("reward"))
        entry["lwm"] = self.low_water_mark()
        return entry

    def low_water_mark(self, closing: Iterable[str] = ()) -> int:
        """The least seq of a rollout not yet acknowledged or evicted (once `closing` is): every rollout below it is
        done, so a restart need not load it. A group's first rollout has its least seq."""
        closing = set(closing)
        return min((g.first_seq for gid, g in self.groups.items() if gid not in closing), default=self.next_seq)

    def recover(self, rollouts: Iterable[Rollout], entries: list[dict[str, Any]]) -> None:
        """Rebuild the state at a restart from the logged rollouts (in seq order) and control entries: rollouts
        below the last logged low-water mark are done and kept only to recognise a resend."""
        lwm = max((e.get("lwm", 0) for e in entries if e["t"] in ("ack", "evict")), default=0)
        for r in rollouts:
            if r.seq < lwm:
                self.next_seq = max(self.next_seq, r.seq + 1)
                self.seen.add(r.rollout_id)
                self.counts["admitted"] += 1
            else:
                self.apply([r])
        self.replay(entries)

    def _close(self, gid: str, counter: str, reward: float | None = None) -> None:
        group = self.groups.pop(gid, None)
        self.done.add(gid)
        if group is not None:
            self.counts[counter] += len(group.rollouts)
            if reward is not None:
                self.filtered_rewards[f"{reward:g}"] += 1

    def expire(self, now: float) -> None:
        """Return the groups of every lease past its deadline to the ready queue."""
        for lease in [lease for lease in self.leases.values() if lease.deadline <= now]:
            del self.leases[lease.lease_id]
            self.counts["leases_expired"] += 1
            for gid in lease.groups:
                group = self.groups.get(gid)
                if group is not None:
                    group.state = "ready"
                    heapq.heappush(self.ready, (group.first_seq, gid))

    def ack(self, lease_id: str, now: float) -> list[dict[str, Any]]:
        """The entry that acknowledges a lease (none when it was acknowledged already); LeaseConflict for one that
        expired or never was. Apply it with `replay` once it is logged."""
        if lease_id in self.acked_leases:
            return []
        self.expire(now)
        lease = self.leases.get(lease_id)
        if lease is None:
            raise LeaseConflict(f"lease {lease_id!r} is unknown or expired: its groups went back to the buffer")
        rollouts = [len(self.groups[gid].rollouts) for gid in lease.groups]
        entry = {
            "t": "ack",
            "lease": lease_id,
            "groups": lease.groups,
            "rollouts": rollouts,
            "staleness": lease.staleness,
        }
        return [{**entry, "lwm": self.low_water_mark(lease.groups)}]

    # -- restart -----------------------------------------------------------------------------------------------

    def replay(self, entries: Iterable[dict[str, Any]]) -> None:
        """Apply control entries: the ones just logged, or all of them at a restart (after the segments)."""
        verdicts = []
        for e in entries:
            kind = e["t"]
            if kind == "policy":
                self.version = max(self.version, e["version"])
            elif kind == "verdict":
                verdicts.append(e)
            elif kind == "ack":
                self.verdicts(verdicts)
                verdicts = []
                self.leases.pop(e["lease"], None)
                self.acked_leases.add(e["lease"])
                self.staleness_trained.update(e["staleness"])
                for gid, n in zip(e["groups"], e["rollouts"], strict=True):
                    if gid in self.groups:
                        self._close(gid, "acknowledged")
                    else:  # below the low-water mark: not loaded at the restart
                        self.done.add(gid)
                        self.counts["acknowledged"] += n
            elif kind == "evict":
                self.verdicts(verdicts)
                verdicts = []
                if e["group"] in self.groups:
                    self._evict_entry(self.groups[e["group"]], e["reason"])
                elif e["group"] not in self.done:
                    self.done.add(e["group"])
                    self.counts[f"evicted_{e['reason']}"] += e["rollouts"]
                    if "reward" in e:
                        self.filtered_rewards[f"{e['reward']:g}"] += 1
        self.verdicts(verdicts)

    # -- figures -----------------------------------------------------------------------------------------------

    def buffered(self) -> int:
        return sum(len(g.rollouts) for g in self.groups.values())

    def stats(self) -> dict[str, Any]:
        c = self.counts
        states = Counter()
        for g in self.groups.values():
            states[g.state] += len(g.rollouts)
        evicted = {k.removeprefix("evicted_"): v for k, v in sorted(c.items()) if k.startswith("evicted_")}
        buffered = self.buffered()
        out_of_buffer = c["acknowledged"] + sum(evicted.values())
        return {
            "policy_version": self.version,
            "admitted": c["admitted"],
            "acknowledged": c["acknowledged"],
            "evicted": evicted,
            "zero_variance_groups_by_reward": dict(self.filtered_rewards),
            "buffered": {"pending": states["pending"], "ready": states["ready"], "leased": states["leased"]},
            "held_stale_groups": self.held_stale,
            "unverified": len(self.unverified),
            "accounting_holds": c["admitted"] == out_of_buffer + buffered,
            "served": {"rollouts": c["served_rollouts"], "groups": c["served_groups"]},
            "leases": {
                "open": len(self.leases),
                "expired": c["leases_expired"],
                "acknowledged": len(self.acked_leases),
            },
            "refused": {"staleness_bound": c["refused_staleness_bound"], "full": c["refused_full"]},
            "staleness_served": {str(k): v for k, v in sorted(self.staleness_served.items())},
            "staleness_trained": {str(k): v for k, v in sorted(self.staleness_trained.items())},
            "max_staleness_served": max(self.staleness_served, default=None),
            "rewards": {str(v): {"count": n, "mean": s / n} for v, (n, s) in sorted(self.rewards.items()) if n},
            "verifier_errors": dict(self.verifier_errors),
        }
