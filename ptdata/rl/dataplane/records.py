"""The rollout record: what a rollout worker posts, checked field by field, and its Arrow schema in the segment log.

The generator's own token ids are the truth of a rollout (decoding and re-encoding changes tokens): they are kept
as sent, checked against the vocabulary, never rebuilt from `text`. Staleness is measured against the oldest policy
version that generated any of its tokens (`token_policy_versions` where the client sends them, else
`policy_version`). A request with one bad rollout is refused whole (400 naming the rollout and the field), so
nothing of it is stored. ARCHITECTURE.md, "RL dataplane".
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ptdata.core.catalog import ROLLOUT_SCHEMA

STATUSES = ("completed", "truncated", "aborted", "failed")
MAX_TOKENS = 1 << 20
MAX_ID_CHARS = 256
MAX_TEXT_CHARS = 1 << 22

_FIELDS = {f.name for f in ROLLOUT_SCHEMA} - {"seq", "oldest_version", "received_at"}
_REQUIRED = ("prompt_id", "group_id", "policy_version", "completion_ids", "text", "status")


class BadRollout(ValueError):
    """A rollout the server refuses: `field` names it (`rollouts[3].completion_ids`), `kind` counts it."""

    def __init__(self, field: str, message: str, kind: str = "invalid") -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.kind = field, kind


@dataclass
class Rollout:
    rollout_id: str
    prompt_id: str
    group_id: str
    sample_index: int | None
    policy_version: int
    oldest_version: int
    prompt_ids: np.ndarray | None
    completion_ids: np.ndarray
    token_policy_versions: np.ndarray | None
    logprobs: np.ndarray | None
    text: str
    status: str
    reward: float | None
    timings: dict[str, float] | None
    seq: int = -1
    received_at: float = 0.0

    def to_json(self, staleness: int, reward: float) -> dict[str, Any]:
        """The rollout as /v1/batch serves it, with its staleness now and its reward (the client's or the server's)."""
        out = {
            "rollout_id": self.rollout_id,
            "prompt_id": self.prompt_id,
            "group_id": self.group_id,
            "sample_index": self.sample_index,
            "policy_version": self.policy_version,
            "oldest_version": self.oldest_version,
            "staleness": staleness,
            "prompt_ids": self.prompt_ids,
            "completion_ids": self.completion_ids,
            "text": self.text,
            "status": self.status,
            "reward": reward,
        }
        for name in ("token_policy_versions", "logprobs", "timings"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


def default_rollout_id(group_id: str, completion_ids: np.ndarray) -> str:
    """A hash of the group and the completion's token ids: a resend of the same rollout is the same rollout."""
    h = hashlib.sha256(group_id.encode())
    h.update(b"\0")
    h.update(completion_ids.astype("<i4").tobytes())
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class Limits:
    """What the server checks a rollout against: the vocabulary, the known prompts, the current version."""

    vocab_size: int
    group_size: int
    prompt_known: Any  # a callable prompt_id -> bool


def _ids(where: str, value: Any, vocab: int, allow_empty: bool) -> np.ndarray:
    if not isinstance(value, list):
        raise BadRollout(where, "expected a list of token ids")
    if len(value) > MAX_TOKENS:
        raise BadRollout(where, f"{len(value)} tokens, more than {MAX_TOKENS}", "too_long")
    if not value and not allow_empty:
        raise BadRollout(where, "no tokens")
    if not all(type(v) is int for v in value):
        raise BadRollout(where, "expected integers")
    ids = np.asarray(value, dtype=np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= vocab):
        raise BadRollout(where, f"a token id outside the vocabulary of {vocab}")
    return ids.astype(np.int32)


def _int(where: str, value: Any, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise BadRollout(where, f"expected an integer in [{low}, {high}]")
    return value


def _text(where: str, value: Any, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise BadRollout(where, f"expected a non-empty string of at most {limit} characters")
    return value


def parse_rollout(raw: Any, where: str, limits: Limits, current_version: int) -> Rollout:
    """One posted rollout, checked; BadRollout naming the first bad field."""
    if not isinstance(raw, Mapping):
        raise BadRollout(where, "expected an object")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise BadRollout(f"{where}.{unknown[0]}", "not a rollout field")
    for name in _REQUIRED:
        if raw.get(name) is None:
            raise BadRollout(f"{where}.{name}", "missing")
    prompt_id = _text(f"{where}.prompt_id", raw["prompt_id"], MAX_ID_CHARS)
    if not limits.prompt_known(prompt_id):
        raise BadRollout(f"{where}.prompt_id", f"unknown prompt {prompt_id!r}", "unknown_prompt")
    group_id = _text(f"{where}.group_id", raw["group_id"], MAX_ID_CHARS)
    version = raw["policy_version"]
    if type(version) is int and version > current_version:
        raise BadRollout(f"{where}.policy_version", f"{version} is ahead of the trainer's {current_version}", "future")
    version = _int(f"{where}.policy_version", version, 0, current_version)
    completion = _ids(f"{where}.completion_ids", raw["completion_ids"], limits.vocab_size, allow_empty=True)
    prompt = raw.get("prompt_ids")
    prompt = None if prompt is None else _ids(f"{where}.prompt_ids", prompt, limits.vocab_size, allow_empty=False)
    per_token = raw.get("token_policy_versions")
    oldest = version
    if per_token is not None:
        if not isinstance(per_token, list) or len(per_token) != len(completion):
            raise BadRollout(f"{where}.token_policy_versions", "expected one version per completion token")
        if not all(type(v) is int and 0 <= v <= version for v in per_token):
            raise BadRollout(f"{where}.token_policy_versions", f"expected integers in [0, {version}]")
        per_token = np.asarray(per_token, dtype=np.int64)
        oldest = int(per_token.min()) if len(per_token) else version
    logprobs = raw.get("logprobs")
    if logprobs is not None:
        if not isinstance(logprobs, list) or len(logprobs) != len(completion):
            raise BadRollout(f"{where}.logprobs", "expected one log probability per completion token")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and v <= 0 for v in logprobs):
            raise BadRollout(f"{where}.logprobs", "expected numbers <= 0")
        logprobs = np.asarray(logprobs, dtype=np.float32)
    status = raw["status"]
    if status not in STATUSES:
        raise BadRollout(f"{where}.status", f"expected one of {', '.join(STATUSES)}")
    if not isinstance(raw["text"], str) or len(raw["text"]) > MAX_TEXT_CHARS:
        raise BadRollout(f"{where}.text", f"expected a string of at most {MAX_TEXT_CHARS} characters")
    reward = raw.get("reward")
    if reward is not None and (
        isinstance(reward, bool) or not isinstance(reward, int | float) or not math.isfinite(reward)
    ):
        raise BadRollout(f"{where}.reward", "expected a finite number")
    sample = raw.get("sample_index")
    sample = None if sample is None else _int(f"{where}.sample_index", sample, 0, limits.group_size - 1)
    timings = raw.get("timings")
    if timings is not None and (
        not isinstance(timings, Mapping)
        or not all(
            isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool) for k, v in timings.items()
        )
    ):
        raise BadRollout(f"{where}.timings", "expected an object of numbers")
    rollout_id = raw.get("rollout_id")
    rollout_id = (
        default_rollout_id(group_id, completion)
        if rollout_id is None
        else _text(f"{where}.rollout_id", rollout_id, MAX_ID_CHARS)
    )
    return Rollout(
        rollout_id,
        prompt_id,
        group_id,
        sample,
        version,
        oldest,
        prompt,
        completion,
        per_token,
        logprobs,
        raw["text"],
        status,
        None if reward is None else float(reward),
        None if timings is None else {k: float(v) for k, v in timings.items()},
    )


def to_batch(rollouts: list[Rollout]) -> pa.RecordBatch:
    """Rollouts as one record batch of ROLLOUT_SCHEMA (their seq and received_at set)."""

    def ids(name: str, dtype: pa.DataType) -> pa.Array:
        return pa.array([getattr(r, name) for r in rollouts], pa.list_(dtype))

    cols = {
        "seq": pa.array([r.seq for r in rollouts], pa.int64()),
        "rollout_id": pa.array([r.rollout_id for r in rollouts], pa.string()),
        "prompt_id": pa.array([r.prompt_id for r in rollouts], pa.string()),
        "group_id": pa.array([r.group_id for r in rollouts], pa.string()),
        "sample_index": pa.array([r.sample_index for r in rollouts], pa.int32()),
        "policy_version": pa.array([r.policy_version for r in rollouts], pa.int64()),
        "oldest_version": pa.array([r.oldest_version for r in rollouts], pa.int64()),
        "prompt_ids": ids("prompt_ids", pa.int32()),
        "completion_ids": ids("completion_ids", pa.int32()),
        "token_policy_versions": ids("token_policy_versions", pa.int64()),
        "logprobs": ids("logprobs", pa.float32()),
        "text": pa.array([r.text for r in rollouts], pa.string()),
        "status": pa.array([r.status for r in rollouts], pa.string()),
        "reward": pa.array([r.reward for r in rollouts], pa.float64()),
        "timings": pa.array(
            [None if r.timings is None else list(r.timings.items()) for r in rollouts],
            pa.map_(pa.string(), pa.float64()),
        ),
        "received_at": pa.array([r.received_at for r in rollouts], pa.float64()),
    }
    return pa.record_batch(list(cols.values()), schema=ROLLOUT_SCHEMA)


def from_batch(batch: pa.RecordBatch) -> list[Rollout]:
    """The rollouts of a segment's record batch."""
    cols = batch.to_pydict()

    def arr(v: list | None, dtype: str) -> np.ndarray | None:
        return None if v is None else np.asarray(v, dtype=dtype)

    out = []
    for i in range(batch.num_rows):
        timings = cols["timings"][i]
        out.append(
            Rollout(
                cols["rollout_id"][i],
                cols["prompt_id"][i],
                cols["group_id"][i],
                cols["sample_index"][i],
                cols["policy_version"][i],
                cols["oldest_version"][i],
                arr(cols["prompt_ids"][i], "int32"),
                np.asarray(cols["completion_ids"][i], dtype=np.int32),
                arr(cols["token_policy_versions"][i], "int64"),
                arr(cols["logprobs"][i], "float32"),
                cols["text"][i],
                cols["status"][i],
                cols["reward"][i],
                None if timings is None else dict(timings),
                cols["seq"][i],
                cols["received_at"][i],
            )
        )
    return out
