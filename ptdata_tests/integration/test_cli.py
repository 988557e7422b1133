"""The commands a user types: `ptdata ...` in-process, and Dagster's own CLI in a subprocess."""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from ptdata.cli import main
from ptdata_tests.conftest import landing

CONFIG = {"start_date": "2026-11-01", "sources": [{"name": "chat", "regime": "sft", "kind": "files"}]}
CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def _home(tmp_path, monkeypatch, config=CONFIG):
    home = tmp_path / "home"
    home.mkdir()
    (home / "ptdata.yaml").write_text(yaml.safe_dump(config))
    for var in ("PTDATA_CONFIG", "PTDATA_LAKE", "DAGSTER_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PTDATA_HOME", str(home))
    return home


def test_help_lists_every_command(capsys):
    try:
        main(["--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("demo", "materialize", "status", "size", "validate-config"))


def test_validate_config_prints_sources_or_errors(tmp_path, monkeypatch, capsys):
    home = _home(tmp_path, monkeypatch)
    assert main(["validate-config"]) == 0
    assert "chat" in capsys.readouterr().out
    bad = home / "bad.yaml"
    bad.write_text(
        yaml.safe_dump({"start_date": "2026-11-01", "sources": [{"name": "x", "regime": "rl", "kind": "files"}]})
    )
    assert main(["validate-config", str(bad)]) == 2
    assert "sources[0].regime" in capsys.readouterr().err


def test_materialize_records_runs_in_dagster_home(tmp_path, monkeypatch, capsys):
    import dagster as dg

    home = _home(tmp_path, monkeypatch)
    from ptdata.core.config import Settings

    settings = Settings.from_env()
    for day in ("2026-11-01", "2026-11-02"):
        (landing(settings, "chat", day) / "a.jsonl").write_text(json.dumps(CHAT) + "\n")
    assert main(["materialize", "--from", "2026-11-01", "--to", "2026-11-02"]) == 0
    out = capsys.readouterr().out
    assert "bronze_sft done" in out and re.search(r"\[(\d+)/\1\] \w+ done", out)  # the last step of all
    assert (home / "lake" / "bronze" / "bronze_sft" / "date=2026-11-02" / "part-0.parquet").exists()
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        assert len(instance.get_run_records()) == 1
    assert main(["materialize", "--select", "bronze_quarantine", "--partition", "2026-11-03"]) == 1
    assert "no part for regime" in capsys.readouterr().err
    assert main(["materialize", "--partition", "2026-13-01"]) == 2
    capsys.readouterr()
    # a selection Dagster cannot parse is one line naming how to write one, not a traceback
    assert main(["materialize", "--select", "bronze_sft,silver_sft", "--partition", "2026-11-01"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ptdata: the selection 'bronze_sft,silver_sft' is not one Dagster can read")
    assert "key:bronze_sft or group:silver" in err and "Traceback" not in err
    # unpartitioned assets alone need no partition; a selection with a daily one does
    assert main(["materialize", "--select", "key:stage_runs or key:pipeline_cost"]) == 0
    with pytest.raises(SystemExit, match=r"give --partition D.*daily partitioned: bronze_sft"):
        main(["materialize", "--select", "key:bronze_sft or key:stage_runs"])
    # status reads the same instance: two partitions materialized, the failed one counted as failed
    assert main(["status"]) == 0
    lines = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["bronze_sft"][:2] == ["2", "0"] and lines["bronze_quarantine"][:2] == ["2", "1"]
    assert lines["tokenizer"][0] == "materialized"


def test_dagster_cli_materialize_exit_codes(tmp_path):
    home = tmp_path / "home"
    (home / "landing" / "chat" / "2026-11-02").mkdir(parents=True)
    (home / "landing" / "chat" / "2026-11-02" / "a.jsonl").write_text(json.dumps(CHAT) + "\n")
    (home / "ptdata.yaml").write_text(yaml.safe_dump(CONFIG))
    (home / "dagster").mkdir()
    env = {**os.environ, "PTDATA_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env.pop("PTDATA_CONFIG", None)
    dagster = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "ptdata.definitions"]
    ok = subprocess.run(
        [*dagster, "--select", "*", "--partition", "2026-11-02"], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    failed = subprocess.run(
        [*dagster, "--select", "bronze_quarantine", "--partition", "2026-11-03"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert failed.returncode != 0 and "no part for regime" in failed.stderr


def test_every_asset_runs_a_partition_range_in_one_run(tmp_path):
    """`dagster asset materialize --partition-range` refuses a selection with an asset lacking the single-run
    backfill policy (CI caught the release asset once); every asset, partitioned or not, must have it."""
    from ptdata.core.config import BUNDLED_DEMO_CONFIG, Settings
    from ptdata.defs.location import build_definitions

    settings = Settings(home=tmp_path, config_path=BUNDLED_DEMO_CONFIG, lake=str(tmp_path / "lake"), engine="local")
    graph = build_definitions(settings).resolve_asset_graph()
    lacking = [
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).backfill_policy is None or graph.get(key).backfill_policy.max_partitions_per_run is not None
    ]
    assert not lacking


def test_a_reader_that_stops_early_is_not_an_error(demo_home):
    """`ptdata status | head -1`: the pipe closes before ptdata has written everything, which is not a failure."""
    env = {**os.environ, "PTDATA_HOME": str(demo_home), "DAGSTER_HOME": str(demo_home / "dagster")}
    env.pop("PTDATA_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ptdata.cli", "status"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait() == 0 and "Traceback" not in err, err
