"""Verifiable tasks: function-writing problems with exec-checked tests, and the demo eval set.

A code family in fixtures/rlvr.json.zst is a `let` table (ending in the test inputs, Python literals as text)
and templates of its function names, descriptions and reference solutions, where `{fn}` stands for the name."""

from __future__ import annotations

import json
import random
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ptdata.demo.common import Msg, fixture, num, pick, rng_for
from ptdata.demo.files import DEMO_DAYS, day_dirs, write
from ptdata.demo.formulas import draw
from ptdata.demo.math_problems import math_problem
from ptdata.demo.people import FIRST_NAMES

F = fixture("rlvr")
CODE_FAMILIES = list(F["code_families"].values())


def code_problem(rng: random.Random, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A family's templates filled in with its drawn values: names, args, descriptions, solutions, inputs."""
    v = draw(rng, spec, F)
    fill = {k: [t.format(**v) for t in spec[k]] for k in ("names", "descriptions", "solutions")}
    return fill | {"args": spec["args"], "inputs": v["inputs"]}


def code_record(rng: random.Random, p: Mapping[str, Any]) -> dict[str, Any]:
    fn = pick(rng, p["names"])
    solution = pick(rng, p["solutions"]).replace("{fn}", fn)
    ns: dict[str, Any] = {}
    exec(solution, ns)  # our own reference solution: running it gives exact expected values for the tests
    tests = [f"assert {fn}({args}) == {eval(f'{fn}({args})', ns)!r}" for args in p["inputs"]]
    examples = rng.sample(p["inputs"], rng.randint(1, 2))
    shown = "\n".join(f"`{fn}({x})` returns `{eval(f'{fn}({x})', ns)!r}`." for x in examples)
    lead, desc = pick(rng, F["code_leads"]), pick(rng, p["descriptions"])
    context = pick(rng, F["code_contexts"]).format(x=pick(rng, F["code_purposes"]))
    text = F["code_prompt"].format(
        lead=lead, fn=fn, args=p["args"], desc=desc, context=context, head=pick(rng, F["example_heads"]), shown=shown
    )
    if rng.random() < 0.3:
        text += "\n\n" + pick(rng, F["code_only"])
    prompt: list[Msg] = [{"role": "user", "content": text}]
    if rng.random() < 0.25:
        prompt.insert(0, {"role": "system", "content": F["code_system"]})
    checks = {"tests": tests, "entry_point": fn}
    return {"prompt": prompt, "solution": solution, "verifier": "code_tests", "verifier_args": checks}


def code_task(rng: random.Random) -> dict[str, Any]:
    return code_record(rng, code_problem(rng, pick(rng, CODE_FAMILIES)))


def lookalike_task(rng: random.Random) -> dict[str, Any]:
    """int_to_roman, close to the eval set's roman_to_int without sharing its wording."""
    return code_record(rng, code_problem(rng, F["lookalike_roman"]))


def eval_items() -> list[dict[str, str]]:
    """30 grade-school math word problems and 30 short Python tasks, the same every time."""
    rng = random.Random("ptdata-demo-eval-v1")
    items = []
    for kind, spec in enumerate(F["eval_math"]):
        for i in range(3):
            v = draw(rng, spec, F, n=pick(rng, FIRST_NAMES))
            answer = num(round(v["answer"], 2))
            items.append(
                {"task_id": f"demo-math-{kind * 3 + i:03d}", "prompt": spec["q"].format(**v), "answer": answer}
            )
    for k, (entry, args, desc, solution, examples) in enumerate(F["eval_code"]):
        for i, ex in enumerate(examples):
            ns: dict[str, Any] = {}
            exec(solution, ns)  # the reference solution is ours; running it gives the example's exact output
            out = eval(f"{entry}({ex})", ns)
            lead = F["eval_leads"][i]
            prompt = F["eval_code_prompt"].format(lead=lead, entry=entry, args=args, desc=desc, ex=ex, out=out)
            items.append({"task_id": f"demo-code-{k * 2 + i:03d}", "prompt": prompt, "answer": solution})
    return items


def _partial_eval_question(item: dict[str, str]) -> str:
    """About 70% of an eval problem's words: its first two sentences and the start of its question."""
    first, second, *_ = re.split(r"(?<=\.) ", item["prompt"])
    return f"{first} {second} How many shelves can be filled completely?"


def write_math_rlvr(home: Path, seed: int, leak: dict[str, str]) -> list[int]:
    """The sql source: rows of home/external/problems.sqlite by created_at; its day folders stay empty."""
    day_dirs(home, "math_rlvr")
    db = home / "external" / "problems.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)
    rows, sizes = [], (250, 245, 255)
    for day, size in enumerate(sizes):
        rng = rng_for(seed, "math_rlvr", day)
        date = DEMO_DAYS[day].isoformat()
        times = sorted(
            f"{date} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}" for _ in range(size)
        )
        for i, ts in enumerate(times):
            m = math_problem(rng)
            answer = f"\\boxed{{{m.answer_text}}}" if rng.random() < 0.25 else m.answer_text
            question = m.question
            if day == 0 and i == 16:  # id 17: an unparseable answer
                answer = "see above"
            if day == 1 and i == 29:  # id 280: part of an eval item
                question, answer = _partial_eval_question(leak), leak["answer"]
            rows.append((question, answer, "math", ts))
    con = sqlite3.connect(db)
    with con:
        con.execute(
            "CREATE TABLE problems (id INTEGER PRIMARY KEY, question TEXT NOT NULL, answer TEXT NOT NULL, "
            "verifier TEXT NOT NULL, created_at TEXT NOT NULL)"
        )
        con.execute("CREATE INDEX problems_created_at ON problems (created_at)")
        con.executemany("INSERT INTO problems (question, answer, verifier, created_at) VALUES (?, ?, ?, ?)", rows)
    con.close()
    return list(sizes)


def write_code_rlvr(home: Path, seed: int) -> list[int]:
    counts = []
    for day, folder in enumerate(day_dirs(home, "code_rlvr")):
        rng = rng_for(seed, "code_rlvr", day)
        recs = [code_task(rng) for _ in range((100, 98, 102)[day])]
        if day == 1:
            recs.insert(12, lookalike_task(rng))
        recs = [{"id": f"code-{DEMO_DAYS[day]:%m%d}-{i:04d}", **r} for i, r in enumerate(recs)]
        data = {"version": 2, "exported_at": f"{DEMO_DAYS[day].isoformat()}T23:59:00Z", "data": recs}
        write(folder / "tasks.json", json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8"))
        counts.append(len(recs))
    return counts
