"""Automation: the daily schedule, the landing-zone sensor and the run-failure alert.

The schedule and the landing sensor start STOPPED: a first `dagster dev` must not start ingesting on its own.
Switch them on in the UI (Automation) or with `dagster schedule start daily_pipeline_schedule` and
`dagster sensor start landing_sensor`, with `dagster-daemon run` (or `dagster dev`, which starts it) running.
The failure alert starts RUNNING: it only acts when a run fails, and only posts where PTDATA_ALERT_WEBHOOK says.
"""

import datetime as dt
import hashlib
import json
import os
import time
from pathlib import Path

import dagster as dg
import requests
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from ptdata.defs.resources import PtdataResource

PIPELINE_JOB = "daily_pipeline"
ALERT_WEBHOOK_ENV = "PTDATA_ALERT_WEBHOOK"


def pipeline_job(partitions: dg.PartitionsDefinition) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        PIPELINE_JOB,
        selection=dg.AssetSelection.all(),
        partitions_def=partitions,
        description="One day, bronze to gold, and the release.",
    )


def daily_schedule(job: UnresolvedAssetJobDefinition, cron: str, start: dt.date) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="daily_pipeline_schedule",
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Materializes the previous day, bronze to gold.",
    )
    def _daily(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        now = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        day = now.date() - dt.timedelta(days=1)
        if day < start:
            return dg.SkipReason(f"{day} is before start_date {start}")
        # the run key makes a second tick for the same day (a daemon restart) start no second run
        return dg.RunRequest(
            run_key=day.isoformat(), partition_key=day.isoformat(), tags={"ptdata/trigger": "schedule"}
        )

    return _daily


def landing_fingerprints(
    landing: Path, sources: list[str], first: dt.date, last: dt.date
) -> dict[str, tuple[str, float]]:
    """Per date folder under landing/<source>/: a fingerprint of its files (paths, sizes, mtimes) and the newest
    file's mtime. Only dates that are partitions (first..last) count; hidden files are skipped, as bronze does."""
    files: dict[str, list[tuple[str, int, int]]] = {}
    for source in sources:
        for folder in sorted((landing / source).glob("*")) if (landing / source).is_dir() else []:
            try:
                day = dt.date.fromisoformat(folder.name)
            except ValueError:
                continue
            if not (first <= day <= last) or not folder.is_dir():
                continue
            for path in folder.rglob("*"):
                if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts):
                    st = path.stat()
                    files.setdefault(day.isoformat(), []).append(
                        (f"{source}/{path.relative_to(folder)}", st.st_size, st.st_mtime_ns)
                    )
    out = {}
    for day, entries in files.items():
        entries.sort()
        digest = hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]
        out[day] = (digest, max(m for _, _, m in entries) / 1e9)
    return out


def landing_sensor(job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Starts a run for a date when files land under landing/<source>/<date>/ (or new ones join them).",
    )
    def _landing(context: dg.SensorEvaluationContext, ptdata: PtdataResource):  # noqa: ANN202 - run requests
        cfg = ptdata.config().pipeline
        sources = [s.name for s in cfg.sources if s.kind == "files"]
        today = dt.datetime.now(dt.UTC).date()
        state = landing_fingerprints(ptdata.landing, sources, cfg.start_date, today + dt.timedelta(days=1))
        seen = json.loads(context.cursor) if context.cursor else {}
        settle = cfg.automation.landing_settle_seconds
        waiting = []
        for day, (digest, newest) in sorted(state.items()):
            if seen.get(day) == digest:
                continue
            if time.time() - newest < settle:
                waiting.append(day)  # files may still be arriving; look again next tick
                continue
            seen[day] = digest
            # the run key names the files seen: the same files never start a second run, new ones start one
            yield dg.RunRequest(run_key=f"{day}:{digest}", partition_key=day, tags={"ptdata/trigger": "landing"})
        context.update_cursor(json.dumps(seen, sort_keys=True))
        if waiting:
            context.log.info(f"waiting for files to settle ({settle}s) in {', '.join(waiting)}")

    return _landing


def failure_payload(context: dg.RunFailureSensorContext) -> dict:
    run = context.dagster_run
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition"),
        "partition_range": [
            run.tags.get("dagster/asset_partition_range_start"),
            run.tags.get("dagster/asset_partition_range_end"),
        ],
        "error": context.failure_event.message,
        "steps_failed": [e.step_key for e in context.get_step_failure_events()],
    }


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Logs every failed run and posts it as JSON to PTDATA_ALERT_WEBHOOK when that is set.",
)
def run_failure_alert(context: dg.RunFailureSensorContext) -> None:
    payload = failure_payload(context)
    context.log.error(f"ptdata run {payload['run_id']} ({payload['job']}) failed: {payload['error']}")
    url = os.environ.get(ALERT_WEBHOOK_ENV)
    if not url:
        return
    try:
        requests.post(url, json=payload, timeout=10).raise_for_status()
    except requests.RequestException as e:
        # an alert that cannot be delivered must not hide the failure it reports: log both
        context.log.error(f"the alert webhook failed: {e}")
