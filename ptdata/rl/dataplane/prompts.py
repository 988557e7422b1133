"""The prompts a dataplane hands out: a release's gold_rlvr rows, in seeded epochs.

Epoch e is a permutation of the prompts (sorted by record_id, shuffled by `random.Random(f"{seed}:{e}")`), handed
out in order, so each prompt goes out once an epoch; the position is a control-log entry, so a restart does not
hand an epoch's prompts out again. Each prompt handed out comes with a fresh group id (`e<epoch>-<position>`) for
the rollouts of its group. The messages come from the lake's silver_rlvr (the release's rows hold token ids);
the verifier, answer and args go along for the server's own verification. ARCHITECTURE.md, "RL dataplane".
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ptdata.core import catalog
from ptdata.core.lake import Lake


class ReleaseError(RuntimeError):
    """The release is missing or holds no RL prompts."""


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    prompt_ids: list[int]
    messages: list[dict[str, str]] | None
    answer: str
    verifier: str
    verifier_args: str


class PromptSet:
    def __init__(self, prompts: list[Prompt], vocab_size: int, seed: int = 0) -> None:
        if not prompts:
            raise ReleaseError("the release holds no gold_rlvr prompts")
        self.by_id = {p.prompt_id: p for p in prompts}
        self.order = sorted(self.by_id)
        self.vocab_size = vocab_size
        self.seed = seed
        self.cursor = 0  # prompts handed out in all epochs
        self._epoch, self._order = -1, self.order  # the permutation of the epoch being handed out

    @classmethod
    def from_release(cls, lake: Lake, name: str, seed: int = 0) -> PromptSet:
        folder = Path(catalog.release_folder(lake, name))
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            raise ReleaseError(f"no release {name!r} at {folder}: materialize the release asset first")
        shards = json.loads(manifest.read_text()).get("shards", {}).get("gold_rlvr", [])
        columns = ["record_id", "prompt_ids", "answer", "verifier", "verifier_args"]
        rows = [r for s in shards for r in pq.read_table(folder / s["file"], columns=columns).to_pylist()]
        messages = prompt_messages(lake, [r["record_id"] for r in rows])
        with open(folder / "tokenizer.json", "rb") as f:
            vocab = _vocab_size(orjson.loads(f.read()))
        prompts = [
            Prompt(
                r["record_id"],
                r["prompt_ids"],
                messages.get(r["record_id"]),
                r["answer"],
                r["verifier"],
                r["verifier_args"],
            )
            for r in rows
        ]
        return cls(prompts, vocab, seed)

    def known(self, prompt_id: str) -> bool:
        return prompt_id in self.by_id

    def take(self, n: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The next n prompts as the API gives them, and the control entry that moves the cursor past them."""
        out = []
        for k in range(self.cursor, self.cursor + n):
            epoch, position = divmod(k, len(self.order))
            p = self.by_id[self._permutation(epoch)[position]]
            out.append(
                {
                    "prompt_id": p.prompt_id,
                    "group_id": f"e{epoch}-{position}",
                    "epoch": epoch,
                    "prompt_ids": p.prompt_ids,
                    "messages": p.messages,
                }
            )
        return out, {"t": "prompts", "cursor": self.cursor + n}

    def _permutation(self, epoch: int) -> list[str]:
        if self._epoch != epoch:
            order = list(self.order)
            random.Random(f"{self.seed}:{epoch}").shuffle(order)
            self._epoch, self._order = epoch, order
        return self._order


def prompt_messages(lake: Lake, record_ids: list[str]) -> dict[str, list[dict[str, str]]]:
    """The prompt messages of rlvr records, from the lake's silver_rlvr, by record_id (absent: not there)."""
    files = f"{lake.root}/silver/silver_rlvr/**/*.parquet"
    if not record_ids or not list(Path(lake.root, "silver", "silver_rlvr").rglob("*.parquet")):
        return {}
    con = duckdb.connect()
    con.register("wanted", pa.table({"record_id": record_ids}))
    rows = con.sql(
        f"select s.record_id, s.prompt from read_parquet('{files}', hive_partitioning=true) s "
        "join wanted using (record_id)"
    ).fetchall()
    return {rid: [{"role": m["role"], "content": m["content"]} for m in prompt] for rid, prompt in rows}


def _vocab_size(tokenizer: dict[str, Any]) -> int:
    ids = list(tokenizer["model"]["vocab"].values()) + [t["id"] for t in tokenizer.get("added_tokens", [])]
    return max(ids) + 1
