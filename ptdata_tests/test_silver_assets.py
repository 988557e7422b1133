"""Silver assets materialized in a temporary PTDATA_HOME."""

import gzip
import json

import numpy as np
import pyarrow.parquet as pq

from ptdata.transforms.decontam import EvalIndex, find_contamination
from ptdata.transforms.dedup import shingles
from ptdata_tests.conftest import run

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
    import duckdb

    from ptdata_tests.conftest import landing

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
