"""unparseable_answer: an rlvr record whose verifier cannot use its reference answer (the verifier's own
`check_reference`, ptdata/rl/verifiers/; a verifier nobody registered cannot check anything)."""

from __future__ import annotations

from typing import Any

from ptdata.rl.verifiers import VERIFIERS, UnusableReference, parse_args


def answer_is_usable(record: dict[str, Any]) -> bool:
    verifier, answer = record.get("verifier"), record.get("answer")
    if verifier not in VERIFIERS.names() or not isinstance(answer, str):
        return False
    try:
        VERIFIERS.get(verifier).check_reference(answer, parse_args(record.get("verifier_args")))
    except UnusableReference:
        return False
    return True
