"""math: the completion's final answer equals the reference mathematically, by Math-Verify (parse, then verify
numerically and symbolically with SymPy).

The reference must be one that ptdata.rl.verifiers.math_answer parses (what silver's unparseable_answer rule asks
of an rlvr record), so "see above" is unusable although Math-Verify would read it as a product of letters. It is
given to Math-Verify in \\boxed{}: a plain rational in its canonical form (so "1e-3" and "1,234" keep their value),
anything else as written (LaTeX such as "\\frac{\\pi}{4}" needs its delimiters). A completion is read after its last
GSM8K "####" when it has one, else whole (Math-Verify prefers its last \\boxed{}).

Math-Verify bounds its own parse and comparison with `signal.alarm`, which works only on a process's main thread
(off it, every score silently became 0 in verl): on the main thread, as in the pool's workers, its timeouts are on
and raise; elsewhere they are off and the pool's wall clock is the bound.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from ptdata.rl.verifiers import UnusableReference, Verifier, VerifierTimeout, final_answer, register
from ptdata.rl.verifiers.math_answer import parse_math_answer

# seconds for Math-Verify's parse of one text and for one comparison
TIMEOUT_S = 5
_RATIONAL = re.compile(r"-?\d+(?:\.\d+)?(?:/\d+)?%?")


def check_reference(answer: str, _args: Mapping[str, Any] | None = None) -> str:
    """The reference's canonical form (ptdata.rl.verifiers.math_answer); UnusableReference when it has none."""
    canonical = parse_math_answer(answer) if isinstance(answer, str) else None
    if canonical is None:
        raise UnusableReference(f"math: the reference answer {str(answer)[:80]!r} is not a number or expression")
    return canonical


def _timeouts() -> int | None:
    return TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def _parse(text: str) -> list:
    from math_verify import parse
    from math_verify.errors import TimeoutException

    try:
        return parse(text, parsing_timeout=_timeouts(), raise_on_error=True)
    except TimeoutException as e:  # a BaseException: it would pass through `except Exception`
        raise VerifierTimeout(f"math: parsing took over {TIMEOUT_S}s") from e


def _gold(answer: str) -> list:
    canonical = check_reference(answer)
    gold = _parse("\\boxed{" + (canonical if _RATIONAL.fullmatch(canonical) else final_answer(answer)) + "}")
    if not gold:
        raise UnusableReference(f"math: Math-Verify cannot parse the reference answer {answer[:80]!r}")
    return gold


def score(completion: str, answer: str, _args: Mapping[str, Any]) -> float:
    from math_verify import verify
    from math_verify.errors import TimeoutException

    gold = _gold(answer)
    predicted = _parse(completion.rsplit("####", 1)[1] if "####" in completion else completion)
    if not predicted:
        return 0.0
    try:
        return 1.0 if verify(gold, predicted, timeout_seconds=_timeouts(), raise_on_error=True) else 0.0
    except TimeoutException as e:
        raise VerifierTimeout(f"math: comparing took over {TIMEOUT_S}s") from e


def canary(answer: str, _args: Mapping[str, Any]) -> str:
    """A wrong answer: the reference plus one when it is a rational number, else a number no expression equals."""
    canonical = parse_math_answer(answer) or ""
    if _RATIONAL.fullmatch(canonical):
        value = Fraction(canonical.rstrip("%")) + 1
        return f"The answer is \\boxed{{{value}{'%' if canonical.endswith('%') else ''}}}."
    return "The answer is \\boxed{-98765.4321}."


def warm_up() -> None:
    """Import Math-Verify and SymPy and parse once (~0.5 s), as a pool worker does before its first task."""
    _parse("\\boxed{1}")


register(Verifier("math", score, canary, check_reference=check_reference))
