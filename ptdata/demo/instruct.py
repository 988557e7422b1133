"""Instruction and response pairs: the alpaca_csv and qa_pairs sources."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import re
from pathlib import Path

from ptdata.demo import writing
from ptdata.demo.coding import py_task
from ptdata.demo.common import fence, fill, fixture, money, num, pick, rng_for
from ptdata.demo.files import day_dirs, jsonl, write, zstd
from ptdata.demo.math_problems import math_problem, math_solution
from ptdata.demo.people import FIRST_NAMES, MONTHS, date_in

F = fixture("instruct")


def _alpaca_row(rng: random.Random) -> tuple[str, str, str]:
    kind, t = rng.random(), F["alpaca"]
    if kind < 0.2:
        m = math_problem(rng)
        return m.question, "", math_solution(rng, m)
    if kind < 0.35:
        title, paras, facts = writing.report(rng)
        return pick(rng, t["summarize"]), "\n\n".join(paras), "\n".join(f"- {f}" for f in facts)
    if kind < 0.6:
        task = py_task(rng) if kind < 0.5 else writing.email_task(rng)
        return task.user, "", task.answer
    if kind < 0.7:
        nums = [rng.randint(-50, 999) for _ in range(rng.randint(5, 12))]
        up = rng.random() < 0.5
        ask = t["sort"].format(order="ascending" if up else "descending")
        return ask, ", ".join(map(str, nums)), ", ".join(map(str, sorted(nums, reverse=not up)))
    if kind < 0.8:
        temps = [rng.randint(-10, 105) for _ in range(rng.randint(3, 6))]
        answer = "\n".join(f"{f} °F = {(f - 32) * 5 / 9:.1f} °C" for f in temps)
        return t["temperatures"], ", ".join(f"{f} °F" for f in temps), answer
    if kind < 0.9:
        text = writing.report(rng)[1][0]
        found = re.findall(r"\$[\d,.]+(?: million)?|\d{4}-\d{2}-\d{2}|(?:" + "|".join(MONTHS) + r") \d{4}", text)
        return t["extract"], text, "\n".join(f"- {x}" for x in found) or "None"
    task = writing.explain_task(rng)
    return task.user, "", task.answer


def write_alpaca(home: Path, seed: int) -> list[int]:
    counts = []
    for day, folder in enumerate(day_dirs(home, "alpaca_csv")):
        rng = rng_for(seed, "alpaca_csv", day)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n" if day == 1 else "\n")  # 11-02: CRLF and a BOM
        writer.writerow(("instruction", "input", "output"))
        rows = [_alpaca_row(rng) for _ in range((200, 195, 205)[day])]
        writer.writerows(rows)
        write(folder / "instructions.csv", ("\ufeff" if day == 1 else "").encode() + buf.getvalue().encode("utf-8"))
        counts.append(len(rows))
    return counts


def _qa_pair(rng: random.Random) -> dict[str, str]:
    kind, t = rng.random(), F["qa"]
    if kind < 0.35:
        m = math_problem(rng)
        return {"prompt": m.question, "response": math_solution(rng, m)}
    if kind < 0.5:
        unit, other, f = pick(rng, t["units"])
        x = round(rng.uniform(1, 500), pick(rng, (0, 1)))
        one = unit[:-1] if unit.endswith("s") else unit
        prompt = fill(rng, t["unit_asks"], o=other, x=num(x), u=unit)
        answer = t["unit_answer"].format(x=num(x), unit=unit, y=x * f, other=other, one=one, f=f)
        return {"prompt": prompt, "response": answer}
    if kind < 0.65:
        d1 = date_in(rng, rng.randint(2020, 2026))
        d2 = d1 + dt.timedelta(days=rng.randint(3, 900))
        ask, answer = t["days_between"] if rng.random() < 0.5 else t["weekday"]
        return {"prompt": ask.format(d1=d1, d2=d2), "response": answer.format(d1=d1, d2=d2, days=(d2 - d1).days)}
    if kind < 0.8:
        p = rng.choice((3, 5, 7.5, 12.5, 15, 18, 20, 25, 35, 40, 75))
        n = round(rng.uniform(20, 20000), pick(rng, (0, 2)))
        what, part = pick(rng, t["percent_of"]), money(round(n * p / 100, 2))
        # the last wording names a person, drawn before one wording is picked
        v = dict(p=num(p), n=n, what=what, part=part, amount=money(n), rate=p / 100, name=pick(rng, FIRST_NAMES))
        v["value"] = num(round(n * p / 100, 2))
        ask, answer = pick(rng, t["percent"])
        return {"prompt": ask.format(**v), "response": answer.format(**v)}
    task = py_task(rng)
    return {"prompt": task.user, "response": task.answer}


def write_qa_pairs(home: Path, seed: int, leak: dict[str, str]) -> list[int]:
    counts = []
    for day, folder in enumerate(day_dirs(home, "qa_pairs")):
        rng = rng_for(seed, "qa_pairs", day)
        rows = [_qa_pair(rng) for _ in range((150, 145, 155)[day])]
        if day == 1:  # the leaked eval item, re-wrapped with CRLF line ends inside a longer instruction
            prompt = F["leak_prompt"].format(task=_respaced_crlf(leak["prompt"], rng))
            rows.insert(
                6, {"prompt": prompt, "response": F["leak_answer"].format(code=fence("python", leak["answer"]))}
            )
        write(folder / "qa-000.jsonl.zst", zstd(b"".join(jsonl(r) + b"\n" for r in rows)))
        counts.append(len(rows))
    return counts


def _respaced_crlf(text: str, rng: random.Random) -> str:
    """The same words re-wrapped at random widths, with CRLF line ends and some doubled spaces."""
    words, lines, line = text.split(), [], []
    for w in words:
        line.append(w)
        if len(line) >= rng.randint(6, 11):
            lines.append(("  " if rng.random() < 0.3 else " ").join(line))
            line = []
    return "\r\n".join([*lines, " ".join(line)]) if line else "\r\n".join(lines)
