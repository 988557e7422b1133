"""unparseable_answer: an rlvr record whose verifier cannot use its reference answer."""

from __future__ import annotations

from typing import Any

import orjson

from ptdata.rl.verifiers.math_answer import parse_math_answer
from ptdata.silver.quality.base import blank

VERIFIERS = ("math", "exact", "code_tests")


def answer_is_usable(record: dict[str, Any]) -> bool:
    verifier, answer = record.get("verifier"), record.get("answer")
    if verifier == "math":
        return isinstance(answer, str) and parse_math_answer(answer) is not None
    if verifier == "exact":
        return not blank(answer)
    if verifier == "code_tests":
        try:
            args = orjson.loads(record.get("verifier_args") or "{}")
        except orjson.JSONDecodeError:
            return False
        tests = args.get("tests") if isinstance(args, dict) else None
        return isinstance(tests, list) and len(tests) > 0
    return False  # a verifier nobody implements cannot check anything
