"""The rollouts source: rejection sampling from the RL loop into a chat regime.

Each of the day's verified rollouts (the lake's verified_rollouts, ptdata/rl/loop.py) whose reward is at least
`min_reward` and whose status is one of `statuses` becomes a conversation: its prompt's messages (from the lake's
silver_rlvr, by prompt_id) and the completion's text as the assistant turn. Its `id` is the rollout id (the
record's source_key), and the policy version, prompt id and reward go along in the record's meta, so every SFT
record made this way says which policy wrote it for which prompt. A rollout whose prompt is not in silver_rlvr is
quarantined as `missing_prompt`; the rollouts left out by the reward or status are counted in the run's notes.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from ptdata.core import catalog
from ptdata.core.config import RolloutsSource
from ptdata.core.lake import Lake
from ptdata.rl.dataplane.prompts import prompt_messages
from ptdata.sources.base import RawRecord, SourceContext, error_record

_COLUMNS = ["rollout_id", "prompt_id", "policy_version", "text", "status", "reward"]


def read_rollouts(source: RolloutsSource, ctx: SourceContext) -> Iterator[RawRecord]:
    lake = Lake(ctx.lake_root)
    part = catalog.VERIFIED_ROLLOUTS.part(ctx.date)
    if not lake.exists(part):
        ctx.notes.append(f"no verified_rollouts for {ctx.date}: materialize it before this source's bronze")
        return
    rows = lake.read_table(lake.path(part), columns=_COLUMNS).to_pylist()
    kept = [
        (i, r)
        for i, r in enumerate(rows)
        if r["reward"] is not None and r["reward"] >= source.min_reward and r["status"] in source.statuses
    ]
    ctx.notes.append(f"{len(kept)} of {len(rows)} verified rollouts kept (reward >= {source.min_reward:g})")
    prompts = prompt_messages(lake, sorted({r["prompt_id"] for _, r in kept}))
    uri = f"{catalog.VERIFIED_ROLLOUTS.relpath}/date={ctx.date}"
    for i, r in kept:
        prompt = prompts.get(r["prompt_id"])
        if prompt is None:
            yield error_record(f"{uri}#{i}", "missing_prompt", f"prompt {r['prompt_id']} is not in silver_rlvr")
            continue
        payload = {
            "id": r["rollout_id"],
            "messages": [*prompt, {"role": "assistant", "content": r["text"]}],
            "policy_version": r["policy_version"],
            "prompt_id": r["prompt_id"],
            "reward": r["reward"],
        }
        raw = orjson.dumps(payload)
        yield RawRecord(source_uri=f"{uri}#{i}", payload=payload, raw=raw, nbytes=len(raw))
