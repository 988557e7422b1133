"""The dataplane's durable logs: append-only files of framed records, fsynced before a call is answered.

A frame is its payload's length and CRC-32 (little-endian u32 each) and the payload. A process killed mid-append
leaves a torn last frame, which the next open finds (short, or its CRC wrong) and cuts off: it was never
acknowledged to anyone, since a call is answered only after its frame is synced. Nothing is ever replaced by delete
and rename, and a file only grows, except for that torn tail.

`SegmentLog` holds the rollouts: each accepted POST is one frame, an Arrow IPC stream of one record batch, in
`segments/segment-<n>.arrow`; a segment is closed (never written again) when it passes `segment_bytes`, and closed
segments are what the lake's `rollouts` table is built from. `ControlLog` holds everything else that must survive a
restart, as JSON frames: policy versions, acknowledgements, evictions, server verdicts and the prompt cursor.
ARCHITECTURE.md, "RL dataplane".
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import orjson
import pyarrow as pa

from ptdata.rl.dataplane.records import ROLLOUT_SCHEMA

_HEAD = struct.Struct("<II")
SEGMENT_BYTES = 64 << 20


class FramedFile:
    """One append-only file of frames."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.frames, good = self._scan()
        with open(path, "ab") as f:
            if f.tell() > good:
                f.truncate(good)  # the torn tail of a killed append
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.size = good
        _sync_dir(path.parent)

    def _scan(self) -> tuple[list[bytes], int]:
        frames: list[bytes] = []
        if not self.path.exists():
            return frames, 0
        data = self.path.read_bytes()
        at = 0
        while at + _HEAD.size <= len(data):
            length, crc = _HEAD.unpack_from(data, at)
            payload = data[at + _HEAD.size : at + _HEAD.size + length]
            if len(payload) < length or zlib.crc32(payload) != crc:
                break
            frames.append(payload)
            at += _HEAD.size + length
        return frames, at

    def append(self, payloads: list[bytes]) -> None:
        """Append the frames in one write and sync them."""
        data = b"".join(_HEAD.pack(len(p), zlib.crc32(p)) + p for p in payloads)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)
        self.size += len(data)

    def close(self) -> None:
        os.close(self._fd)


def _sync_dir(path: Path) -> None:
    # a new file's name is durable once its folder is synced
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ipc(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, ROLLOUT_SCHEMA) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


class SegmentLog:
    """Rollouts in segments of framed Arrow IPC batches, under `folder`."""

    def __init__(self, folder: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        folder.mkdir(parents=True, exist_ok=True)
        numbers = sorted(int(p.stem.split("-")[1]) for p in folder.glob("segment-*.arrow"))
        self._number = numbers[-1] if numbers else 0
        self._active = FramedFile(self._path(self._number))

    def _path(self, number: int) -> Path:
        return self.folder / f"segment-{number:06d}.arrow"

    def append(self, batch: pa.RecordBatch) -> None:
        self._active.append([_ipc(batch)])
        if self._active.size >= self.segment_bytes:
            self._active.close()
            self._number += 1
            self._active = FramedFile(self._path(self._number))

    def closed_segments(self) -> list[Path]:
        return [self._path(n) for n in range(self._number)]

    def recovered(self) -> Iterator[pa.RecordBatch]:
        """Every batch the log held when it was opened, oldest first (read once, at a restart)."""
        for n in range(self._number):
            yield from read_segment(self._path(n))
        frames, self._active.frames = self._active.frames, []
        for frame in frames:
            yield from pa.ipc.open_stream(frame)

    def close(self) -> None:
        self._active.close()


def read_segment(path: Path) -> Iterator[pa.RecordBatch]:
    """The batches of one segment file (a closed one, or what an active one holds now), without opening it for
    writing."""
    data = path.read_bytes()
    at = 0
    while at + _HEAD.size <= len(data):
        length, crc = _HEAD.unpack_from(data, at)
        payload = data[at + _HEAD.size : at + _HEAD.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            return
        yield from pa.ipc.open_stream(payload)
        at += _HEAD.size + length


class ControlLog:
    """JSON entries (`{"t": kind, ...}`), framed and synced like the segments."""

    def __init__(self, path: Path) -> None:
        self._file = FramedFile(path)
        self.entries = [orjson.loads(f) for f in self._file.frames]
        self._file.frames = []

    def append(self, *entries: dict) -> None:
        self._file.append([orjson.dumps(e) for e in entries])

    def close(self) -> None:
        self._file.close()
