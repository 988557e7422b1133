"""The daily schedule, the landing sensor and the failure alert, evaluated against a real Dagster instance, and
the runs they request launched in it."""

import datetime as dt
import json
from http.server import BaseHTTPRequestHandler

import dagster as dg

from ptdata.defs.automation import ALERT_WEBHOOK_ENV, PIPELINE_JOB, run_failure_alert
from ptdata.defs.location import build_definitions
from ptdata.defs.resources import PtdataResource
from ptdata_tests.conftest import landing, loopback
from ptdata_tests.integration.test_gold_assets import _config, write_landing


def _defs(settings):
    return build_definitions(settings)


def _launch(defs, instance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(PIPELINE_JOB)
    return job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags)


def test_the_daily_schedule_runs_yesterday_bronze_to_gold(make_home, instance):
    settings = make_home(_config())
    write_landing(settings)
    defs = _defs(settings)
    schedule = defs.resolve_schedule_def("daily_pipeline_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    tick = dg.build_schedule_context(
        instance=instance,
        repository_def=defs.get_repository_def(),
        scheduled_execution_time=dt.datetime(2026, 11, 2, 2, tzinfo=dt.UTC),
    )
    [request] = schedule.evaluate_tick(tick).run_requests
    assert request.partition_key == "2026-11-01" and request.run_key == "2026-11-01"
    result = _launch(defs, instance, request)
    assert result.success
    materialized = {e.asset_key.path[0] for e in result.get_asset_materialization_events()}
    assert {"bronze_sft", "silver_sft", "gold_sft", "release"} <= materialized
    before = dg.build_schedule_context(
        instance=instance,
        repository_def=defs.get_repository_def(),
        scheduled_execution_time=dt.datetime(2026, 11, 1, 2, tzinfo=dt.UTC),
    )
    assert schedule.evaluate_tick(before).skip_message == "2026-10-31 is before start_date 2026-11-01"


def test_the_landing_sensor_starts_one_run_per_new_set_of_files(make_home, instance):
    settings = make_home(_config(automation={"landing_settle_seconds": 0}))
    write_landing(settings)  # 2026-11-01 for four sources
    (landing(settings, "chat", "2026-11-02") / "late.jsonl").write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "Hello there, how are you today?"},
                    {"role": "assistant", "content": "Fine, thank you."},
                ]
            }
        )
        + "\n"
    )
    (landing(settings, "chat", "2031-01-01")).mkdir(parents=True, exist_ok=True)  # not a partition yet: ignored
    (landing(settings, "chat", "2031-01-01") / "x.jsonl").write_text("{}\n")
    defs = _defs(settings)
    sensor = defs.resolve_sensor_def("landing_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    resources = {"ptdata": PtdataResource.from_settings(settings)}
    first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=resources, definitions=defs))
    assert [r.partition_key for r in first.run_requests] == ["2026-11-01", "2026-11-02"]
    # the same files again: nothing
    again = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources, definitions=defs)
    )
    assert again.run_requests == []
    # a new file for one date: one run for that date, with a new run key
    (landing(settings, "chat", "2026-11-02") / "later.jsonl").write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "And tomorrow, any plans at all?"},
                    {"role": "assistant", "content": "Walking by the river."},
                ]
            }
        )
        + "\n"
    )
    third = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=again.cursor, resources=resources, definitions=defs)
    )
    assert [r.partition_key for r in third.run_requests] == ["2026-11-02"]
    assert third.run_requests[0].run_key != first.run_requests[1].run_key
    assert _launch(defs, instance, first.run_requests[0]).success


def test_files_still_arriving_wait_for_the_next_tick(make_home, instance):
    settings = make_home(_config(automation={"landing_settle_seconds": 3600}))
    write_landing(settings)
    defs = _defs(settings)
    sensor = defs.resolve_sensor_def("landing_sensor")
    resources = {"ptdata": PtdataResource.from_settings(settings)}
    context = dg.build_sensor_context(instance=instance, resources=resources, definitions=defs)
    result = sensor.evaluate_tick(context)
    assert result.run_requests == [] and json.loads(result.cursor) == {}


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.state["posts"].append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_failed_run_is_logged_and_posted_to_the_webhook(make_home, instance, monkeypatch):
    settings = make_home(_config(packing={"seq_len": 256, "min_efficiency": 1.0}))
    write_landing(settings)
    defs = _defs(settings)
    result = defs.resolve_job_def(PIPELINE_JOB).execute_in_process(
        instance=instance, partition_key="2026-11-01", raise_on_error=False
    )
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    assert run_failure_alert.default_status == dg.DefaultSensorStatus.RUNNING
    with loopback(_Hook, lambda url: {"url": url, "posts": []}) as hook:
        monkeypatch.setenv(ALERT_WEBHOOK_ENV, f"{hook['url']}/alerts")
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert", dagster_instance=instance, dagster_run=run, dagster_event=failure
        ).for_run_failure()
        run_failure_alert(context)
    [posted] = hook["posts"]
    assert posted["run_id"] == run.run_id and posted["job"] == PIPELINE_JOB and posted["partition"] == "2026-11-01"
    assert "gold_sft" in posted["steps_failed"]


def test_an_unreachable_webhook_does_not_hide_the_failure(make_home, instance, monkeypatch):
    settings = make_home(_config(packing={"seq_len": 256, "min_efficiency": 1.0}))
    write_landing(settings)
    result = (
        _defs(settings)
        .resolve_job_def(PIPELINE_JOB)
        .execute_in_process(instance=instance, partition_key="2026-11-01", raise_on_error=False)
    )
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    monkeypatch.setenv(ALERT_WEBHOOK_ENV, "http://127.0.0.1:9/unreachable")
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
        dagster_event=failure,
    ).for_run_failure()
    run_failure_alert(context)  # logs the webhook's error; raises nothing
