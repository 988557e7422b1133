"""The spill of gold packing: each tokenized sequence written to a local Arrow IPC stream as it is made, so a
partition's sequences are never held in memory while best-fit decreasing plans their rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

SPILL_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("ids", pa.list_(pa.int32())),
        ("mask", pa.list_(pa.int8())),
        ("truncated", pa.bool_()),
    ]
)
# a chunk file: spilled sequences with their place in the packed output
CHUNK_SCHEMA = SPILL_SCHEMA.append(pa.field("rank", pa.int32())).append(pa.field("row", pa.int32()))
IPC = pa.ipc.IpcWriteOptions(compression="lz4")


def list_array(parts: list[np.ndarray], dtype: type) -> pa.ListArray:
    offsets = np.zeros(len(parts) + 1, dtype=np.int32)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    values = np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def spill_batch(sequences: list[tuple[str, np.ndarray, np.ndarray, bool]]) -> pa.RecordBatch:
    """(record_id, ids, mask, truncated) sequences as one spill batch: built where they were tokenized (an
    executor's worker), so the run's process only writes it."""
    return pa.record_batch(
        [
            pa.array([s[0] for s in sequences], type=pa.string()),
            list_array([s[1] for s in sequences], np.int32),
            list_array([s[2] for s in sequences], np.int8),
            pa.array([s[3] for s in sequences], type=pa.bool_()),
        ],
        schema=SPILL_SCHEMA,
    )


class Stream:
    """An Arrow IPC stream file on local disk, written batch by batch and read back the same way (not memory
    mapped: mapped pages would count in the process's resident memory)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.sink = pa.OSFile(str(path), "wb")
        self.writer = pa.ipc.new_stream(self.sink, schema, options=IPC)

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        self.writer.write(batch)

    def close(self) -> None:
        self.writer.close()
        self.sink.close()

    def batches(self) -> Iterator[pa.RecordBatch]:
        with pa.OSFile(str(self.path), "rb") as f:
            yield from pa.ipc.open_stream(f)


class Spill(Stream):
    """The sequences to pack, in arrival order, on local disk; only each one's length and key (its record_id as
    bytes, which sort as the strings do) stay in memory, for the packing plan."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SPILL_SCHEMA)
        self.lengths = np.zeros(0, dtype=np.int32)
        self.keys = np.zeros(0, dtype="S1")
        self._lengths: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []

    def add(self, batch: pa.RecordBatch) -> None:
        """A batch of `spill_batch`'s."""
        if not batch.num_rows:
            return
        self.write(batch)
        offsets = batch.column("ids").offsets.to_numpy()
        self._lengths.append(np.diff(offsets).astype(np.int32))
        self._keys.append(np.asarray([r.encode() for r in batch.column("record_id").to_pylist()]))

    def close(self) -> None:
        super().close()
        self.lengths = np.concatenate([self.lengths, *self._lengths])
        self.keys = np.concatenate([self.keys, *self._keys])
        self._lengths, self._keys = [], []
