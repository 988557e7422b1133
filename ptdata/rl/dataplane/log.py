"""The dataplane's durable logs: append-only files of framed records, fsynced before a call is answered.

A frame is its payload's length and CRC-32 (little-endian u32 each) and the payload. A process killed mid-append
leaves a torn last frame, which the next open finds (short, or its CRC wrong) and cuts off: it was never
acknowledged to anyone, since a call is answered only after its frame is synced. Nothing is ever replaced by delete
and rename, and a file only grows, except for that torn tail.

`SegmentLog` holds the rollouts: each accepted POST is one frame, an Arrow IPC stream of one record batch, in
`segments/segment-<n>.arrow`; a segment is closed (never written again) when it passes `segment_bytes` or a new
day (UTC) begins, and closed segments are what the lake's `rollouts` table is built from. `ControlLog` holds everything else that must survive a
restart, as JSON frames: policy versions, acknowledgements, evictions, server verdicts and the prompt cursor.
ARCHITECTURE.md, "RL dataplane".
"""

from __future__ import annotations

import datetime as dt
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
# a dataplane folder's layout
SEGMENTS = "segments"
CONTROL_LOG = "control.log"


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
        frames, good = [], 0
        if self.path.exists():
            for payload, good in _frames(self.path.read_bytes()):  # noqa: B007 - good: the end of the last one
                frames.append(payload)
        return frames, good

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


def _day(batch: pa.RecordBatch) -> dt.date:
    received = batch.column("received_at")[0].as_py()
    return dt.datetime.fromtimestamp(received, dt.UTC).date()


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
        last = self._active.frames[-1:]
        self._day = _day(next(iter(pa.ipc.open_stream(last[0])))) if last else None

    def _path(self, number: int) -> Path:
        return self.folder / f"segment-{number:06d}.arrow"

    def append(self, batch: pa.RecordBatch) -> None:
        """Append a batch (all of one intake, so of one day) and sync it; a new day starts a new segment, so a
        closed segment holds one day's rollouts and a day is complete once a later one has begun."""
        day = _day(batch)
        if self._active.size and day != self._day:
            self._rotate()
        self._active.append([_ipc(batch)])
        self._day = day
        if self._active.size >= self.segment_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._active.close()
        self._number += 1
        self._active = FramedFile(self._path(self._number))

    def recovered(self) -> Iterator[pa.RecordBatch]:
        """Every batch the log held when it was opened, oldest first (read once, at a restart)."""
        for n in range(self._number):
            yield from read_segment(self._path(n))
        frames, self._active.frames = self._active.frames, []
        for frame in frames:
            yield from pa.ipc.open_stream(frame)

    def close(self) -> None:
        self._active.close()


def _frames(data: bytes) -> Iterator[tuple[bytes, int]]:
    """Each whole frame's payload and the offset after it, up to the first torn or corrupt one."""
    at = 0
    while at + _HEAD.size <= len(data):
        length, crc = _HEAD.unpack_from(data, at)
        payload = data[at + _HEAD.size : at + _HEAD.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            return
        at += _HEAD.size + length
        yield payload, at


def read_frames(path: Path) -> Iterator[bytes]:
    """The payloads of a log file, read only (a running server may be appending to it)."""
    if path.exists():
        for payload, _ in _frames(path.read_bytes()):
            yield payload


def read_segment(path: Path) -> Iterator[pa.RecordBatch]:
    """The batches of one segment file, read only."""
    for frame in read_frames(path):
        yield from pa.ipc.open_stream(frame)


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
