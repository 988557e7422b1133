"""The config is parsed once per run, and is the one the definitions' code versions came from."""

import yaml

from ptdata.defs.location import build_definitions
from ptdata.defs.runs import partition_tags
from ptdata_tests.conftest import landing

CONFIG = {"start_date": "2026-11-01", "sources": [{"name": "chat", "regime": "sft", "kind": "files"}]}


def test_a_run_refuses_a_config_edited_since_the_definitions_were_built(make_home, instance):
    settings = make_home(CONFIG)
    (landing(settings, "chat", "2026-11-01") / "a.jsonl").write_text('{"prompt": "Hi there", "response": "Hello."}\n')
    defs = build_definitions(settings)
    job = defs.resolve_implicit_global_asset_job_def()
    settings.config_path.write_text(yaml.safe_dump({**CONFIG, "bronze": {"max_quarantine_rate": 0.5}}))
    result = job.execute_in_process(
        instance=instance,
        asset_selection=[k for k in job.asset_layer.executable_asset_keys if k.path == ["bronze_sft"]],
        tags=partition_tags("2026-11-01", "2026-11-01"),
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error.message
    assert "changed since the code location was loaded" in failure
    assert (
        build_definitions(settings)
        .resolve_implicit_global_asset_job_def()
        .execute_in_process(
            instance=instance,
            asset_selection=[k for k in job.asset_layer.executable_asset_keys if k.path == ["bronze_sft"]],
            tags=partition_tags("2026-11-01", "2026-11-01"),
            raise_on_error=False,
        )
        .success
    )  # reloaded, it runs


def test_a_bad_ptdata_workers_fails_the_step_with_its_name_and_no_retry(make_home, instance, monkeypatch):
    settings = make_home(CONFIG)
    (landing(settings, "chat", "2026-11-01") / "a.jsonl").write_text('{"prompt": "Hi there", "response": "Hello."}\n')
    job = build_definitions(settings).resolve_implicit_global_asset_job_def()
    monkeypatch.setenv("PTDATA_WORKERS", "none")
    result = job.execute_in_process(
        instance=instance,
        asset_selection=[k for k in job.asset_layer.executable_asset_keys if k.path == ["bronze_sft"]],
        tags=partition_tags("2026-11-01", "2026-11-01"),
        raise_on_error=False,
    )
    assert not result.success
    failures = result.get_step_failure_events()
    assert len(failures) == 1 and "PTDATA_WORKERS: a positive number of processes" in (
        failures[0].event_specific_data.error.message
    )
