"""The RL online dataplane: prompts out to rollout workers, rollouts in (durably), whole fresh-enough groups out to
the trainer. `records` (the rollout and its checks), `log` (segment and control logs), `buffer` (groups, staleness,
leases), `prompts` (a release's RL prompts in seeded epochs), `server` (the HTTP API), `client`, `cli`.
ARCHITECTURE.md, "RL dataplane"."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # `ptdata.rl.dataplane.Client` without importing requests and the server for every user of the records
    if name in ("Client", "DataplaneError"):
        from ptdata.rl.dataplane import client

        return getattr(client, name)
    raise AttributeError(name)
