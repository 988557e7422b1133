"""Verifiers planted by the tests, imported by the pool's workers too (VerifierPool(preload=...))."""

from __future__ import annotations

from ptdata.rl.verifiers import CANARY_TEXT, VERIFIERS, Verifier


def _vacuous(completion: str, answer: str, args: object) -> float:
    # marin#7784: a verifier whose check raises and whose wrapper rewards anyway
    try:
        raise RuntimeError("the comparison failed")
    except RuntimeError:
        return 1.0


if "vacuous" not in VERIFIERS.names():
    VERIFIERS.register(Verifier("vacuous", _vacuous, lambda a, k: CANARY_TEXT, check_reference=lambda a, k: a))
