"""Drift checks against the trailing days, freshness policies, and a week-long range in one run."""

import datetime as dt
import json
import random

import dagster as dg

from ptdata.core.config import MonitoringConfig
from ptdata.core.drift import drift
from ptdata_tests.conftest import landing, run

CFG = MonitoringConfig()
DAY = dt.date(2026, 11, 8)
WORDS = (
    "river stone market window garden letter engine silver orange pencil forest bridge candle harbor planet "
    "lantern meadow violin copper tunnel island ladder blanket compass feather thunder marble pepper castle"
).split()


def week(**stats: float) -> dict[dt.date, dict]:
    """Seven earlier days, each with the given statistics plus a small wobble."""
    return {
        DAY - dt.timedelta(days=k): {name: value * (1 + 0.02 * ((-1) ** k)) for name, value in stats.items()}
        for k in range(1, 8)
    }


def test_a_drop_in_volume_drifts_and_an_ordinary_day_does_not():
    history = week(volume=1000, mean_chars=400)
    assert drift("t", DAY, {"volume": 1010, "mean_chars": 395}, history, CFG).passed
    out = drift("t", DAY, {"volume": 400, "mean_chars": 395}, history, CFG)
    assert not out.passed
    assert out.metadata["drifted"] == ["volume 400 vs a 7-day median of 980"]
    assert out.description == "t 2026-11-08: volume 400 vs a 7-day median of 980"


def test_rates_near_zero_need_a_real_change():
    history = week(quarantine_rate=0.0, contaminated=0)
    assert drift("t", DAY, {"quarantine_rate": 0.01, "contaminated": 2}, history, CFG).passed
    out = drift("t", DAY, {"quarantine_rate": 0.2, "contaminated": 9}, history, CFG)
    assert [d.split()[0] for d in out.metadata["drifted"]] == ["quarantine_rate", "contaminated"]


def test_one_bad_day_in_the_window_does_not_hide_the_next():
    history = week(volume=1000)
    history[DAY - dt.timedelta(days=3)] = {"volume": 20}  # an outage three days ago
    assert not drift("t", DAY, {"volume": 300}, history, CFG).passed


def test_language_mix_shift():
    history = {DAY - dt.timedelta(days=k): {"lang_mix": {"en": 90, "de": 10}} for k in range(1, 8)}
    assert drift("t", DAY, {"lang_mix": {"en": 85, "de": 15}}, history, CFG).passed
    out = drift("t", DAY, {"lang_mix": {"en": 40, "zh": 60}}, history, CFG)
    assert not out.passed and "language mix moved by 0.60" in out.description


def test_too_little_history_gives_no_verdict():
    history = dict(list(week(volume=1000).items())[:2])
    out = drift("t", DAY, {"volume": 1}, history, CFG)
    assert out.passed and out.metadata["verdict"].startswith("no verdict: 2 of the 3")


def test_days_outside_the_window_are_not_compared():
    old = {DAY - dt.timedelta(days=k): {"volume": 1000} for k in range(8, 15)}
    assert drift("t", DAY, {"volume": 1}, old, CFG).passed


def chat_line(rng: random.Random) -> str:
    def sentence(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."

    return json.dumps(
        {
            "messages": [
                {"role": "user", "content": f"Tell me a story about {sentence(12)}"},
                {"role": "assistant", "content": " ".join(sentence(14) for _ in range(4))},
            ]
        }
    )


def test_a_week_runs_as_one_range_and_the_day_that_shrank_warns(make_home, instance):
    """Eight days in one run through bronze and silver: each day's drift check compares it with the days before
    it, the run's own included; day 8 lands a fifth of the usual volume and its bronze drift check warns."""
    settings = make_home({"start_date": "2026-11-01", "sources": [{"name": "chat", "regime": "sft", "kind": "files"}]})
    rng = random.Random(7)
    days = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(8)]
    for d in days:
        n = 12 if d == days[-1] else 60
        lines = [chat_line(rng) for _ in range(n)]
        (landing(settings, "chat", d.isoformat()) / "chats.jsonl").write_text("\n".join(lines) + "\n")

    result = run(
        settings,
        instance,
        str(days[0]),
        str(days[-1]),
        select="key:bronze_sft or key:silver_sft or key:dedup_signatures or key:eval_index or group:bronze",
    )
    assert result.success
    materialized = {
        m.partition for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey("silver_sft")
    }
    assert materialized == {str(d) for d in days}  # one run, every day of the range
    checks = {
        (
            e.asset_check_evaluation_data.asset_check_key.asset_key.to_user_string(),
            e.asset_check_evaluation_data.asset_check_key.name,
        ): e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }
    bronze_drift = checks[("bronze_sft", "drift")]
    assert not bronze_drift.passed and bronze_drift.severity == dg.AssetCheckSeverity.WARN
    assert bronze_drift.metadata["failed_partitions"].data == [str(days[-1])]
    per_day = bronze_drift.metadata["partitions"].data
    assert per_day[str(days[1])]["verdict"].startswith("no verdict: 1 of the 3")
    assert per_day[str(days[-1])]["drifted"] == ["volume 12 vs a 7-day median of 60"]
    silver_drift = checks[("silver_sft", "drift")]
    assert silver_drift.metadata["partitions"].data[str(days[-1])]["today"]["lang_mix"] == {"en": 12}
    # the statistics stay in the lake for the next day's check, even when the instance is new
    stats = settings.home / "lake" / "_stats" / "bronze_sft" / f"date={days[-1]}.json"
    assert json.loads(stats.read_text())["volume"] == 12


def test_bronze_assets_carry_freshness_policies():
    from ptdata.defs.location import build_definitions

    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        policy = graph.get(key).freshness_policy
        if key.to_user_string().startswith("bronze_") and key.to_user_string() != "bronze_quarantine":
            assert policy is not None
            assert policy.fail_window.to_timedelta() == dt.timedelta(hours=CFG.freshness_fail_hours)
            assert policy.warn_window.to_timedelta() == dt.timedelta(hours=CFG.freshness_warn_hours)
