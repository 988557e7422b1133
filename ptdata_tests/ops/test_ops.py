"""What the pipeline costs: the stage_runs export against the Dagster instance, the pipeline_cost mart against
stage_runs and the lake, and `ptdata size` against the measured figures."""

import datetime as dt
import json
import re
from collections import defaultdict
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from ptdata.cli import main
from ptdata.core.config import CostConfig, Settings
from ptdata.defs.location import build_definitions
from ptdata.defs.stage_runs import read_stage_runs
from ptdata.demo.generate import DEMO_DAYS
from ptdata_tests.conftest import landing, run

PRICE = CostConfig().usd_per_core_hour  # the demo config leaves the price at its default
# the export's figure columns and the metadata keys they come from
FIGURES = {
    "seconds": "seconds",
    "cpu_seconds": "cpu_seconds",
    "records_in": "records_in",
    "rows_out": "dagster/row_count",
    "tokens": "tokens",
    "usd": "usd",
}
CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def _materializations(instance: dg.DagsterInstance) -> dict[tuple[str, str], list[tuple[str | None, dict]]]:
    """Every materialization, read run by run (not as ptdata reads them): (run, asset) -> [(partition, metadata)]."""
    out = defaultdict(list)
    for run_record in instance.get_run_records():
        run_id = run_record.dagster_run.run_id
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            m = entry.asset_materialization
            metadata = {k: v.value for k, v in m.metadata.items()}
            out[(run_id, m.asset_key.to_user_string())].append((m.partition, metadata))
    return out


def _stage_runs(home: Path) -> list[dict]:
    return pq.read_table(home / "lake" / "ops" / "stage_runs" / "part-0.parquet").to_pylist()


def test_the_export_has_one_row_per_run_and_asset_as_the_instance_records_them(demo_home):
    rows = _stage_runs(demo_home)
    with dg.DagsterInstance.from_config(str(demo_home / "dagster")) as instance:
        events = _materializations(instance)
        (demo_run,) = instance.get_run_records()
    # the export ran in the demo's one run after every other asset but pipeline_cost, which reads it
    expected = {k: v for k, v in events.items() if k[1] not in ("stage_runs", "pipeline_cost")}
    assert len(rows) == len(expected) == len({(r["run_id"], r["asset"]) for r in rows})
    assert {(r["run_id"], r["asset"]) for r in rows} == set(expected)
    for row in rows:
        evs = expected[(row["run_id"], row["asset"])]
        partitions = sorted(dt.date.fromisoformat(p) for p, _ in evs if p)
        # the demo runs its three days as one run: a partitioned asset has three events and one row
        assert partitions in ([], DEMO_DAYS)
        assert row["partitions"] == len(partitions) == (len(evs) if partitions else 0)
        assert (row["first_partition"], row["last_partition"]) == (
            (DEMO_DAYS[0], DEMO_DAYS[-1]) if partitions else (None, None)
        )
        metadata = evs[0][1]
        for column, key in FIGURES.items():
            value = metadata.get(key)
            assert row[column] == (value if isinstance(value, int | float) else None), (row["asset"], column)
        assert row["started_at"].timestamp() == pytest.approx(demo_run.start_time)
        assert row["usd_per_core_hour"] == PRICE
    measured = {r["asset"]: r for r in rows}
    for asset in ("bronze_sft", "dedup_signatures", "silver_sft", "gold_sft"):
        assert measured[asset]["cpu_seconds"] > 0 and measured[asset]["records_in"] > 0
        # the throughput figures the UI plots across runs (CPU utilisation counts the executor's workers)
        metadata = expected[(measured[asset]["run_id"], asset)][0][1]
        assert metadata["cpu_utilisation"] > 0 and metadata["mb_per_s"] > 0, asset
    assert measured["gold_sft"]["tokens"] > 0 and measured["bronze_sft"]["tokens"] is None


def test_runs_without_figures_are_kept_with_nulls(instance):
    @dg.asset(name="bronze_sft")
    def older() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"dagster/row_count": 7})

    result = dg.materialize([older], instance=instance)
    # reported without a run (the UI's "Report materialization"): each such event is a row of its own
    for day in ("2026-11-01", "2026-11-02"):
        instance.report_runless_asset_event(dg.AssetMaterialization("bronze_sft", partition=day))
    rows = read_stage_runs(instance, [dg.AssetKey("bronze_sft"), dg.AssetKey("silver_sft")])
    assert [(r.run_id, r.partitions, r.first_partition, r.rows_out, r.seconds) for r in rows] == [
        (result.run_id, 0, None, 7, None),
        (None, 1, dt.date(2026, 11, 1), None, None),
        (None, 1, dt.date(2026, 11, 2), None, None),
    ]
    assert rows[0].started_at.timestamp() == pytest.approx(instance.get_run_record_by_id(result.run_id).start_time)


def test_a_range_run_is_one_row_and_the_export_lists_earlier_exports(make_home, instance):
    settings = make_home({"start_date": "2026-11-01", "sources": [{"name": "chat", "regime": "sft", "kind": "files"}]})
    for day in ("2026-11-01", "2026-11-02", "2026-11-03"):
        (landing(settings, "chat", day) / "a.jsonl").write_text(json.dumps(CHAT) + "\n")
    single = run(settings, instance, "2026-11-01", select="bronze_sft")
    ranged = run(settings, instance, "2026-11-02", "2026-11-03", select="bronze_sft")
    first_export = run(settings, instance, "2026-11-03", select="stage_runs")
    assert single.success and ranged.success and first_export.success
    assert run(settings, instance, "2026-11-03", select="stage_runs").success
    rows = {(r["run_id"], r["asset"]): r for r in _stage_runs(settings.home)}
    assert set(rows) == {
        (single.run_id, "bronze_sft"),
        (ranged.run_id, "bronze_sft"),
        (first_export.run_id, "stage_runs"),
    }
    one, two = rows[(single.run_id, "bronze_sft")], rows[(ranged.run_id, "bronze_sft")]
    assert (one["partitions"], one["first_partition"], one["records_in"]) == (1, dt.date(2026, 11, 1), 1)
    assert (two["partitions"], two["first_partition"], two["last_partition"]) == (
        2,
        dt.date(2026, 11, 2),
        dt.date(2026, 11, 3),
    )
    assert two["records_in"] == 2 and one["started_at"] < two["started_at"]
    # the first export read three materializations: one of the first run, two of the range
    export = rows[(first_export.run_id, "stage_runs")]
    assert (export["partitions"], export["records_in"], export["rows_out"]) == (0, 3, 2)


def test_stage_runs_comes_after_every_asset_but_the_models_reading_it(tmp_path):
    from ptdata.core.config import BUNDLED_DEMO_CONFIG

    settings = Settings(home=tmp_path, config_path=BUNDLED_DEMO_CONFIG, lake=str(tmp_path / "lake"), engine="local")
    graph = build_definitions(settings).resolve_asset_graph()
    stage_runs, cost = dg.AssetKey("stage_runs"), dg.AssetKey("pipeline_cost")
    assert graph.get(stage_runs).parent_keys == graph.get_all_asset_keys() - {stage_runs, cost}
    assert graph.get(cost).parent_keys == {stage_runs} and graph.get(stage_runs).group_name == "ops"


def test_the_pipeline_cost_mart_adds_up_stage_runs_and_the_gold_tokens(demo_home):
    lake = demo_home / "lake"
    mart = duckdb.sql(f"select * from read_parquet('{lake}/marts/pipeline_cost/*.parquet')")
    cols = mart.columns
    rows = [dict(zip(cols, r, strict=True)) for r in mart.fetchall()]
    stage_runs = _stage_runs(demo_home)
    assert len(rows) == len({(r["started_at"].date(), r["asset"]) for r in stage_runs}) > 0
    by_stage = {r["asset"]: r for r in stage_runs}  # the demo has one run
    for row in rows:
        sr = by_stage[row["stage"]]
        assert row["runs"] == 1 and row["measured_runs"] == (sr["cpu_seconds"] is not None)
        assert row["cpu_seconds"] == sr["cpu_seconds"] and row["wall_seconds"] == sr["seconds"]
        if sr["records_in"] and sr["cpu_seconds"]:
            assert row["records_per_cpu_second"] == pytest.approx(sr["records_in"] / sr["cpu_seconds"])
    # the day's $ per million tokens, recomputed: CPU hours of every stage at the price, over the tokens in gold's files
    gold = f"{lake}/gold/gold_{{}}/**/*.parquet"
    tokens = duckdb.sql(
        f"select (select sum(len(input_ids)) from read_parquet('{gold.format('sft')}'))"
        f" + (select sum(len(input_ids)) from read_parquet('{gold.format('text')}'))"
        f" + (select sum(len(chosen_input_ids) + len(rejected_input_ids)) from read_parquet('{gold.format('preference')}'))"
        f" + (select sum(len(prompt_ids)) from read_parquet('{gold.format('rlvr')}'))"
    ).fetchone()[0]
    usd = sum(r["cpu_seconds"] or 0 for r in stage_runs) / 3600 * PRICE
    (per_million,) = {r["day_usd_per_million_tokens"] for r in rows}
    assert usd > 0 and per_million == pytest.approx(usd / tokens * 1e6)


def _size(capsys, *args: str) -> dict[str, list[float]]:
    """`ptdata size` run; its table as stage -> [runs, records, records/cpu-s, core-hours, cores, wall h, usd]."""
    assert main(["size", *args]) == 0
    out = capsys.readouterr().out
    table = {}
    for line in out.splitlines():
        if re.match(r"^\w+\s+\d+\s+[\d,]+\s", line):
            name, *cells = line.split()
            table[name] = [float("nan") if c == "-" else float(c.replace(",", "")) for c in cells]
    return table


@pytest.fixture
def demo_env(demo_home, monkeypatch):
    for var in ("PTDATA_CONFIG", "PTDATA_LAKE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PTDATA_HOME", str(demo_home))
    monkeypatch.setenv("DAGSTER_HOME", str(demo_home / "dagster"))
    return demo_home


def test_size_projects_linearly_from_the_measured_throughputs(demo_env, capsys):
    # targets large enough that the printed figures (3 and 4 decimals) are exact to 1e-3
    one, two = _size(capsys, "--tokens", "1e11"), _size(capsys, "--tokens", "200_000_000_000")
    assert set(one) == set(two) and {"bronze_sft", "silver_sft", "gold_sft", "total"} <= set(one)
    for stage in one:
        records, core_hours, usd = one[stage][1], one[stage][3], one[stage][6]
        assert two[stage][1] == pytest.approx(2 * records, rel=1e-6)
        assert two[stage][3] == pytest.approx(2 * core_hours, rel=2e-3)
        assert two[stage][6] == pytest.approx(2 * usd, rel=2e-3)
        assert usd == pytest.approx(core_hours * PRICE, rel=2e-3)
    assert one["total"][3] == pytest.approx(sum(v[3] for k, v in one.items() if k != "total"), rel=1e-3)
    # one stage recomputed from the instance: records it reads for 10^8 gold records, and its CPU time for them
    with dg.DagsterInstance.from_config(str(demo_env / "dagster")) as instance:
        figures = {asset: evs[0][1] for (_, asset), evs in _materializations(instance).items()}
    gold_records = sum(figures[f"gold_{r}"]["records_in"] for r in ("sft", "preference", "rlvr", "text"))
    bronze = figures["bronze_sft"]
    per_records = _size(capsys, "--records", "1e8", "--hours", "2")
    assert per_records["bronze_sft"][1] == pytest.approx(1e8 * bronze["records_in"] / gold_records, rel=1e-6)
    assert per_records["bronze_sft"][3] == pytest.approx(1e8 * bronze["cpu_seconds"] / gold_records / 3600, rel=1e-3)
    total = per_records["total"]
    assert total[4] == max(1, -(-total[3] // 2)) and total[5] <= 2  # cores enough to finish within 2 hours


def test_size_without_history_says_how_to_get_some(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    config = {"start_date": "2026-11-01", "sources": [{"name": "chat", "regime": "sft", "kind": "files"}]}
    (home / "ptdata.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.delenv("PTDATA_CONFIG", raising=False)
    monkeypatch.setenv("PTDATA_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    assert main(["size", "--records", "1000"]) == 1
    err = capsys.readouterr().err
    assert f"no materializations with timing in {home / 'dagster'}" in err and "ptdata demo" in err
    # materializations recorded without their figures (older runs) are no history either
    with dg.DagsterInstance.get() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("bronze_sft", partition="2026-11-01"))
    assert main(["size", "--tokens", "1e6"]) == 1
    assert "no materializations with timing" in capsys.readouterr().err
