"""exact and normalized: the completion's final answer (ptdata.rl.verifiers.final_answer) equals the reference's.

`exact` compares the two strings as they are, stripped. `normalized` compares them as SQuAD's evaluation does:
Unicode NFKC, case-folded, punctuation removed, the English articles a, an, the dropped, whitespace collapsed.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping
from typing import Any

from ptdata.rl.verifiers import CANARY_TEXT, UnusableReference, Verifier, final_answer, register

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation + "‘’“”«»…。，、！？：；")


def check_reference(answer: str, _args: Mapping[str, Any] | None = None) -> str:
    expected = final_answer(answer) if isinstance(answer, str) else ""
    if not expected:
        raise UnusableReference("the reference answer is blank")
    return expected


def normalize_answer(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def score_exact(completion: str, answer: str, _args: Mapping[str, Any]) -> float:
    return 1.0 if final_answer(completion) == check_reference(answer) else 0.0


def score_normalized(completion: str, answer: str, _args: Mapping[str, Any]) -> float:
    expected = normalize_answer(check_reference(answer))
    if not expected:
        raise UnusableReference("the reference answer is blank once normalized")
    return 1.0 if normalize_answer(final_answer(completion)) == expected else 0.0


def canary(_answer: str, _args: Mapping[str, Any]) -> str:
    return CANARY_TEXT


register(Verifier("exact", score_exact, canary, check_reference=check_reference))
register(Verifier("normalized", score_normalized, canary, check_reference=check_reference))
