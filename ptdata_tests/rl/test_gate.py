"""The verifier gate: references score 1, canaries 0, else it fails; in a pool and on a materialized partition."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ptdata.rl.gate import verifier_gate
from ptdata.rl.verifiers.pool import VerifierPool
from ptdata_tests.conftest import landing, run
from ptdata_tests.rl import planted  # noqa: F401 - registers the vacuous verifier in this process too

GOOD_CODE = {"entry_point": "double", "tests": ["assert double(2) == 4", "assert double(-3) == -6"]}


def _row(i: int, verifier: str, answer: str, args: dict | None = None, source: str = "s") -> dict:
    return {
        "record_id": f"r{i}",
        "source": source,
        "answer": answer,
        "verifier": verifier,
        "verifier_args": json.dumps(args or {}),
    }


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(workers=2, time_limit_s=10.0, preload=("ptdata_tests.rl.planted",)) as p:
        yield p


def test_the_gate_passes_records_whose_references_verify_and_reports_rates(pool):
    rows = [
        _row(0, "math", "72", source="gsm8k"),
        _row(1, "math", "\\boxed{\\frac{1}{2}}", source="gsm8k"),
        _row(2, "code_tests", "def double(x):\n    return 2 * x", GOOD_CODE, source="code"),
        _row(3, "multiple_choice", "B", {"choices": ["no", "yes"]}, source="mc"),
        _row(4, "regex", "2026-12-04", {"pattern": r"\d{4}-\d{2}-\d{2}"}, source="dates"),
    ]
    out = verifier_gate(rows, pool, "gold_rlvr 2026-11-01")
    assert out.passed, out.description
    assert out.metadata["records"] == 5
    assert out.metadata["by_verifier"]["math"]["gsm8k"] == {"records": 2, "reference_failed": 0, "canary_rewarded": 0}


def test_a_vacuous_verifier_fails_the_gate(pool):
    out = verifier_gate([_row(0, "vacuous", "42"), _row(1, "math", "42")], pool, "gold_rlvr 2026-11-01")
    assert not out.passed
    assert out.metadata["canary_rewarded"] == 2  # the wrong answer and the empty one
    assert out.metadata["reference_failed"] == 0
    assert "canary answers are rewarded" in out.description and "r0 (vacuous)" in out.description


def test_a_wrong_or_unusable_reference_fails_the_gate(pool):
    rows = [
        _row(0, "code_tests", "def double(x):\n    return x + x + 1", GOOD_CODE),  # fails its own tests
        _row(1, "math", "see above"),
        _row(2, "code_tests", "def double(x):\n    return 2 * x", {"tests": ["assert True"], "entry_point": "double"}),
    ]
    out = verifier_gate(rows, pool, "gold_rlvr 2026-11-01")
    assert not out.passed
    assert out.metadata["reference_failed"] == 2
    assert out.metadata["canary_rewarded"] == 2  # "assert True" passes the stub and the empty program
    rates = out.metadata["by_verifier"]["math"]["s"]
    assert rates["unusable_reference_rate"] == 1.0
    assert out.metadata["first_reference_failed"][0].startswith("r0 (code_tests): scored 0.0")


def test_a_reference_that_hangs_is_killed_and_fails_the_gate(pool):
    hang = {"entry_point": "double", "tests": ["assert double(1) == 2"], "timeout_s": 0.5}
    out = verifier_gate([_row(0, "code_tests", "def double(x):\n    while True: pass", hang)], pool, "p")
    assert not out.passed
    assert out.metadata["by_verifier"]["code_tests"]["s"]["timeout_rate"] > 0


def test_a_planted_wrong_reference_blocks_the_gold_partition(make_home, instance):
    d = "2026-11-01"
    settings = make_home(
        {
            "start_date": d,
            "sources": [{"name": "tasks", "regime": "rlvr", "kind": "files", "verifier": "code_tests"}],
            "quality": {"min_pass_rate": 0.5},
        }
    )
    tasks = [
        {
            "question": f"Write double(x), which returns twice x (task {i}), as a Python function please.",
            "answer": "def double(x):\n    return 2 * x" if i else "def double(x):\n    return x",
            "verifier_args": GOOD_CODE,
        }
        for i in range(6)
    ]
    (landing(settings, "tasks", d) / "t.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    result = run(settings, instance, d)
    assert not result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations() if c.asset_key.path == ["gold_rlvr"]}
    gate = checks["verifiers"]
    assert not gate.passed
    assert gate.metadata["partitions"].value[d]["reference_failed"] == 1
    assert "gold_rlvr not published: verifiers failed" in str(
        result.get_step_failure_events()[0].step_failure_data.error
    )
    assert not (Path(settings.lake) / "gold" / "gold_rlvr" / f"date={d}").exists()
