"""The executor: a partition's per-record work on every core, with results identical to one core.

A stage hands it a plain function, a context (what every task needs: rules, the eval index, the tokenizer) and
its tasks (a partition file's row groups, in order). It yields the results in task order, so the staged file
is the same, byte for byte, whatever the number of workers (ARCHITECTURE.md, principle 4).

`LocalExecutor` runs the tasks in a pool of `PTDATA_WORKERS` processes (default: every core the process may
use), started with "spawn": the run's process holds Dagster's, DuckDB's and Polars' threads, which a fork would
copy mid-lock. The pool lives as long as the process and is shared by its stages, so a run pays the start-up
once; `start` begins it early, and each worker first imports the modules the tasks will need (`preload`), so a
run's first tasks do not wait for them, and runs preload's calls (loading a model) in a thread beside its tasks.
The context is pickled once per call into a temporary file that each worker loads once. At most two
tasks per worker are in flight, so memory stays bounded by the batch, not the partition (principle 2). The
workers' CPU time is counted (`worker_cpu_seconds`), so a stage's metadata reports what its work cost.
"""

from __future__ import annotations

import functools
import importlib
import os
import pickle
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from multiprocessing.util import Finalize
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ptdata.core.config import ConfigError

WORKERS_ENV = "PTDATA_WORKERS"
# tasks in flight per worker: one running, one queued, so a worker never waits for the next
IN_FLIGHT_PER_WORKER = 2

C = TypeVar("C")
T = TypeVar("T")
R = TypeVar("R")


class ExecutorError(RuntimeError):
    """A worker process died (killed, out of memory) while running a task."""


def workers_from_env(env: dict[str, str] | None = None) -> int:
    """PTDATA_WORKERS, else every core this process may run on."""
    value = (os.environ if env is None else env).get(WORKERS_ENV, "").strip()
    if not value:
        # the cores this process may use (a container's or taskset's share); macOS has no affinity call
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{WORKERS_ENV}: a positive number of processes, got {value!r}")
    return int(value)


class Executor(Protocol):
    workers: int

    def map(self, fn: Callable[[C, T], R], context: C, tasks: Sequence[T]) -> Iterator[R]:
        """fn(context, task) for every task, yielded in task order."""
        ...


_worker_cpu = 0.0


def worker_cpu_seconds() -> float:
    """CPU seconds the tasks run in worker processes have taken so far, in this process's lifetime."""
    return _worker_cpu


def _count_cpu(seconds: float) -> None:
    global _worker_cpu
    _worker_cpu += seconds  # results are taken in the thread that iterates a map, one at a time


class LocalExecutor:
    """Tasks in a pool of worker processes on this machine; one worker, or one task, runs in the process."""

    def __init__(self, workers: int, preload: Sequence[str] = ()) -> None:
        self.workers = workers
        # "module" or "module:function": imported (and called) by each worker as it starts
        self.preload = tuple(preload)

    def start(self) -> None:
        """Start the workers now rather than at the first task: their start-up (spawn, `preload`) then overlaps
        whatever this process does before it hands them work."""
        if self.workers > 1:
            pool = _pool(self.workers, self.preload)
            for _ in range(self.workers):  # the pool starts a process per task submitted while none is idle
                pool.submit(_started)

    def map(self, fn: Callable[[C, T], R], context: C, tasks: Sequence[T]) -> Iterator[R]:
        if self.workers == 1 or len(tasks) < 2:
            for task in tasks:
                yield fn(context, task)
            return
        pool = _pool(self.workers, self.preload)
        with tempfile.NamedTemporaryFile(prefix="ptdata-context-", suffix=".pickle", delete=False) as f:
            pickle.dump(context, f, protocol=pickle.HIGHEST_PROTOCOL)
        path = f.name
        pending: deque[Future] = deque()
        try:
            for task in tasks:
                pending.append(pool.submit(_run, fn, path, task))
                if len(pending) >= self.workers * IN_FLIGHT_PER_WORKER:
                    yield _result(pending.popleft())
            while pending:
                yield _result(pending.popleft())
        except BrokenProcessPool as e:
            _pools.clear()  # the next call starts a new pool
            raise ExecutorError(f"a worker process died while running a task ({e}); see the run's log") from e
        finally:
            for future in pending:
                future.cancel()
            for future in pending:
                if not future.cancelled():
                    future.exception()  # wait: the context file must outlive the tasks that read it
            Path(path).unlink(missing_ok=True)


INLINE = LocalExecutor(1)


def local_executor(env: dict[str, str] | None = None, preload: Sequence[str] = ()) -> LocalExecutor:
    return LocalExecutor(workers_from_env(env), preload)


def _result(future: Future) -> Any:
    result, cpu = future.result()
    _count_cpu(cpu)
    return result


_pools: dict[tuple[int, tuple[str, ...]], ProcessPoolExecutor] = {}


def _pool(workers: int, preload: tuple[str, ...]) -> ProcessPoolExecutor:
    """The process's pool of `workers` processes that preloaded `preload` (one at a time: a pool of another
    shape is shut down first)."""
    key = (workers, preload)
    if key not in _pools:
        _shutdown()
        _pools[key] = ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(preload,)
        )
    return _pools[key]


def _shutdown() -> None:
    for pool in _pools.values():
        pool.shutdown(cancel_futures=True)
    _pools.clear()


# The pool's workers are child processes that wait for tasks: they must be stopped before this process exits.
# A multiprocessing child (a step of Dagster's multiprocess executor) skips atexit and joins its children on the
# way out, which would wait for the idle workers forever. multiprocessing's exit finalizers (priority >= 0) run
# before that join, in a child as in a main process (where multiprocessing runs them from atexit).
Finalize(None, _shutdown, exitpriority=100)


def exit_with_parent() -> None:
    """In a worker process: exit when the process that started it is gone (a worker whose run was killed would
    otherwise wait for tasks forever), watched by a daemon thread."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _init_worker(preload: tuple[str, ...]) -> None:
    # each worker is one core: libraries that would start a thread per core in every worker get one
    os.environ.update(RAYON_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", POLARS_MAX_THREADS="1")
    exit_with_parent()
    calls = []
    for name in preload:
        module, _, function = name.partition(":")
        loaded = importlib.import_module(module)
        if function:
            calls.append(getattr(loaded, function))
    # the calls (a model to load) run beside the first tasks, which need only the modules: a run's first stage
    # does not wait for what a later one needs, and a task that needs it waits on the call's own lock
    if calls:
        threading.Thread(target=lambda: [call() for call in calls], daemon=True).start()


def _started() -> None:
    """The task `start` submits: it only makes the pool start a worker."""


@functools.lru_cache(maxsize=1)
def _context(path: str) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)


def _run(fn: Callable[[Any, Any], Any], path: str, task: Any) -> tuple[Any, float]:
    cpu = time.process_time()
    result = fn(_context(path), task)
    return result, time.process_time() - cpu
