"""Builds the code location's Definitions for one ptdata home (definitions.py builds it from the environment)."""

from __future__ import annotations

import warnings

import dagster as dg

from ptdata.core import catalog
from ptdata.core.config import Settings
from ptdata.core.regimes import regime_names
from ptdata.defs.automation import daily_schedule, landing_sensor, pipeline_job, run_failure_alert
from ptdata.defs.bronze import BRONZE_CODE_VERSION, bronze_asset
from ptdata.defs.factory import daily_partitions
from ptdata.defs.gold import gold_asset, tokenizer_asset
from ptdata.defs.parts import regime_parts_asset
from ptdata.defs.release import release_asset
from ptdata.defs.resources import PtdataResource
from ptdata.defs.rl import rl_assets
from ptdata.defs.silver import dedup_signatures_asset, eval_index_asset, silver_asset
from ptdata.defs.sql_models import load_models, models_reading, sql_model_asset
from ptdata.defs.stage_runs import stage_runs_asset
from ptdata.gold.stage import GOLD_CODE_VERSION
from ptdata.silver.stage import SILVER_CODE_VERSION


def build_definitions(
    settings: Settings | None = None, loggers: dict[str, dg.LoggerDefinition] | None = None
) -> dg.Definitions:
    """Definitions for one ptdata home; tests call this with a temporary one, the CLI with its progress logger."""
    settings = settings or Settings.from_env()
    cfg = settings.load_config()
    partitions = daily_partitions(cfg.pipeline.start_date)
    models = load_models()
    with warnings.catch_warnings():
        # backfill_policy is marked beta in 1.13; single-run backfills are what `--partition-range` needs
        warnings.simplefilter("ignore", dg.BetaWarning)
        assets = [
            *(bronze_asset(r, partitions, cfg) for r in regime_names()),
            regime_parts_asset(catalog.BRONZE_QUARANTINE, partitions, BRONZE_CODE_VERSION),
            eval_index_asset(cfg),
            dedup_signatures_asset(partitions, cfg),
            *(silver_asset(r, partitions, cfg) for r in regime_names()),
            regime_parts_asset(catalog.SILVER_REJECTIONS, partitions, SILVER_CODE_VERSION),
            tokenizer_asset(cfg),
            *(gold_asset(r, partitions, cfg) for r in regime_names()),
            regime_parts_asset(catalog.GOLD_REJECTIONS, partitions, GOLD_CODE_VERSION),
            release_asset(cfg),
            *rl_assets(partitions),
            *(sql_model_asset(m, partitions) for m in models),
        ]
        # stage_runs comes after every asset but the models that read it: a run's export then holds that run's stages
        keys = [k for a in assets for k in a.keys]
        after = models_reading(models, "stage_runs")
        assets.append(stage_runs_asset(cfg, keys, [k for k in keys if k.to_user_string() not in after]))
    job = pipeline_job(partitions)
    return dg.Definitions(
        assets=assets,
        jobs=[job],
        schedules=[daily_schedule(job, cfg.pipeline.automation.daily_cron, cfg.pipeline.start_date)],
        sensors=[landing_sensor(job), run_failure_alert],
        resources={"ptdata": PtdataResource.from_settings(settings, cfg)},
        loggers=loggers or {},
    )
