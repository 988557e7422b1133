"""The executor: task order, worker CPU, errors, dead workers, and PTDATA_WORKERS."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time

import pytest

from ptdata.core.executor import ExecutorError, LocalExecutor, worker_cpu_seconds, workers_from_env


def _square_plus(offset: int, task: int) -> tuple[int, int]:
    # busy enough that the workers' CPU is measurable
    total = sum(i * i for i in range(20_000))
    return task * task + offset, total


def _fails_on_three(_: None, task: int) -> int:
    if task == 3:
        raise ValueError(f"task {task} is bad")
    return task


def _kills_itself(_: None, task: int) -> int:
    if task == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return task


def test_results_come_back_in_task_order_and_equal_one_process():
    tasks = list(range(40))
    inline = list(LocalExecutor(1).map(_square_plus, 7, tasks))
    before = worker_cpu_seconds()
    pooled = list(LocalExecutor(2).map(_square_plus, 7, tasks))
    assert pooled == inline
    assert [r[0] for r in pooled] == [t * t + 7 for t in tasks]
    assert worker_cpu_seconds() > before  # the workers' CPU is counted in this process


def test_one_task_runs_in_the_process():
    before = worker_cpu_seconds()
    assert list(LocalExecutor(2).map(_square_plus, 0, [5]))[0][0] == 25
    assert worker_cpu_seconds() == before


def test_a_task_error_reaches_the_caller():
    with pytest.raises(ValueError, match="task 3 is bad"):
        list(LocalExecutor(2).map(_fails_on_three, None, range(10)))
    assert list(LocalExecutor(2).map(_fails_on_three, None, [0, 1, 2])) == [0, 1, 2]  # the pool still works


def test_a_dead_worker_is_an_executor_error_and_the_next_call_gets_a_new_pool():
    with pytest.raises(ExecutorError, match="worker process died"):
        list(LocalExecutor(2).map(_kills_itself, None, range(6)))
    assert list(LocalExecutor(2).map(_fails_on_three, None, [0, 1])) == [0, 1]


@pytest.mark.parametrize(("value", "expected"), [("3", 3), ("1", 1), ("", len(os.sched_getaffinity(0)))])
def test_workers_come_from_ptdata_workers(value, expected):
    assert workers_from_env({"PTDATA_WORKERS": value}) == expected


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_a_bad_ptdata_workers_is_refused(value):
    with pytest.raises(ValueError, match="PTDATA_WORKERS"):
        workers_from_env({"PTDATA_WORKERS": value})


def _map_in_a_child() -> None:
    assert [r[0] for r in LocalExecutor(2).map(_square_plus, 0, range(6))] == [t * t for t in range(6)]


def test_a_multiprocessing_child_that_used_the_pool_exits():
    # a step of Dagster's multiprocess executor is such a child: on exit it joins its children, the pool's
    # workers among them, so the pool must be stopped first or the step never ends
    child = multiprocessing.get_context("spawn").Process(target=_map_in_a_child)
    child.start()
    child.join(timeout=60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0


def mark_preloaded() -> None:
    time.sleep(1.0)  # a model loading: the worker's first tasks run meanwhile
    os.environ["PTDATA_TEST_PRELOADED"] = str(os.getpid())


def _preloaded(_: None, task: int) -> tuple[str | None, bool, str | None]:
    early = os.environ.get("PTDATA_TEST_PRELOADED")
    deadline = time.monotonic() + 30
    while "PTDATA_TEST_PRELOADED" not in os.environ and time.monotonic() < deadline:
        time.sleep(0.01)
    return early, "colorsys" in sys.modules, os.environ.get("PTDATA_TEST_PRELOADED")


def test_started_workers_import_the_preload_before_any_task_and_run_its_calls_beside_them():
    executor = LocalExecutor(2, preload=("colorsys", "ptdata_tests.core.test_executor:mark_preloaded"))
    executor.start()
    results = list(executor.map(_preloaded, None, range(8)))
    assert all(imported for _, imported, _ in results)  # the modules, before any task
    assert None in {early for early, _, _ in results}  # the call had not ended when the first tasks ran
    marks = {mark for _, _, mark in results}
    assert None not in marks and str(os.getpid()) not in marks  # and it ran in each worker that ran a task
    executor.start()  # a second start keeps the running pool
    assert {mark for _, _, mark in executor.map(_preloaded, None, range(8))} <= marks
