"""Operations against a real instance: source retries, partition locks, and a run killed mid-partition."""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from ptdata.core.config import Settings
from ptdata.core.locks import partition_locks
from ptdata.core.regimes import regime_names
from ptdata_tests.conftest import Reply, landing, run

D = "2026-11-02"


def chat(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]}


def api_config(url: str, retries: int = 3, delay: float = 0.2) -> dict:
    return {
        "start_date": "2026-11-01",
        "sources": [
            {
                "name": "api",
                "regime": "sft",
                "kind": "http",
                "url": f"{url}/v1/chats",
                "params": {"day": "{start}"},
                "pagination": {"type": "page"},
                "max_retries": 0,  # the reader gives up at once: the step's retry policy is what is tested
            }
        ],
        "automation": {"source_retries": retries, "source_retry_delay_seconds": delay},
    }


def paged(pages: int, per_page: int):
    def route(path: str, q: dict[str, str]) -> Reply:
        page = int(q["page"])
        rows = [chat(page * 100 + i) for i in range(per_page)] if page <= pages else []
        return Reply(body={"data": rows})

    return route


def bronze_ids(settings: Settings, regime: str = "sft", date: str = D) -> list[str]:
    path = settings.home / "lake" / "bronze" / f"bronze_{regime}" / f"date={date}" / "part-0.parquet"
    return pq.read_table(path, columns=["record_id"]).column(0).to_pylist()


def events(result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type == kind]


def test_source_down_mid_partition_is_retried_with_backoff_and_the_retry_is_idempotent(make_home, instance, api):
    """Page 2 fails on the first attempt, after page 1's rows were staged: the step fails, waits, starts over, and
    bronze holds every record exactly once."""
    served = paged(pages=3, per_page=5)
    failures = iter([True])

    def route(path: str, q: dict[str, str]) -> Reply:
        if q["page"] == "2" and next(failures, False):
            return Reply(503, b"busy")
        return served(path, q)

    api.route = route
    settings = make_home(api_config(api.url, retries=3, delay=0.4))
    result = run(settings, instance, D, select="bronze_sft")
    assert result.success
    (retry,) = events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    # the policy's wait: 0.4 s, plus or minus up to the whole delay (Dagster's PLUS_MINUS jitter), so no lower bound
    assert 0.0 <= retry.event_specific_data.seconds_to_wait <= 0.8
    ids = bronze_ids(settings)
    assert len(ids) == 15 and len(set(ids)) == 15
    pages = [q["page"] for _, q, _ in api.seen]
    assert pages == ["1", "2", "1", "2", "3", "4"]


def test_source_down_for_good_fails_after_the_retries_and_keeps_the_published_partition(make_home, instance, api):
    api.route = paged(pages=1, per_page=3)
    settings = make_home(api_config(api.url, retries=2, delay=0.05))
    assert run(settings, instance, D, select="bronze_sft").success
    live = settings.home / "lake" / "bronze" / "bronze_sft" / f"date={D}" / "part-0.parquet"
    before = live.read_bytes()

    api.route = lambda path, q: Reply(503, b"down")
    api.seen.clear()
    result = run(settings, instance, D, select="bronze_sft")
    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.user_failure_data.description
    assert "HTTP 503 after 1 attempts" in message and "nothing was published (attempt 3 of 3)" in message
    assert len(api.seen) == 3  # the first try and two retries
    assert live.read_bytes() == before


def test_a_second_writer_of_a_partition_stops_and_names_the_holder(make_home, instance):
    settings = make_home(
        {
            "start_date": "2026-11-01",
            "sources": [{"name": "chat", "regime": "sft", "kind": "files"}],
            "automation": {"source_retries": 3, "source_retry_delay_seconds": 0, "partition_wait_seconds": 0.5},
        }
    )
    for date in (D, "2026-11-03"):
        (landing(settings, "chat", date) / "x.jsonl").write_text(json.dumps(chat(1)) + "\n")
    with partition_locks(settings.home / "locks", "bronze_sft", [D], "run-that-writes-it"):
        loser = run(settings, instance, D, select="bronze_sft")
        other_day = run(settings, instance, "2026-11-03", select="bronze_sft")
    assert not loser.success
    (failure,) = loser.get_step_failure_events()
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith(f"bronze_sft {D} is being written by run run-that-writes-it (pid {os.getpid()} on ")
    assert message.endswith("(waited 0.5s); this run wrote nothing for it. Re-run once that run has finished.")
    assert not events(loser, dg.DagsterEventType.STEP_UP_FOR_RETRY)  # waiting would not make it the writer
    assert not (settings.home / "lake" / "bronze" / "bronze_sft" / f"date={D}").exists()
    assert other_day.success  # another partition of the same asset is not held up
    assert run(settings, instance, D, select="bronze_sft").success  # the lock went with its holder


# A run in its own process, killed with SIGKILL mid-partition, then run again: the lake must come out exactly as a
# run that was never interrupted leaves it (the demo's, for the same day: its first day has no earlier history).

DAY = "2026-11-01"
KILLED_SELECTION = "group:bronze or group:silver"
COMPARED = [
    *(f"bronze/bronze_{r}" for r in regime_names()),
    *(f"bronze/bronze_quarantine/regime={r}" for r in regime_names()),
    "silver/dedup_signatures",
    *(f"silver/silver_{r}" for r in regime_names()),
    *(f"silver/silver_rejections/regime={r}" for r in regime_names()),
]


def _partition_file(lake: Path, table: str) -> Path:
    layer, name, *regime = table.split("/")
    folder = lake / layer / name / f"date={DAY}"
    return folder / regime[0] if regime else folder


def _demo_landing(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fresh PTDATA_HOME with the demo's landing zone, and the environment of a process that uses it."""
    home = tmp_path / "home"
    env = {**os.environ, "PTDATA_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env.pop("PTDATA_CONFIG", None)
    env.pop("PTDATA_LAKE", None)
    subprocess.run([sys.executable, "-m", "ptdata.cli", "demo", "--landing-only"], env=env, check=True)
    return home, env


def _materialize(home: Path, env: dict[str, str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ptdata.cli", "materialize", "--select", KILLED_SELECTION, "--partition", DAY]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.parametrize("kill_in", ["bronze_sft", "silver_sft"])
def test_a_run_killed_mid_partition_and_run_again_loses_and_duplicates_nothing(demo_home, tmp_path, kill_in):
    home, env = _demo_landing(tmp_path)
    lock = home / "locks" / kill_in / f"{DAY}.lock"

    killed = _materialize(home, env)
    deadline = time.monotonic() + 300
    while not lock.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert killed.poll() is None, f"the run ended before {kill_in} started:\n{killed.stdout.read().decode()}"
    os.killpg(killed.pid, signal.SIGKILL)  # the whole process group: the CLI and anything it started
    killed.wait()

    again = _materialize(home, env)
    out = again.communicate(timeout=600)[0].decode()
    assert again.returncode == 0, out

    for table in COMPARED:
        ours = sorted(_partition_file(home / "lake", table).rglob("*.parquet"))
        demo = sorted(_partition_file(demo_home / "lake", table).rglob("*.parquet"))
        assert demo and [p.name for p in ours] == [p.name for p in demo], table
        for a, b in zip(ours, demo, strict=True):
            assert a.read_bytes() == b.read_bytes(), f"{table}: {a.relative_to(home)} differs from the clean run"
    staging = home / "lake" / "_staging"
    assert not staging.exists() or not any(staging.rglob("*.parquet")), "the killed run's staged files were kept"


def test_a_run_meeting_another_runs_partition_waits_for_it_and_both_complete(demo_home, tmp_path):
    """Run A (its own process) is frozen with SIGSTOP while it writes silver_sft; run B for the same day, started
    meanwhile, waits at that asset naming A (automation.partition_wait_seconds) instead of failing; A, resumed,
    completes, then B: one writer per partition at a time, both runs succeed, and the partition is a single run's."""
    home, env = _demo_landing(tmp_path)
    lock = home / "locks" / "silver_sft" / f"{DAY}.lock"
    first = _materialize(home, env)
    deadline = time.monotonic() + 300
    while not (lock.exists() and lock.stat().st_size) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(first.pid, signal.SIGSTOP)
    try:
        holder = json.loads(lock.read_text())["run_id"]
        second = _materialize(home, env)
        deadline = time.monotonic() + 300
        log = home / "dagster"
        while second.poll() is None and time.monotonic() < deadline and not _waiting(log, holder):
            time.sleep(0.1)
        assert second.poll() is None, second.communicate()[0].decode()  # B waits, it does not fail
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    out = first.communicate(timeout=600)[0].decode()
    assert first.returncode == 0, out
    out = second.communicate(timeout=600)[0].decode()
    assert second.returncode == 0, out
    for table in ("silver/silver_sft", "silver/silver_rejections/regime=sft"):
        ours = next(_partition_file(home / "lake", table).rglob("*.parquet")).read_bytes()
        assert ours == next(_partition_file(demo_home / "lake", table).rglob("*.parquet")).read_bytes()


def _waiting(dagster_home: Path, holder: str) -> bool:
    """Whether a run's event log says it is waiting for `holder`'s lock."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for run in instance.get_runs():
            for entry in instance.all_logs(run.run_id):
                if (
                    f"being written by run {holder}" in (entry.user_message or "")
                    and "waiting up to" in entry.user_message
                ):
                    return True
    return False


def test_runs_of_different_partitions_proceed_in_parallel(tmp_path):
    home, env = _demo_landing(tmp_path)
    days = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(3)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ptdata.cli", "materialize", "--select", "group:bronze", "--partition", str(d)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for d in days
    ]
    outs = [p.communicate(timeout=600)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    for d in days:
        for r in regime_names():
            assert (home / "lake" / "bronze" / f"bronze_{r}" / f"date={d}" / "part-0.parquet").exists()
