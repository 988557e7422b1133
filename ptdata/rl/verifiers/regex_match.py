"""regex: the completion's final answer matches `verifier_args.pattern` (whole, by default).

verifier_args: `pattern` (required), `flags` (a string of i, m, s, x), `mode`: `fullmatch` (the default: the final
answer, ptdata.rl.verifiers.final_answer, matches whole) or `search` (anywhere in the completion). The record's
answer is an example of a correct answer: the verifier gate checks that it matches. A pattern that backtracks for
ever is stopped by the pool's wall clock (Python's re cannot be interrupted).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import reduce
from typing import Any

from ptdata.rl.verifiers import CANARY_TEXT, UnusableReference, Verifier, final_answer, register

_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


def check_reference(_answer: str, args: Mapping[str, Any]) -> re.Pattern[str]:
    pattern, flags, mode = args.get("pattern"), args.get("flags", ""), args.get("mode", "fullmatch")
    if not isinstance(pattern, str) or not pattern:
        raise UnusableReference("regex: verifier_args.pattern is missing")
    if not isinstance(flags, str) or set(flags) - set(_FLAGS):
        raise UnusableReference(f"regex: verifier_args.flags {flags!r}: expected letters of {''.join(_FLAGS)}")
    if mode not in ("fullmatch", "search"):
        raise UnusableReference(f"regex: verifier_args.mode {mode!r}: expected fullmatch or search")
    try:
        return re.compile(pattern, reduce(lambda a, f: a | _FLAGS[f], flags, 0))
    except re.error as e:
        raise UnusableReference(f"regex: verifier_args.pattern does not compile: {e}") from None


def score(completion: str, answer: str, args: Mapping[str, Any]) -> float:
    pattern = check_reference(answer, args)
    if args.get("mode", "fullmatch") == "search":
        return 1.0 if pattern.search(completion) else 0.0
    return 1.0 if pattern.fullmatch(final_answer(completion)) else 0.0


def canary(_answer: str, _args: Mapping[str, Any]) -> str:
    return CANARY_TEXT


register(Verifier("regex", score, canary, check_reference=check_reference))
