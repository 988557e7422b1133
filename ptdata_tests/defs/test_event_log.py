"""The instance the CLI writes keeps Dagster's SQLite event log, with its engines kept: runs record the same events
in the same files, a bounded number of engines stay open, and wiping leaves nothing connected."""

from __future__ import annotations

import shutil
from dataclasses import replace

import dagster as dg

from ptdata.cli import _prepare_dagster_home, dagster_yaml
from ptdata.core.config import Settings
from ptdata.defs.event_log import KEPT_ENGINES, PooledSqliteEventLogStorage


@dg.asset
def numbers() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"n": 3})


@dg.asset_check(asset=numbers)
def numbers_positive() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def _instance(tmp_path, monkeypatch) -> dg.DagsterInstance:
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(dagster_yaml(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return dg.DagsterInstance.get()


def test_runs_are_recorded_in_dagsters_files_through_kept_engines(tmp_path, monkeypatch):
    with _instance(tmp_path, monkeypatch) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        runs = [dg.materialize([numbers, numbers_positive], instance=instance).run_id for _ in range(KEPT_ENGINES + 2)]
        assert len(storage._engines) <= KEPT_ENGINES
        for run_id in runs:
            assert (tmp_path / "dagster" / "history" / "runs" / f"{run_id}.db").exists()
            kinds = {e.dagster_event_type for e in instance.all_logs(run_id) if e.is_dagster_event}
            assert {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION} <= kinds
        latest = instance.get_latest_materialization_event(dg.AssetKey("numbers"))
        assert latest.run_id == runs[-1]
        assert latest.asset_materialization.metadata["n"].value == 3
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("numbers"), "numbers_positive")]
        )
        assert len(check) == 1

        storage.wipe()  # unlinks every database, the index too, which it then opens again to empty it
        assert set(storage._engines) <= {"index"}
        assert instance.get_latest_materialization_event(dg.AssetKey("numbers")) is None
        dg.materialize([numbers], instance=instance)
        assert instance.get_latest_materialization_event(dg.AssetKey("numbers")) is not None
    assert not storage._engines


def test_a_second_process_sees_the_runs(tmp_path, monkeypatch):
    """The UI reads the event log from its own process while a run writes it: a kept connection must not hide or
    hold back what the other wrote."""
    with _instance(tmp_path, monkeypatch) as writer, dg.DagsterInstance.get() as reader:
        assert reader.get_latest_materialization_event(dg.AssetKey("numbers")) is None
        run_id = dg.materialize([numbers], instance=writer).run_id
        assert reader.get_latest_materialization_event(dg.AssetKey("numbers")).run_id == run_id
        run_id = dg.materialize([numbers], instance=reader).run_id
        assert writer.get_latest_materialization_event(dg.AssetKey("numbers")).run_id == run_id


def test_the_cli_keeps_its_instance_file_current_and_leaves_a_users_alone(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    first = Settings(home=tmp_path / "a", config_path=tmp_path / "a.yaml", lake=str(tmp_path / "lake"), engine="local")
    home = _prepare_dagster_home(first)
    assert (home / "dagster.yaml").read_text() == dagster_yaml(home)
    # a copied home must not go on writing into the first one's event log
    copy = tmp_path / "b"
    shutil.copytree(tmp_path / "a", copy)
    monkeypatch.delenv("DAGSTER_HOME")  # the CLI sets it for the run; a new command starts without
    moved = _prepare_dagster_home(replace(first, home=copy))
    assert moved != home
    assert str(moved / "history" / "runs") in (moved / "dagster.yaml").read_text()
    # without the mark, the file is the user's
    (moved / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.delenv("DAGSTER_HOME")
    _prepare_dagster_home(replace(first, home=copy))
    assert (moved / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
