"""Grade-school math word problems with worked steps.

Each problem in fixtures/math.json.zst is a `let` table (its numbers, drawn and derived by formulas; see
formulas.draw), one or more wordings of the question, and step templates; a step given as [name, template] is
shown only when that value is truthy. `answer` is the value the steps arrive at."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ptdata.demo.common import Task, fixture, num, pick, vary, wording
from ptdata.demo.formulas import draw

F = fixture("math")
_PROBLEMS = list(F["problems"].values())


@dataclass
class Math:
    question: str
    steps: list[str]
    answer: float

    @property
    def answer_text(self) -> str:
        return num(round(self.answer, 2))


def math_problem(rng: random.Random) -> Math:
    spec = pick(rng, _PROBLEMS)
    v = draw(rng, spec, F)
    question = wording(rng, spec["q"], **v)
    shown = [s if isinstance(s, str) else s[1] for s in spec["steps"] if isinstance(s, str) or v[s[0]]]
    return Math(vary(rng, question, F["paraphrases"]), [s.format(**v) for s in shown], v["answer"])


def math_solution(rng: random.Random, m: Math) -> str:
    intro = pick(rng, F["solution_intros"])
    steps = "\n".join(f"{i}. {s}" for i, s in enumerate(m.steps, 1)) if rng.random() < 0.6 else " ".join(m.steps)
    closer = pick(rng, F["math_closers"]).format(a=m.answer_text)
    return "\n\n".join(p for p in (intro, steps, closer) if p)


def math_task(rng: random.Random) -> Task:
    m = math_problem(rng)
    opener = pick(rng, F["math_openers"])
    user = f"{opener}\n\n{m.question}" if opener and rng.random() < 0.5 else f"{opener} {m.question}".strip()
    check, why = F["followups"]
    follow = [
        (check[0].format(a=m.answer_text), check[1].format(a=m.answer_text, steps=" ".join(reversed(m.steps)))),
        (why[0], why[1].format(first=m.steps[0])),
    ]
    return Task(user, math_solution(rng, m), follow)
