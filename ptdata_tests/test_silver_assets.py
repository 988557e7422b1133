"""Silver assets materialized in a temporary PTDATA_HOME."""

import gzip
import json

import pyarrow.parquet as pq

from ptdata.transforms.decontam import EvalIndex, find_contamination
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
