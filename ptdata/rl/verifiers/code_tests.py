"""code_tests: the completion's code passes the record's tests, run in a sandboxed child interpreter
(ptdata.rl.verifiers.sandbox).

verifier_args: `tests` (required: Python statements, typically asserts, each a test), `entry_point` (the function
the tests call; the canary defines it to return None), `setup` (code run after the completion and before the
tests), `timeout_s` (default 10: the wall clock of the run), `memory_mb` (default 1024), `partial_credit` (the
reward is the share of tests passed instead of all or nothing). The code is the completion's last fenced block
(```python, ```py or plain ```), else the whole completion; the record's answer is a reference solution.

A run killed at its deadline raises VerifierTimeout and one that hit its memory cap VerifierMemory: counted as
verifier errors (reward 0), since they say something about the record or the model that a failed assert does not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ptdata.rl.verifiers import UnusableReference, Verifier, VerifierMemory, VerifierTimeout, register
from ptdata.rl.verifiers.sandbox import Program, ProgramResult, run_programs

TIMEOUT_S = 10.0
MEMORY_MB = 1024
# the pool's wall clock allows this much on top of the program's own, for starting and reporting
_GRACE_S = 10.0
_FENCE = re.compile(r"^[ \t]*```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)


def _number(args: Mapping[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise UnusableReference(f"code_tests: verifier_args.{name} must be a number in [{low:g}, {high:g}]")
    return float(value)


def check_reference(_answer: str, args: Mapping[str, Any]) -> list[str]:
    tests = args.get("tests")
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) and t.strip() for t in tests):
        raise UnusableReference("code_tests: verifier_args.tests must be a non-empty list of statements")
    for name in ("entry_point", "setup"):
        if not isinstance(args.get(name, ""), str):
            raise UnusableReference(f"code_tests: verifier_args.{name} must be a string")
    _number(args, "timeout_s", TIMEOUT_S, 0.1, 600)
    _number(args, "memory_mb", MEMORY_MB, 64, 65536)
    return tests


def program_code(completion: str) -> str:
    blocks = _FENCE.findall(completion)
    return blocks[-1] if blocks else completion


def _reward(result: ProgramResult, args: Mapping[str, Any]) -> float:
    if result.error == "timeout":
        raise VerifierTimeout(f"code_tests: {result.detail}")
    if result.error == "memory":
        raise VerifierMemory(f"code_tests: the program exceeded {args.get('memory_mb', MEMORY_MB)} MB")
    if args.get("partial_credit"):
        return result.passed / result.total
    return 1.0 if result.passed == result.total else 0.0


def score(completion: str, answer: str, args: Mapping[str, Any]) -> float:
    return score_batch([completion], answer, args)[0]


def score_batch(completions: Sequence[str], answer: str, args: Mapping[str, Any]) -> list[float]:
    """The completions one after another in one sandbox, each in a fresh namespace, `timeout_s` each."""
    tests = check_reference(answer, args)
    setup = args.get("setup", "")
    programs = [Program(program_code(c) + "\n" + setup, tests) for c in completions]
    timeout_s = _number(args, "timeout_s", TIMEOUT_S, 0.1, 600) * len(programs)
    results = run_programs(programs, timeout_s, int(args.get("memory_mb", MEMORY_MB)))
    # a crash: the completion ended the interpreter itself (os._exit, a fatal signal), so it passed nothing
    return [0.0 if r.error == "crashed" else _reward(r, args) for r in results]


def canary(_answer: str, args: Mapping[str, Any]) -> str:
    entry = args.get("entry_point")
    return (
        f"def {entry}(*args, **kwargs):\n    return None\n" if isinstance(entry, str) and entry.isidentifier() else ""
    )


def time_limit(args: Mapping[str, Any]) -> float:
    """The wall clock of one completion's run; a batch of n gets n times the program's part."""
    try:
        return _number(args, "timeout_s", TIMEOUT_S, 0.1, 600) + _GRACE_S
    except UnusableReference:
        return TIMEOUT_S + _GRACE_S


register(
    Verifier(
        "code_tests", score, canary, check_reference=check_reference, time_limit=time_limit, score_batch=score_batch
    )
)
