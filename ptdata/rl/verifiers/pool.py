"""Verifiers in worker processes with an outer wall clock: a verification that overruns its time limit has its
worker killed and replaced, and becomes a `timeout` verdict; a worker that dies becomes an `exception` verdict.

Why not the executor of ptdata.core.executor: its pool cannot kill one task, and a verifier can hang where no
signal reaches it (a regex that backtracks for ever, a SymPy simplification). The workers are started with
"spawn" (the caller may hold threads a fork would copy mid-lock) and run each verification on their main thread,
where Math-Verify's own `signal.alarm` timeouts work. Verdicts come back in task order. ARCHITECTURE.md, "RL
verifiers".
"""

from __future__ import annotations

import importlib
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.util import Finalize
from typing import Any

from ptdata.core.executor import exit_with_parent, workers_from_env
from ptdata.rl.verifiers import VERIFIERS, UnusableReference, Verdict, parse_args, verify_many

# what a worker sends once it has imported and warmed up its verifiers
_READY = "ready"
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class VerifyTask:
    """Completions of one record (one or more: a record's gate trials go together)."""

    verifier: str
    completions: tuple[str, ...]
    answer: str
    args: str | Mapping[str, Any] | None = None


def _time_limit(task: VerifyTask, default: float) -> float:
    try:
        own = VERIFIERS.get(task.verifier).time_limit(parse_args(task.args))
    except (ValueError, UnusableReference):
        own = None  # the worker reports what is wrong with the task
    return (default if own is None else own) * len(task.completions)


def _serve(conn: Connection, preload: tuple[str, ...]) -> None:
    """A worker: verify each task it is sent, on its main thread, until it is sent None."""
    from ptdata.rl.verifiers import math_match

    for module in preload:
        importlib.import_module(module)
    math_match.warm_up()
    exit_with_parent()
    conn.send(_READY)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        conn.send(verify_many(task.verifier, task.completions, task.answer, task.args))


class _Worker:
    def __init__(self, preload: tuple[str, ...]) -> None:
        self.conn, child = get_context("spawn").Pipe()
        self.process = get_context("spawn").Process(target=_serve, args=(child, preload), daemon=True)
        self.process.start()
        child.close()
        self.ready = False

    def send(self, task: VerifyTask) -> None:
        """Send a task once the worker has started: a task's wall clock does not count the worker's start-up."""
        if not self.ready:
            if not self.conn.poll(START_TIMEOUT_S) or self.conn.recv() != _READY:
                raise RuntimeError(f"a verifier worker did not start within {START_TIMEOUT_S:g}s")
            self.ready = True
        self.conn.send(task)

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()


class VerifierPool:
    """`workers` processes (default PTDATA_WORKERS, else every core) that verify tasks; `time_limit_s` is the wall
    clock of one completion's verification unless its verifier sets its own (code_tests: its timeout_s and a
    grace); `preload` names modules the workers import first (ones that register more verifiers)."""

    def __init__(self, workers: int | None = None, time_limit_s: float = 20.0, preload: Sequence[str] = ()) -> None:
        self.size = workers or workers_from_env()
        self.time_limit_s = time_limit_s
        self.preload = tuple(preload)
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self.killed = 0

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def verify(self, tasks: Sequence[VerifyTask]) -> list[list[Verdict]]:
        """The verdicts of each task's completions, in order (one call at a time: the workers are the pool's)."""
        with self._lock:
            return self._verify(tasks)

    def _verify(self, tasks: Sequence[VerifyTask]) -> list[list[Verdict]]:
        while len(self._workers) < min(self.size, len(tasks)):
            self._workers.append(_Worker(self.preload))
        verdicts: list[list[Verdict] | None] = [None] * len(tasks)
        todo = deque(range(len(tasks)))
        idle = list(self._workers)
        busy: dict[Connection, tuple[_Worker, int, float]] = {}
        while todo or busy:
            while todo and idle:
                worker, i = idle.pop(), todo.popleft()
                worker.send(tasks[i])
                busy[worker.conn] = (worker, i, time.monotonic() + _time_limit(tasks[i], self.time_limit_s))
            timeout = max(0.0, min(deadline for _, _, deadline in busy.values()) - time.monotonic())
            for conn in wait(list(busy), timeout):
                worker, i, _ = busy.pop(conn)
                try:
                    verdicts[i] = conn.recv()
                    idle.append(worker)
                except (EOFError, OSError):
                    died = Verdict(0.0, "exception", f"the worker died (exit code {worker.process.exitcode})")
                    verdicts[i] = [died] * len(tasks[i].completions)
                    idle.append(self._replace(worker))
            now = time.monotonic()
            for conn, (worker, i, deadline) in list(busy.items()):
                # a verdict waiting in the pipe came in time (this loop may have waited on a worker's start)
                if now >= deadline and not conn.poll():
                    del busy[conn]
                    limit = _time_limit(tasks[i], self.time_limit_s)
                    killed = Verdict(0.0, "timeout", f"no verdict within {limit:g}s: the worker was killed")
                    verdicts[i] = [killed] * len(tasks[i].completions)
                    self.killed += 1
                    idle.append(self._replace(worker))
        return [
            v if v is not None else [Verdict(0.0, "exception", "no verdict")] * len(t.completions)
            for v, t in zip(verdicts, tasks, strict=True)
        ]

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        fresh = _Worker(self.preload)
        self._workers[self._workers.index(worker)] = fresh
        return fresh

    def close(self) -> None:
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        for worker in self._workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.kill()
        self._workers.clear()


_shared: VerifierPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> VerifierPool:
    """The process's pool, started on first use and stopped before the process exits (as the executor's is): the
    gates of a run's partitions and the dataplane share its workers and their warm Math-Verify."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = VerifierPool()
            Finalize(None, _shared.close, exitpriority=100)
        return _shared
