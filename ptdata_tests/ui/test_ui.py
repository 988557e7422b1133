"""The UI end to end: dagster-webserver and dagster-daemon on loopback over the demo landing zone in a temporary
home. Headless Chromium presses an asset's Materialize button; a partition backfill goes through /graphql. Both
wait for the daemon to run the work and check the Dagster instance and the lake."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pyarrow.parquet as pq
import pytest
from playwright.sync_api import expect, sync_playwright

from ptdata.cli import dagster_yaml
from ptdata.demo.generate import DEMO_DAYS, write_demo_landing

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
# the console scripts of the interpreter running the tests, so the servers import the same ptdata and dagster
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium as root in a container: no sandbox, no GPU, and nothing fetched in the background (no internet)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DAYS = [d.isoformat() for d in DEMO_DAYS]
# every bronze asset: all eleven demo sources read, mapped and audited, without silver's and gold's minutes of work
BRONZE = ["bronze_sft", "bronze_preference", "bronze_rlvr", "bronze_text", "bronze_quarantine"]
STARTUP_TIMEOUT = 180.0
RUN_TIMEOUT = 300.0
# the backfill daemon looks for work every 30 s: one pass launches the run, a later one marks the backfill done
BACKFILL_TIMEOUT = 420.0

READY = """
{
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries { name loadStatus locationOrLoadError { __typename ... on PythonError { message stack } } }
    }
  }
}
"""
LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionKeysNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}
"""
BACKFILL_STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status error { message } }
    ... on PythonError { message }
  }
}
"""


def _tail(path: Path, lines: int = 80) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def _poll(check: Callable[[], T | None], timeout: float, interval: float = 1.0) -> T | None:
    """`check()` until it returns something other than None, or None once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer = json.load(resp)
    assert not answer.get("errors"), answer["errors"]
    return answer["data"]


def _server_logs(logs: list[Path]) -> str:
    return "\n".join(f"----- {p.name} (last lines) -----\n{_tail(p)}" for p in logs)


@dataclass
class Ui:
    url: str
    home: Path
    instance: dg.DagsterInstance
    logs: list[Path]

    def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return _gql(self.url, query, variables)

    def server_logs(self) -> str:
        return _server_logs(self.logs)

    def run_failure(self, run_id: str) -> str:
        """Why a run did not succeed: its step and run failures with their errors."""
        failures = []
        for entry in self.instance.all_logs(run_id):
            event = entry.dagster_event
            if event is not None and event.is_failure:
                error = event.event_specific_data.error
                failures.append(f"{entry.message}\n{error.to_string() if error else ''}")
        return "\n".join(failures) or f"run {run_id}: no failure event"


def _ready(url: str, procs: dict[str, subprocess.Popen[bytes]], logs: list[Path]) -> bool | None:
    """True once the code location is loaded and every daemon beats; None while starting; fails at once when a
    server exits or the code location cannot load, since waiting longer cannot help then."""
    for name, proc in procs.items():
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode} while starting\n{_server_logs(logs)}")
    try:
        data = _gql(url, READY)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    entries = data["workspaceOrError"].get("locationEntries") or []
    for entry in entries:
        if entry["locationOrLoadError"] and entry["locationOrLoadError"]["__typename"] == "PythonError":
            pytest.fail(f"code location {entry['name']} failed to load: {entry['locationOrLoadError']}")
    loaded = bool(entries) and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries)
    daemons = data["instance"]["daemonHealth"]["allDaemonStatuses"]
    healthy = bool(daemons) and all(d["healthy"] for d in daemons if d["required"])
    return True if loaded and healthy else None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the server's whole process group: its code servers and the run workers the daemon launched too."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        # children that outlive their leader, or a leader that ignored SIGTERM
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    """The webserver and the daemon over one temporary PTDATA_HOME holding the demo landing zone."""
    root = tmp_path_factory.mktemp("ui")
    home = root / "home"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    # the instance config the ptdata command writes (telemetry off, one queued run per partition at a time)
    (dagster_home / "dagster.yaml").write_text(dagster_yaml(dagster_home))
    write_demo_landing(home)
    env = {k: v for k, v in os.environ.items() if k not in ("PTDATA_CONFIG", "PTDATA_LAKE")}
    env.update(PTDATA_HOME=str(home), DAGSTER_HOME=str(dagster_home))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    workspace = ["-w", str(REPO / "workspace.yaml")]
    commands = {
        "webserver": [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), *workspace],
        "daemon": [str(BIN / "dagster-daemon"), "run", *workspace],
    }
    logs = [root / f"{name}.log" for name in commands]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    # opened, and so its SQLite storage created, before the servers start: two processes creating a fresh storage at
    # once race ("table secondary_indexes already exists"); `dagster dev` does the same
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        try:
            for (name, cmd), log_path in zip(commands.items(), logs, strict=True):
                with log_path.open("wb") as log:
                    # a session of its own, so that the finalizer can end the server with everything it started
                    procs[name] = subprocess.Popen(
                        cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
            if not _poll(lambda: _ready(url, procs, logs), STARTUP_TIMEOUT):
                pytest.fail(f"webserver and daemon not ready after {STARTUP_TIMEOUT:.0f}s\n{_server_logs(logs)}")
            yield Ui(url, home, instance, logs)
        finally:
            for proc in procs.values():
                _stop(proc)


@pytest.fixture
def chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"{CHROMIUM} is missing: install Debian's chromium (bash .ci/chromium.sh)"
    if os.environ.get("PTDATA_REQUIRE_BROWSER") == "1":
        pytest.fail(f"PTDATA_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def _wait_for_run(ui: Ui, tags: dict[str, str], known: set[str]) -> dg.DagsterRun:
    """The one run with `tags` that is not in `known`, once it has finished."""

    def new_run() -> str | None:
        runs = [r.run_id for r in ui.instance.get_runs(filters=dg.RunsFilter(tags=tags)) if r.run_id not in known]
        assert len(runs) <= 1, f"one click launched several runs: {runs}"
        return runs[0] if runs else None

    run_id = _poll(new_run, 60)
    assert run_id, f"no run tagged {tags} was launched\n{ui.server_logs()}"
    run = _poll(lambda: r if (r := ui.instance.get_run_by_id(run_id)).is_finished else None, RUN_TIMEOUT)
    assert run, f"run {run_id} not finished after {RUN_TIMEOUT:.0f}s\n{ui.server_logs()}"
    assert run.status == dg.DagsterRunStatus.SUCCESS, (
        f"run {run_id} {run.status}\n{ui.run_failure(run_id)}\n{ui.server_logs()}"
    )
    return run


def test_materialize_button_runs_one_partition(chromium: Path, ui: Ui, tmp_path: Path) -> None:
    asset, day = "bronze_sft", "2026-11-02"
    tags = {"dagster/from_ui": "true", "dagster/partition": day}
    known = {r.run_id for r in ui.instance.get_runs(filters=dg.RunsFilter(tags=tags))}
    # on a loopback origin Dagster covers every page with a community sign-up dialog until the instance is told
    # the user has seen it
    ui.gql("mutation { setNuxSeen }")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        # the UI's first queries wait on a code server; on 2 busy cores that can pass playwright's 30 s default
        page.set_default_timeout(60_000)
        try:
            page.goto(f"{ui.url}/assets/{asset}")
            # a substring: the button's accessible name starts with its icon's ("materialization"); the ellipsis
            # is how a partitioned asset's button reads, and it opens the partition dialog
            page.get_by_role("button", name="Materialize…").click()
            dialog = page.get_by_role("dialog")
            # typed before the dialog has loaded the partitions, the key can be overwritten by its initial selection
            expect(dialog.get_by_text(re.compile(r"Showing \d+ of \d+ partitions")).first).to_be_visible(timeout=60_000)
            partitions = dialog.get_by_role("textbox")
            partitions.fill(day)
            partitions.press("Enter")
            dialog.get_by_role("button", name="Launch 1 run").click()
            # expect() has its own 5 s default, not the page's
            expect(page.get_by_text("Launched run")).to_be_visible(timeout=60_000)
            run = _wait_for_run(ui, tags, known)
        except Exception:
            shot = tmp_path / "ui_failure.png"
            page.screenshot(path=shot, full_page=True)
            print(f"screenshot of the page: {shot}", file=sys.stderr)
            raise
        finally:
            browser.close()

    assert run.asset_selection == {dg.AssetKey(asset)}
    records = ui.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[day]), limit=20
    ).records
    ours = [r for r in records if r.run_id == run.run_id]
    assert len(ours) == 1, f"run {run.run_id} recorded {len(ours)} materializations of {asset} {day}"
    assert day in ui.instance.get_materialized_partitions(dg.AssetKey(asset))
    materialization = ours[0].asset_materialization
    part = ui.home / "lake" / "bronze" / asset / f"date={day}" / "part-0.parquet"
    assert part.is_file()
    # the README's promise: a partition's data version is its file's SHA-256, so the instance names these bytes
    assert materialization.tags["dagster/data_version"] == hashlib.sha256(part.read_bytes()).hexdigest()
    assert pq.read_metadata(part).num_rows == materialization.metadata["dagster/row_count"].value > 0


def test_partition_backfill_through_graphql(ui: Ui) -> None:
    params = {"assetSelection": [{"path": [a]} for a in BRONZE], "partitionNames": DAYS, "title": "test_ui"}
    launched = ui.gql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def finished() -> dict[str, Any] | None:
        backfill = ui.gql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        return None if backfill["status"] in ("REQUESTED", "CANCELING", "FAILING") else backfill

    backfill = _poll(finished, BACKFILL_TIMEOUT, interval=2.0)
    assert backfill, f"backfill {backfill_id} not done after {BACKFILL_TIMEOUT:.0f}s\n{ui.server_logs()}"
    runs = ui.instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    failed = [r.run_id for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
    assert backfill["status"] == "COMPLETED_SUCCESS" and runs and not failed, (
        f"backfill {backfill_id}: {backfill}, runs {[(r.run_id, r.status) for r in runs]}\n"
        + "\n".join(ui.run_failure(r) for r in failed)
        + f"\n{ui.server_logs()}"
    )

    run_ids = {r.run_id for r in runs}
    for asset in BRONZE:
        key = dg.AssetKey(asset)
        records = ui.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=DAYS), limit=100
        ).records
        assert {r.partition_key for r in records if r.run_id in run_ids} == set(DAYS), asset
        assert set(DAYS) <= ui.instance.get_materialized_partitions(key), asset
        for day in DAYS:
            files = list((ui.home / "lake" / "bronze" / asset / f"date={day}").rglob("*.parquet"))
            assert files, f"{asset} {day}: no Parquet in the lake"
            assert sum(pq.read_metadata(f).num_rows for f in files) > 0, f"{asset} {day}: empty"
