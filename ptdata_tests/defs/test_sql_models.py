"""SQL models: loading, rendering, and the shipped marts on the demo lake."""

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ptdata.core.lake import Lake
from ptdata.defs.factory import daily_partitions
from ptdata.defs.sql_models import SQL_DIR, load_models, models_reading, render, sql_model_asset


def test_models_load_with_their_refs_and_partitioning(tmp_path):
    (tmp_path / "daily.sql").write_text("select * from {{ ref('silver_sft') }} where date = {{ partition_date }}")
    (tmp_path / "total.sql").write_text("select count(*) as n from {{ ref( 'daily' ) }}")
    daily, total = load_models(tmp_path)
    assert (daily.refs, daily.partitioned, total.refs, total.partitioned) == (("silver_sft",), True, ("daily",), False)
    sql = render(daily, Lake(str(tmp_path / "lake")), "2026-11-02")
    assert f"read_parquet('{tmp_path}/lake/silver/silver_sft/**/*.parquet'" in sql and "DATE '2026-11-02'" in sql
    assert f"{tmp_path}/lake/marts/daily/" in render(total, Lake(str(tmp_path / "lake")), None)
    asset = sql_model_asset(daily, daily_partitions(dt.date(2026, 11, 1)))
    assert asset.partitions_def is not None and asset.group_names_by_key[asset.key] == "marts"
    assert sql_model_asset(total, daily_partitions(dt.date(2026, 11, 1))).partitions_def is None
    before = daily.code_version
    (tmp_path / "daily.sql").write_text(daily.sql + " -- edited")
    assert load_models(tmp_path)[0].code_version != before


def test_a_ref_to_stage_runs_reads_the_ops_table_and_depends_on_it(tmp_path):
    (tmp_path / "cost.sql").write_text("select asset, sum(usd) from {{ ref('stage_runs') }} group by all")
    (tmp_path / "cost_total.sql").write_text("select sum(usd) from {{ ref('cost') }}")
    (tmp_path / "other.sql").write_text("select count(*) from {{ ref('gold_sft') }}")
    models = load_models(tmp_path)
    cost = next(m for m in models if m.name == "cost")
    assert f"read_parquet('{tmp_path}/lake/ops/stage_runs/**/*.parquet'" in render(
        cost, Lake(str(tmp_path / "lake")), None
    )
    asset = sql_model_asset(cost, daily_partitions(dt.date(2026, 11, 1)))
    assert asset.asset_deps[asset.key] == {dg.AssetKey("stage_runs")} and asset.partitions_def is None
    assert models_reading(models, "stage_runs") == {"cost", "cost_total"}


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("Bad-Name", "select 1", "lower case"),
        ("silver_sft", "select 1", "the name of a lake table"),
        ("stage_runs", "select 1", "the name of a lake table"),
        ("orphan", "select * from {{ ref('silver_typo') }}", "neither a lake table nor a model"),
    ],
)
def test_bad_models_are_refused(tmp_path, name, text, error):
    (tmp_path / f"{name}.sql").write_text(text)
    with pytest.raises(ValueError, match=error):
        load_models(tmp_path)


def test_the_shipped_models_load():
    assert {m.name for m in load_models(SQL_DIR)} >= {
        "funnel_daily",
        "source_daily_stats",
        "license_mix",
        "release_token_budget",
        "pipeline_cost",
    }


def _mart(home: Path, name: str) -> duckdb.DuckDBPyRelation:
    return duckdb.sql(f"select * from read_parquet('{home}/lake/marts/{name}/**/*.parquet', hive_partitioning=true)")


def test_the_demo_funnel_accounts_for_every_record(demo_home):
    rows = _mart(demo_home, "funnel_daily").fetchall()
    cols = _mart(demo_home, "funnel_daily").columns
    assert rows
    for row in rows:
        r = dict(zip(cols, row, strict=True))
        assert r["input_records"] == r["bronze"] + r["quarantined"]
        assert r["bronze"] == r["silver"] + r["silver_rejected"]
        assert r["silver"] == r["gold"] + r["gold_rejected"]
    total = duckdb.sql(
        f"select sum(input_records) from read_parquet('{demo_home}/lake/marts/funnel_daily/**/*.parquet')"
    )
    assert total.fetchone()[0] == 7743  # every input record of the demo
    budget = dict(
        duckdb.sql(
            f"select table_name, tokens from read_parquet('{demo_home}/lake/marts/release_token_budget/*.parquet')"
        ).fetchall()
    )
    gold_tokens = duckdb.sql(
        f"select sum(tokens) from read_parquet('{demo_home}/lake/gold/gold_sft/**/*.parquet')"
    ).fetchone()[0]
    assert budget["gold_sft"] == gold_tokens
