"""Silver assets materialized in a temporary PTDATA_HOME."""

import gzip
import json

import duckdb
import numpy as np
import pyarrow.parquet as pq

from ptdata.silver.decontam import EvalIndex, find_contamination
from ptdata.silver.dedup import shingles
from ptdata_tests.conftest import landing, run

ITEMS = [
    {
        "task_id": "m1",
        "prompt": "A baker sells 14 loaves on Monday and twice as many on Tuesday; how many loaves did she sell over both days?",
    },
    {
        "task_id": "c1",
        "prompt": "Write a Python function that returns the longest strictly increasing subsequence of a list of integers, in order.",
    },
]


def _config(tmp_path, items=ITEMS, fields=("prompt",)):
    path = tmp_path / "evals.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(i) + "\n" for i in items).encode(), mtime=0))
    return {
        "start_date": "2026-11-01",
        "eval_sets": [{"name": "demo_eval", "path": str(path), "fields": list(fields)}],
        "decontam": {"ngram": 13},
    }


def test_eval_index_is_published_and_finds_planted_copies(make_home, instance, tmp_path):
    settings = make_home(_config(tmp_path))
    result = run(settings, instance, "2026-11-02", select="eval_index")
    assert result.success
    table = pq.read_table(f"{settings.lake}/silver/eval_index/part-0.parquet")
    index = EvalIndex.from_arrow(table)
    copy = (
        "Please help:\r\nA baker sells 14 loaves on  Monday and twice as many on Tuesday; how many loaves did she sell?"
    )
    match = find_contamination(index, copy)
    assert match is not None and (match.eval_set, match.item_id) == ("demo_eval", "m1")
    assert find_contamination(index, "A baker bakes bread every morning and sells it at the market.") is None
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"coverage": True}


def test_eval_index_refuses_an_eval_set_without_the_configured_fields(make_home, instance, tmp_path):
    settings = make_home(_config(tmp_path, fields=("question",)))
    result = run(settings, instance, "2026-11-02", select="eval_index")
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "eval set demo_eval" in message and "question" in message


def _chat(text: str, reply: str = "Sure, here it is.") -> str:
    return json.dumps({"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]}) + "\n"


LONG = (
    "Our team maintains a small inventory service written in Python that tracks spare parts across three "
    "warehouses, and every night a batch job reconciles the counts against the supplier feed before the "
    "morning shift starts picking orders for the regional stores. Last week the job started failing on "
    "Mondays only, always with a timeout while it waits for the supplier's export, and the retry logic we "
    "added makes the run finish long after the pickers have begun, so their counts are wrong all morning. "
    "How would you restructure the job so that a slow export never delays the reconciliation itself?"
)


def test_dedup_signatures_key_equivalent_records_alike_across_days(make_home, instance, tmp_path):
    settings = make_home({"start_date": "2026-11-01", "sources": [{"name": "chat", "regime": "sft", "kind": "files"}]})
    (landing(settings, "chat", "2026-11-01") / "a.jsonl").write_text(
        _chat(LONG + " Call me at 415-555-2671.") + _chat("Completely unrelated question about sourdough starters?")
    )
    near = LONG.replace("three warehouses", "four warehouses")
    (landing(settings, "chat", "2026-11-02") / "b.jsonl").write_text(
        _chat(LONG.upper().replace(" ", "  ") + "\r\nCall me at (212) 867-5309.") + _chat(near)
    )
    result = run(settings, instance, "2026-11-01", "2026-11-02", select="+dedup_signatures")
    assert result.success
    rows = duckdb.sql(
        f"select source_uri, exact_key, band_keys from read_parquet('{settings.lake}/silver/dedup_signatures/**/*.parquet',"
        f" hive_partitioning=true) s join read_parquet('{settings.lake}/bronze/bronze_sft/**/*.parquet',"
        " hive_partitioning=true) b using (record_id) order by source_uri"
    ).fetchall()
    by_uri = {uri: (key, bands) for uri, key, bands in rows}
    # case, spacing, CRLF and a redacted phone number do not make a different record
    assert by_uri["a.jsonl:1"][0] == by_uri["b.jsonl:1"][0]
    # a near duplicate (J >= 0.8 on word 5-grams) shares at least one LSH band; an unrelated record shares none
    a, b = shingles(LONG + " Call me at <PHONE>.", 5), shingles(near, 5)
    assert len(np.intersect1d(a, b)) / len(np.union1d(a, b)) >= 0.8
    assert set(by_uri["a.jsonl:1"][1]) & set(by_uri["b.jsonl:2"][1])
    assert not set(by_uri["a.jsonl:2"][1]) & set(by_uri["a.jsonl:1"][1])
    checks = {
        c.check_name: c.passed for c in result.get_asset_check_evaluations() if c.asset_key.path == ["dedup_signatures"]
    }
    assert checks == {"coverage": True}


def test_dedup_signatures_need_their_bronze_partitions(make_home, instance):
    settings = make_home({"start_date": "2026-11-01", "sources": []})
    result = run(settings, instance, "2026-11-02", select="dedup_signatures")
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "eval_index is not materialized" in message
    assert run(settings, instance, "2026-11-02", select="eval_index").success
    result = run(settings, instance, "2026-11-02", select="dedup_signatures")
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "bronze_sft 2026-11-02 is not materialized" in message


# ------------------------------------------------------------------------------------------------ silver_<regime>

WORDS = (
    "the river town kept its old stone bridge because every spring the council voted to repair rather than "
    "replace it and the engineers who inspected the arches each year wrote long reports about the mortar the "
    "drainage the weight of modern trucks and the slow movement of the foundations in the soft clay of the bank "
    "while the shopkeepers on both sides argued that a closure of even a few weeks would ruin the summer trade "
    "that paid for the rest of their year so the repairs were always done at night under lamps with one lane "
    "open and a flagman at each end waving the late buses through the narrow gap between the barriers and the "
    "scaffolding that hung from the parapet like a cage of pipes and planks and netting"
).split()


def _variant(words: list[str], positions: range) -> str:
    return " ".join(f"changed{i}" if i in positions else w for i, w in enumerate(words))


def _jaccard(a: str, b: str) -> float:
    x, y = shingles(a, 5), shingles(b, 5)
    return len(np.intersect1d(x, y)) / len(np.union1d(x, y))


def _silver_config(tmp_path, **extra):
    return {**_config(tmp_path), "sources": [{"name": "chat", "regime": "sft", "kind": "files"}], **extra}


def _rejections(settings) -> dict[str, tuple]:
    rows = duckdb.sql(
        f"select r.source_uri, r.reason, b.source_uri, r.eval_set from read_parquet("
        f"'{settings.lake}/silver/silver_rejections/**/*.parquet', hive_partitioning=true) r left join "
        f"read_parquet('{settings.lake}/bronze/bronze_sft/**/*.parquet') b on r.dup_of = b.record_id"
    ).fetchall()
    return {uri: (reason, dup_of, eval_set) for uri, reason, dup_of, eval_set in rows}


def _kept(settings) -> list[str]:
    rows = duckdb.sql(
        f"select source_uri from read_parquet('{settings.lake}/silver/silver_sft/**/*.parquet') order by source_uri"
    ).fetchall()
    return [u for (u,) in rows]


def test_silver_dedups_globally_and_a_duplicate_names_the_kept_record(make_home, instance, tmp_path):
    # partitions of two or three records: one rejected by a quality rule is a third of its day
    settings = make_home(_silver_config(tmp_path, quality={"min_pass_rate": 0.5}))
    x = " ".join(WORDS)
    y = _variant(WORDS, range(10, 130, 60))  # 2 words changed
    z = _variant(y.split(), range(40, 130, 60))  # 2 more words changed: near y, not near x
    assert _jaccard(x, y) >= 0.8 and _jaccard(y, z) >= 0.8 and _jaccard(x, z) < 0.8
    # a near duplicate of an earlier record that failed the quality rules is kept: the failed one cannot survive
    fence = "Here is the fix:\n```python\nprint('bridge')\n"
    (landing(settings, "chat", "2026-11-01") / "a.jsonl").write_text(
        _chat(x) + _chat(LONG, fence) + _chat("What is a good name for a bakery that sells only rye bread?")
    )
    (landing(settings, "chat", "2026-11-02") / "b.jsonl").write_text(
        _chat(y) + _chat(LONG, fence + "```\nThat prints the word.")
    )
    leak = "Please solve: " + ITEMS[0]["prompt"]
    (landing(settings, "chat", "2026-11-03") / "c.jsonl").write_text(
        _chat(z) + _chat(x.upper().replace(" ", "  ")) + _chat(leak)
    )
    result = run(settings, instance, "2026-11-01", "2026-11-03")
    assert result.success
    assert _rejections(settings) == {
        "a.jsonl:2": ("quality:truncated", None, None),
        "b.jsonl:1": ("near_dup", "a.jsonl:1", None),
        # z is not within the threshold of x, but its cluster (through y) holds x, the earliest: the kept record
        "c.jsonl:1": ("near_dup", "a.jsonl:1", None),
        "c.jsonl:2": ("exact_dup", "a.jsonl:1", None),
        "c.jsonl:3": ("contaminated", None, "demo_eval"),
    }
    assert _kept(settings) == ["a.jsonl:1", "a.jsonl:3", "b.jsonl:2"]
    checks = {(c.asset_key.path[0], c.check_name): c.passed for c in result.get_asset_check_evaluations()}
    assert all(passed for (asset, _), passed in checks.items() if asset == "silver_sft")
    assert len([k for k in checks if k[0] == "silver_sft"]) == 8  # six gates, complete_history and drift
    meta = {
        m.asset_key.path[0]: m.metadata
        for m in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())
    }["silver_sft"]
    assert meta["funnel_per_source"].data == {
        "chat": {"bronze": 8, "quality": 7, "decontaminated": 6, "exact_unique": 5, "silver": 3}
    }
    assert meta["decontamination_per_eval_set"].data["demo_eval"]["records_removed"] == 1


def test_silver_of_a_partition_alone_warns_and_goes_stale_until_rerun(make_home, instance, tmp_path):
    settings = make_home(_silver_config(tmp_path))
    (landing(settings, "chat", "2026-11-01") / "a.jsonl").write_text(_chat(LONG))
    (landing(settings, "chat", "2026-11-02") / "b.jsonl").write_text(_chat(LONG))
    result = run(settings, instance, "2026-11-02")
    assert result.success  # any partition can be materialized alone
    history = [c for c in result.get_asset_check_evaluations() if c.check_name == "complete_history"]
    assert [c.passed for c in history if c.asset_key.path == ["silver_sft"]] == [False]
    assert _kept(settings) == ["b.jsonl:1"]
    # once the earlier day is there, re-materializing gives what date order gives
    assert run(settings, instance, "2026-11-01").success
    assert run(settings, instance, "2026-11-02", select="silver_sft").success
    assert _kept(settings) == ["a.jsonl:1"]
    assert _rejections(settings) == {"b.jsonl:1": ("exact_dup", "a.jsonl:1", None)}


def test_a_failed_silver_gate_publishes_nothing(make_home, instance, tmp_path):
    settings = make_home(_silver_config(tmp_path, quality={"min_pass_rate": 0.9}))
    (landing(settings, "chat", "2026-11-01") / "a.jsonl").write_text(
        _chat(LONG) + _chat("Tell me a joke.", "As an AI language model, I cannot tell jokes.")
    )
    result = run(settings, instance, "2026-11-01")
    assert not result.success
    failure = [e for e in result.get_step_failure_events() if e.step_key == "silver_sft"][0]
    assert "50.0% of records pass the quality rules, below the floor 90.0%" in failure.step_failure_data.error.message
    assert not (settings.home / "lake" / "silver" / "silver_sft").exists()
    assert list((settings.home / "lake" / "_staging").glob("*silver_sft/silver/silver_sft/*/part-0.parquet"))


def test_silver_refuses_signatures_built_with_another_config(make_home, instance, tmp_path):
    settings = make_home(_silver_config(tmp_path))
    (landing(settings, "chat", "2026-11-01") / "a.jsonl").write_text(_chat(LONG))
    assert run(settings, instance, "2026-11-01").success
    config = {**_silver_config(tmp_path), "dedup": {"threshold": 0.7}}
    settings.config_path.write_text(json.dumps(config))
    result = run(settings, instance, "2026-11-01", select="silver_sft")
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "dedup_signatures of 2026-11-01 were built with another config" in message


def test_silver_prepares_each_record_once(make_home, instance, tmp_path, monkeypatch):
    """Normalize and redact run once per text of every bronze record, in dedup_signatures: silver writes the
    prepared records out, and verifying a near duplicate of an earlier day reads that day's prepared text."""
    import ptdata.silver.pipeline as pipeline

    settings = make_home(_silver_config(tmp_path, quality={"min_pass_rate": 0.5}))
    x = " ".join(WORDS)
    (landing(settings, "chat", "2026-11-01") / "a.jsonl").write_text(_chat(x) + _chat("Mail ann@gmail.com today."))
    (landing(settings, "chat", "2026-11-02") / "b.jsonl").write_text(_chat(_variant(WORDS, range(10, 130, 60))))
    calls = {"normalize": 0, "redact": 0}
    normalize, redact = pipeline.normalize_text, pipeline.redact

    def counted(name, fn):
        def call(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return call

    monkeypatch.setattr(pipeline, "normalize_text", counted("normalize", normalize))
    monkeypatch.setattr(pipeline, "redact", counted("redact", redact))
    result = run(settings, instance, "2026-11-01", "2026-11-02")
    assert result.success
    texts = duckdb.sql(
        f"select sum(len(messages)) from read_parquet('{settings.lake}/bronze/bronze_sft/**/*.parquet')"
    ).fetchone()[0]
    assert calls == {"normalize": texts, "redact": texts}  # 3 records of 2 turns: 6 texts, each once
    assert _rejections(settings)["b.jsonl:1"][:2] == ("near_dup", "a.jsonl:1")  # verified against day 1's text
    meta = {
        e.event_specific_data.materialization.asset_key.path[0]: e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert meta["dedup_signatures"]["prepared_bytes"].value > 0
