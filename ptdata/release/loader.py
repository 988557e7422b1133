"""PyTorch loading of a release (the optional extra `torch`: `pip install 'ptdata[torch]'`).

`ReleaseDataset` is an IterableDataset over a release's packed Parquet shards (gold_sft or gold_text). Each
item is one packed row as tensors:
- `input_ids`, `position_ids` (restarting at 0 where each packed sequence starts: give them to the model so a
  token attends only within its sequence, e.g. flash-attention's varlen path or a block-diagonal mask);
- `labels`: input_ids where the loss mask is 1, else -100 (PyTorch's ignore index), and -100 on the first token
  of every packed sequence, which would otherwise be predicted from the end of the sequence before it;
- `seq_lens`.

Rows are shuffled per epoch by a seeded permutation, then dealt to ranks (row i to rank i % world_size) and,
within a rank, to DataLoader workers the same way. `state_dict()` gives the epoch and how many rows this rank has
consumed; `load_state_dict` resumes exactly there (with workers, pass the consumed count your loop kept).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ptdata.core.regimes import regimes

IGNORE_INDEX = -100


def labels_for(input_ids: np.ndarray, loss_mask: np.ndarray, seq_lens: list[int]) -> np.ndarray:
    """Training targets of a packed row (see the module docstring)."""
    labels = np.where(loss_mask == 1, input_ids, IGNORE_INDEX).astype(np.int64)
    starts = np.cumsum([0, *seq_lens[:-1]])
    labels[starts] = IGNORE_INDEX
    return labels


class ReleaseDataset(IterableDataset):
    def __init__(
        self,
        release_dir: str | Path,
        table: str = "gold_sft",
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.dir = Path(release_dir)
        manifest = json.loads((self.dir / "manifest.json").read_text())
        if table not in manifest["shards"]:
            raise ValueError(f"release {manifest['name']} has no table {table}; it has {sorted(manifest['shards'])}")
        packed = [f"gold_{r.name}" for r in regimes() if r.packs]
        if table not in packed:
            raise ValueError(f"ReleaseDataset reads packed tables: {' or '.join(packed)}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.shards = [self.dir / s["file"] for s in manifest["shards"][table]]
        self.rows_per_shard = [s["rows"] for s in manifest["shards"][table]]
        self.group_rows = [
            [md.row_group(g).num_rows for g in range(md.num_row_groups)]
            for md in (pq.read_metadata(path) for path in self.shards)
        ]
        self.seed, self.shuffle, self.rank, self.world_size = seed, shuffle, rank, world_size
        self.epoch = 0
        self.consumed = 0  # rows of this rank's order already yielded (or skipped on resume)

    def __len__(self) -> int:
        """Rows this rank yields per epoch."""
        return len(range(self.rank, sum(self.rows_per_shard), self.world_size))

    def _plan(self) -> list[tuple[int, int, np.ndarray]]:
        """This epoch's order for this rank: (shard, row group, rows of the group), row groups in a seeded
        permutation and rows permuted within each, so every row group is read once per epoch."""
        rng = np.random.default_rng([self.seed, self.epoch])
        groups = [(s, g, n) for s, sizes in enumerate(self.group_rows) for g, n in enumerate(sizes)]
        if self.shuffle:
            groups = [groups[k] for k in rng.permutation(len(groups))]
        plan, seen = [], 0
        for shard, group, n in groups:
            rows = rng.permutation(n) if self.shuffle else np.arange(n)
            mine = rows[(seen + np.arange(n)) % self.world_size == self.rank]
            plan.append((shard, group, mine))
            seen += n
        return plan

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.consumed = epoch, 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "consumed": self.consumed, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"the state was saved with seed {state['seed']}, this dataset has seed {self.seed}")
        self.epoch, self.consumed = int(state["epoch"]), int(state["consumed"])

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = get_worker_info()
        workers, me = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        position = 0  # in this rank's order
        for shard, group, rows in self._plan():
            end = position + len(rows)
            wanted = [
                (p, r)
                for p, r in zip(range(position, end), rows.tolist(), strict=True)
                if p >= self.consumed and (p - self.consumed) % workers == me
            ]
            position = end
            if not wanted:
                continue
            table = pq.ParquetFile(self.shards[shard]).read_row_group(group, columns=_COLUMNS)
            for _, r in wanted:
                item = _item(table.slice(r, 1).to_pylist()[0])
                if worker is None:
                    self.consumed += 1  # before the yield: a state saved after next() counts the row just given
                yield item


_COLUMNS = ["input_ids", "loss_mask", "position_ids", "seq_lens"]


def _item(row: dict[str, Any]) -> dict[str, torch.Tensor]:
    ids = np.asarray(row["input_ids"], dtype=np.int64)
    mask = np.asarray(row["loss_mask"], dtype=np.int8)
    return {
        "input_ids": torch.from_numpy(ids),
        "labels": torch.from_numpy(labels_for(ids, mask, row["seq_lens"])),
        "position_ids": torch.from_numpy(np.asarray(row["position_ids"], dtype=np.int64)),
        "seq_lens": torch.tensor(row["seq_lens"], dtype=torch.int64),
    }
