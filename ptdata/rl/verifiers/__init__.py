"""Verifiers: the reward of a completion against an rlvr record's reference answer, one module per kind.

A verifier is a pure function `score(completion, answer, args) -> float` in [0, 1], registered with its `canary`
(a completion that must score 0: a verifier that rewards it is vacuous) and its `reference` (the reference answer as
a completion, which must score 1). A reference the verifier cannot use raises `UnusableReference`; everything that
goes wrong becomes a `Verdict` with an error kind and reward 0, never 1 (`verify`). Verifiers run in a process pool
with an outer wall-clock timeout (ptdata.rl.verifiers.pool), because a parse or a program can hang; see
ARCHITECTURE.md, "RL verifiers".

Error kinds: `unusable_reference` (the record's answer or args cannot be checked against), `timeout` (the
verifier's own or the pool's wall clock), `memory` (a program hit its memory cap), `exception` (the verifier
raised), `unknown_verifier`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from ptdata.core.registry import Registry

ErrorKind = Literal["unusable_reference", "timeout", "memory", "exception", "unknown_verifier"]
ERROR_KINDS: tuple[ErrorKind, ...] = ("unusable_reference", "timeout", "memory", "exception", "unknown_verifier")


class UnusableReference(ValueError):
    """The record's reference answer (or its verifier_args) cannot be checked against."""


class VerifierTimeout(RuntimeError):
    """The verifier's own time limit was reached."""


class VerifierMemory(RuntimeError):
    """A program under verification hit its memory cap."""


@dataclass(frozen=True)
class Verdict:
    reward: float
    error: ErrorKind | None = None
    detail: str = ""


Score = Callable[[str, str, Mapping[str, Any]], float]
# several completions of one record at once, where that is cheaper than one by one (code_tests: one sandbox)
ScoreBatch = Callable[[Sequence[str], str, Mapping[str, Any]], list[float]]


def _as_written(answer: str, _args: Mapping[str, Any]) -> str:
    return answer


def _pool_limit(_args: Mapping[str, Any]) -> float | None:
    return None


@dataclass(frozen=True)
class Verifier:
    name: str
    score: Score
    # a completion that must score 0 against this answer
    canary: Callable[[str, Mapping[str, Any]], str]
    # raises UnusableReference when the answer and args cannot be checked against (cheap: silver's
    # unparseable_answer rule calls it on every rlvr record)
    check_reference: Callable[[str, Mapping[str, Any]], Any]
    # the reference answer written as a completion, which must score 1
    reference: Callable[[str, Mapping[str, Any]], str] = _as_written
    # the wall clock of one completion's verification, from its args (None: the pool's)
    time_limit: Callable[[Mapping[str, Any]], float | None] = _pool_limit
    score_batch: ScoreBatch | None = None


VERIFIERS: Registry[Verifier] = Registry("verifier")
register = VERIFIERS.register

# a completion no reference answers: the canary of the text verifiers
CANARY_TEXT = "ptdata canary: not an answer 7f3a9c"


def parse_args(args: str | Mapping[str, Any] | None) -> Mapping[str, Any]:
    """verifier_args as a mapping (gold keeps it as a JSON string); an UnusableReference if it is not an object."""
    if args is None or args == "":
        return {}
    if isinstance(args, Mapping):
        return args
    try:
        value = orjson.loads(args)
    except orjson.JSONDecodeError as e:
        raise UnusableReference(f"verifier_args is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise UnusableReference("verifier_args is not a JSON object")
    return value


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_LINE = re.compile(r"(?im)^\s*(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*[:：]\s*(.+?)\s*$")


def final_answer(completion: str) -> str:
    """The part of a completion that states its answer: the last \\boxed{...}, else what follows the last GSM8K
    "####", else the last "Answer: ..." line, else the whole completion, stripped."""
    boxes = list(_BOXED.finditer(completion))
    if boxes:
        start = boxes[-1].end()
        depth = 1
        for i in range(start, len(completion)):
            depth += {"{": 1, "}": -1}.get(completion[i], 0)
            if depth == 0:
                return completion[start:i].strip()
    if "####" in completion:
        return completion.rsplit("####", 1)[1].strip()
    lines = _ANSWER_LINE.findall(completion)
    if lines:
        return lines[-1]
    return completion.strip()


def verify(verifier: str, completion: str, answer: str, args: str | Mapping[str, Any] | None = None) -> Verdict:
    """The reward of `completion`, in this process and without a wall clock (the pool adds one): every failure is
    a Verdict with its error kind and reward 0."""
    return verify_many(verifier, (completion,), answer, args)[0]


def verify_many(
    verifier: str, completions: Sequence[str], answer: str, args: str | Mapping[str, Any] | None = None
) -> list[Verdict]:
    """`verify` of several completions of one record: at once where the verifier can (a failure of the batch is
    then every completion's), else one by one."""
    try:
        entry = VERIFIERS.get(verifier)
    except ValueError as e:
        return [Verdict(0.0, "unknown_verifier", str(e))] * len(completions)
    try:
        parsed = parse_args(args)
        if entry.score_batch is not None:
            return [_checked(verifier, r) for r in entry.score_batch(completions, answer, parsed)]
    except Exception as e:  # noqa: BLE001 - any failure of a verifier is a counted error, never a reward
        return [_failed(e)] * len(completions)
    out = []
    for completion in completions:
        try:
            out.append(_checked(verifier, entry.score(completion, answer, parsed)))
        except Exception as e:  # noqa: BLE001 - as above
            out.append(_failed(e))
    return out


def _checked(verifier: str, reward: float) -> Verdict:
    reward = float(reward)
    if not 0.0 <= reward <= 1.0:
        return Verdict(0.0, "exception", f"{verifier} returned {reward}, outside [0, 1]")
    return Verdict(reward)


def _failed(e: Exception) -> Verdict:
    if isinstance(e, UnusableReference):
        return Verdict(0.0, "unusable_reference", str(e))
    if isinstance(e, VerifierTimeout):
        return Verdict(0.0, "timeout", str(e))
    if isinstance(e, VerifierMemory | MemoryError):
        return Verdict(0.0, "memory", str(e) or "out of memory")
    return Verdict(0.0, "exception", f"{type(e).__name__}: {e}"[:500])


def _register_builtins() -> None:
    # the modules register themselves; importing them here makes the registry complete on import
    from ptdata.rl.verifiers import code_tests, exact_match, math_match, multiple_choice, regex_match  # noqa: F401


_register_builtins()
