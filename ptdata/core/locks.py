"""Exclusive locks on the partitions an asset writes, so two runs never interleave their writes to one partition.

A lock is an advisory `flock` on `$PTDATA_HOME/locks/<asset>/<partition>.lock`. The kernel drops it when its
holder exits, however it exits: a run killed with SIGKILL leaves no stale lock behind, and its re-run goes
ahead at once. The holder writes who it is into the file, so the run that finds it taken can say by whom.
flock guards the runs of one machine (what a local lake and `dagster dev` are); runs launched on several
machines need Dagster's run queue limits as well (README, Operations).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path


class PartitionBusy(RuntimeError):
    """Another run holds the lock of a partition this run was about to write."""


# how often a waiting step tries a held lock again
_POLL_SECONDS = 0.2


@contextlib.contextmanager
def partition_locks(
    folder: Path,
    asset: str,
    partitions: Sequence[str],
    run_id: str,
    wait_seconds: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the locks of `asset`'s `partitions` (all or none) for the duration of the block.

    A lock held by another run is waited for up to `wait_seconds` (`on_wait` is told whose it is, once); then
    PartitionBusy, naming the holder: this caller then writes nothing. Locks are taken in sorted order, and a
    step holds only its own asset's, so waiting cannot deadlock: the holder's step ends without needing ours.
    """
    held: list[int] = []
    deadline = time.monotonic() + wait_seconds
    try:
        for key in sorted(set(partitions)):
            path = folder / asset / f"{key}.lock"
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            told = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = _holder(fd)
                    if time.monotonic() >= deadline:
                        os.close(fd)
                        waited = f" (waited {wait_seconds:g}s)" if wait_seconds else ""
                        raise PartitionBusy(f"{asset} {key} is being written by {holder}{waited}") from None
                    if on_wait is not None and not told:
                        on_wait(f"{asset} {key} is being written by {holder}: waiting up to {wait_seconds:g}s")
                        told = True
                    time.sleep(_POLL_SECONDS)
            held.append(fd)
            _write_holder(fd, run_id)
        yield
    finally:
        for fd in held:
            os.close(fd)  # closing the last descriptor releases the flock


@contextlib.contextmanager
def waiting_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path`, waiting for it: for short set-up steps that must not run twice at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_holder(fd: int, run_id: str) -> None:
    info = {
        "run_id": run_id,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        info = {}
    if not info.get("run_id"):
        return "another run"
    return f"run {info['run_id']} (pid {info.get('pid')} on {info.get('host')}, since {info.get('since')})"
