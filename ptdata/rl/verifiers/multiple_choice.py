"""multiple_choice: the option letter the completion chooses is the reference's.

verifier_args: `choices` (optional, the options' texts in order: A is the first); without it the letters A to J
are valid. The reference is a letter ("B", "(B)", "B.", "B) Paris") or the exact text of one of the choices. The
completion's choice is, in this order of preference: the letter of its last "answer is X" or "Answer: X", of its
last \\boxed{X}, of its last line that is only a letter ("C", "(C)", "C."), of its last "(X)"; none of them
scores 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ptdata.rl.verifiers import UnusableReference, Verifier, register

_MAX_LETTERS = 10
_LETTER = r"\(?([A-Z])\)?"
_PATTERNS = (
    re.compile(r"(?i:answer(?:\s+is)?|answer\s*[:：]|choose|option)\s*[:：]?\s*\**" + _LETTER + r"(?![A-Za-z])"),
    re.compile(r"\\boxed\{\s*" + _LETTER + r"\s*\}"),
    re.compile(r"(?m)^\s*\**" + _LETTER + r"[.)]?\**\s*$"),
    re.compile(r"\(([A-Z])\)"),
)


def _letters(args: Mapping[str, Any]) -> str:
    choices = args.get("choices")
    if choices is None:
        return "ABCDEFGHIJ"
    if not isinstance(choices, list) or not 2 <= len(choices) <= _MAX_LETTERS:
        raise UnusableReference(f"multiple_choice: verifier_args.choices must list 2 to {_MAX_LETTERS} options")
    return "ABCDEFGHIJ"[: len(choices)]


def check_reference(answer: str, args: Mapping[str, Any]) -> str:
    """The reference's letter."""
    letters = _letters(args)
    text = answer.strip() if isinstance(answer, str) else ""
    m = re.fullmatch(r"\(?([A-Za-z])[.):]?(?:\s.*)?", text, re.DOTALL)
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    choices = args.get("choices") or []
    if text in choices:
        return letters[choices.index(text)]
    raise UnusableReference(f"multiple_choice: the reference {text[:40]!r} is not one of the letters {letters}")


def chosen_letter(completion: str, letters: str) -> str | None:
    for pattern in _PATTERNS:
        found = [m.group(1) for m in pattern.finditer(completion) if m.group(1) in letters]
        if found:
            return found[-1]
    return None


def score(completion: str, answer: str, args: Mapping[str, Any]) -> float:
    expected = check_reference(answer, args)
    return 1.0 if chosen_letter(completion, _letters(args)) == expected else 0.0


def reference(answer: str, args: Mapping[str, Any]) -> str:
    return f"The answer is {check_reference(answer, args)}."


def canary(answer: str, args: Mapping[str, Any]) -> str:
    letters = _letters(args)
    expected = check_reference(answer, args)
    return f"The answer is {letters[(letters.index(expected) + 1) % len(letters)]}."


register(Verifier("multiple_choice", score, canary, check_reference=check_reference, reference=reference))
