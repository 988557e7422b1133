"""Each verifier against right, wrong and unusable references; the sandbox's limits; the pool's wall clock."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from ptdata.rl.verifiers import VERIFIERS, final_answer, verify, verify_many
from ptdata.rl.verifiers.pool import VerifierPool, VerifyTask


@pytest.mark.parametrize(
    ("completion", "answer", "reward"),
    [
        ("Natalia sold 48 + 24 = 72 clips.\n#### 72", "72", 1.0),
        ("I first thought 71. Then: #### 72", "#### 72", 1.0),
        ("so the total is \\boxed{\\frac{3}{4}}", "0.75", 1.0),
        ("The answer is $\\frac{\\pi}{4}$", "\\frac{\\pi}{4}", 1.0),
        ("That is 1234 dollars: \\boxed{1234}", "1,234", 1.0),
        ("The probability is 0.001", "1e-3", 1.0),
        ("\\boxed{(1, 2)}", "(1, 2)", 1.0),
        ("x = 5, so \\boxed{5}", "x = 5", 1.0),
        ("#### 73", "72", 0.0),
        ("\\boxed{4}", "\\boxed{3}", 0.0),
        ("I do not know.", "72", 0.0),
        ("", "72", 0.0),
    ],
)
def test_math_scores_the_final_answer_against_the_reference(completion, answer, reward):
    assert verify("math", completion, answer) == verify("math", completion, answer)
    got = verify("math", completion, answer)
    assert (got.reward, got.error) == (reward, None)


@pytest.mark.parametrize("answer", ["see above", "", "\\boxed{", "42 or 43 apples, roughly"])
def test_a_math_reference_that_cannot_be_parsed_is_an_error_never_a_reward(answer):
    got = verify("math", answer, answer)
    assert (got.reward, got.error) == (0.0, "unusable_reference")


def test_exact_and_normalized_match_the_final_answer():
    assert verify("exact", "Let me see.\nAnswer: Paris", "Paris").reward == 1.0
    assert verify("exact", "Answer: paris", "Paris").reward == 0.0
    assert verify("normalized", "The answer: The Eiffel Tower!", "eiffel tower").reward == 1.0
    assert verify("normalized", "The answer: the Louvre", "eiffel tower").reward == 0.0
    assert verify("exact", "anything", "   ").error == "unusable_reference"
    assert final_answer("work... \\boxed{x^{2}} and more") == "x^{2}"


def test_regex_matches_whole_or_anywhere_and_rejects_bad_patterns():
    args = {"pattern": r"\d{4}-\d{2}-\d{2}"}
    assert verify("regex", "Answer: 2026-12-04", "2026-01-01", args).reward == 1.0
    assert verify("regex", "Answer: on 2026-12-04", "2026-01-01", args).reward == 0.0
    assert verify("regex", "It was on 2026-12-04.", "x", {**args, "mode": "search"}).reward == 1.0
    assert verify("regex", "ok", "ok", {"pattern": "OK", "flags": "i"}).reward == 1.0
    for bad in ({"pattern": "("}, {}, {"pattern": "a", "flags": "q"}, {"pattern": "a", "mode": "any"}):
        assert verify("regex", "a", "a", bad).error == "unusable_reference"


def test_multiple_choice_reads_the_chosen_letter():
    assert verify("multiple_choice", "A is tempting, but the answer is (C).", "C").reward == 1.0
    assert verify("multiple_choice", "Answer: B", "B) Paris").reward == 1.0
    assert verify("multiple_choice", "\\boxed{B}", "Paris", {"choices": ["Rome", "Paris", "Oslo"]}).reward == 1.0
    assert verify("multiple_choice", "Reasoning...\nD", "C").reward == 0.0
    assert verify("multiple_choice", "no idea", "C").reward == 0.0
    assert verify("multiple_choice", "C", "Z", {"choices": ["a", "b"]}).error == "unusable_reference"


CODE_ARGS = {"entry_point": "add_one", "tests": ["assert add_one(1) == 2", "assert add_one(-1) == 0"]}


def test_code_tests_runs_the_last_fenced_block_against_the_tests():
    solution = "Here you go:\n```python\ndef add_one(x):\n    return x + 1\n```\nDone."
    assert verify("code_tests", solution, "", CODE_ARGS).reward == 1.0
    half = "def add_one(x):\n    return abs(x) + 1"
    assert verify("code_tests", half, "", CODE_ARGS).reward == 0.0
    assert verify("code_tests", half, "", {**CODE_ARGS, "partial_credit": True}).reward == 0.5
    assert verify("code_tests", "def add_one(x) return", "", CODE_ARGS).reward == 0.0
    assert verify("code_tests", "import os\nos._exit(0)", "", CODE_ARGS).reward == 0.0
    assert verify("code_tests", "x", "", {"tests": []}).error == "unusable_reference"


def test_a_program_that_loops_forever_is_killed_and_counted_as_a_timeout():
    t0 = time.monotonic()
    got = verify("code_tests", "def add_one(x):\n    while True:\n        pass", "", {**CODE_ARGS, "timeout_s": 1})
    assert (got.reward, got.error) == (0.0, "timeout")
    assert time.monotonic() - t0 < 5


def test_a_program_that_allocates_10_gb_hits_its_memory_cap():
    got = verify("code_tests", "def add_one(x):\n    return len(bytearray(10 * 2**30))", "", CODE_ARGS)
    assert (got.reward, got.error) == (0.0, "memory")


def test_a_program_has_no_network_and_a_working_directory_of_its_own():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[object] = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    code = (
        "import os, socket\n"
        "def reach():\n"
        "    try:\n"
        f"        socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "        return 'connected'\n"
        "    except OSError as e:\n"
        "        return type(e).__name__\n"
        "open('left.txt', 'w').write('x')\n"
    )
    tests = ["assert reach() != 'connected'", "assert os.getcwd().rsplit('/', 1)[1].startswith('ptdata-code-')"]
    assert verify("code_tests", code, "", {"tests": tests}).reward == 1.0
    time.sleep(0.2)
    assert not accepted
    server.close()


def test_a_batch_of_completions_is_scored_one_by_one():
    rewards = [v.reward for v in verify_many("code_tests", ["def add_one(x): return x + 1", "", "1/0"], "", CODE_ARGS)]
    assert rewards == [1.0, 0.0, 0.0]


def test_unknown_verifiers_and_bad_args_are_errors():
    assert verify("nope", "a", "a").error == "unknown_verifier"
    assert verify("exact", "a", "a", "[1, 2]").error == "unusable_reference"
    assert set(VERIFIERS.names()) >= {"math", "exact", "normalized", "regex", "multiple_choice", "code_tests"}


def test_the_pool_kills_a_verification_that_overruns_and_keeps_serving():
    # catastrophic backtracking: Python's re cannot be interrupted, so only killing the worker stops it
    hang = VerifyTask("regex", ("a" * 40 + "b",), "aaa", {"pattern": "(a+)+$"})
    ok = VerifyTask("math", ("#### 72",), "72")
    with VerifierPool(workers=2, time_limit_s=1.0) as pool:
        t0 = time.monotonic()
        verdicts = pool.verify([hang, ok, ok])
        assert time.monotonic() - t0 < 10
        assert verdicts[0][0].error == "timeout" and verdicts[0][0].reward == 0.0
        assert [v[0].reward for v in verdicts[1:]] == [1.0, 1.0]
        assert pool.killed == 1
        assert pool.verify([ok])[0][0].reward == 1.0
