"""Preference data: a chosen and a rejected reply to the same prompt, and the prefs_hh and prefs_pairs sources."""

from __future__ import annotations

import gzip
import io
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ptdata.demo import chat, writing
from ptdata.demo.coding import PY_TASKS, sql_task
from ptdata.demo.common import fixture, num, pick, rng_for, vary
from ptdata.demo.files import DEMO_DAYS, day_dirs, gz, jsonl, write
from ptdata.demo.formulas import draw
from ptdata.demo.math_problems import Math, math_problem, math_solution

F = fixture("preference")


def _advice(rng: random.Random) -> tuple[str, str, str]:
    """A sensitive question: a careful, helpful reply and a harmful or dismissive one."""
    asks, good, bad = pick(rng, F["advice"])
    slots = draw(rng, F["advice_slots"], F)
    keep = sorted(rng.sample(range(2, len(good)), rng.randint(2, len(good) - 3)))
    reply = [good[0], good[1], *(good[i] for i in keep)]
    answer = vary(rng, " ".join(reply).format(**slots), F["spoken_paraphrases"])
    return pick(rng, asks).format(**slots), answer, pick(rng, bad)


def _worse(rng: random.Random, answer: str, other: str) -> str:
    """A plausible rejected reply: curt, cut short, a needless refusal, condescending, or an answer to another question."""
    words = answer.split(" ")
    return pick(
        rng,
        (
            lambda: pick(rng, F["curt"]),
            lambda: " ".join(words[: max(5, len(words) // 4)]),
            lambda: pick(rng, chat.F["refusals"]),
            lambda: F["condescending"] + " ".join(words[: len(words) // 2]),
            lambda: other,
        ),
    )()


def _example(rng: random.Random) -> tuple[list[tuple[str, str]], str, str, str]:
    """(earlier turns, last user message, chosen reply, rejected reply)."""
    kind = rng.random()
    if kind < 0.02:
        user, good, bad = _advice(rng)
        return [], user, good, bad
    if kind < 0.3:
        m = math_problem(rng)
        off = round(m.answer * 1.5 + 3, 2)
        wrong = Math(m.question, [*m.steps[:-1], F["wrong_result"].format(num(off))], off)
        return [], m.question, math_solution(rng, m), math_solution(rng, wrong)
    w = writing
    task = pick(rng, (w.email_task, w.explain_task, w.recipe_task, w.travel_task, sql_task, w.summary_task, *PY_TASKS))
    task, other = task(rng), pick(rng, (w.explain_task, w.recipe_task))(rng).answer
    turns = [(task.user, task.answer)]
    if task.followups and rng.random() < 0.3:
        turns.append(pick(rng, task.followups))
    *history, (user, good) = turns
    return history, user, good, _worse(rng, good, other)


def _hh(turns: list[tuple[str, str]], user: str, reply: str) -> str:
    return "".join(f"\n\nHuman: {u}\n\nAssistant: {a}" for u, a in turns) + f"\n\nHuman: {user}\n\nAssistant: {reply}"


def _hh_lines(rng: random.Random, n: int) -> bytes:
    rows = []
    for _ in range(n):
        history, user, good, bad = _example(rng)
        rows.append(jsonl({"chosen": _hh(history, user, good), "rejected": _hh(history, user, bad)}) + b"\n")
    return b"".join(rows)


def _truncated_gzip_records(data: bytes) -> int:
    """Records a line reader gets from a truncated gzip: the lines read before the break, plus one for the break."""
    n = 0
    with gzip.open(io.BytesIO(data), "rb") as f:
        try:
            for line in f:
                n += bool(line.strip())
        except EOFError:
            return n + 1
    return n


def write_prefs_hh(home: Path, seed: int) -> list[int]:
    counts = []
    for day, folder in enumerate(day_dirs(home, "prefs_hh")):
        rng = rng_for(seed, "prefs_hh", day)
        size = (250, 245, 255)[day]
        write(folder / "part-0.jsonl.gz", gz(_hh_lines(rng, size)))
        counts.append(size)
        if day == 1:  # a valid gzip cut after 70% of its bytes
            whole = gz(_hh_lines(rng, 120))
            cut = whole[: len(whole) * 7 // 10]
            write(folder / "part-1.jsonl.gz", cut)
            counts[-1] += _truncated_gzip_records(cut)
    return counts


def write_prefs_pairs(home: Path, seed: int) -> list[int]:
    counts = []
    for day, folder in enumerate(day_dirs(home, "prefs_pairs")):
        rng = rng_for(seed, "prefs_pairs", day)
        n_rows, n_lines = ((180, 70), (175, 72), (185, 68))[day]
        rows = []
        for _ in range(n_rows):
            history, user, good, bad = _example(rng)
            prompt = "\n\n".join([*(f"{u}\n\n{a}" for u, a in history), user])
            rows.append({"prompt": prompt, "chosen": good, "rejected": bad})
        same_row = {0: 13, 2: 40}.get(day)  # chosen identical to rejected
        if same_row is not None:
            rows[same_row]["rejected"] = rows[same_row]["chosen"]
        pq.write_table(pa.Table.from_pylist(rows), folder / "pairs.parquet", compression="zstd")
        lines = []
        for i in range(n_lines):
            history, user, good, bad = _example(rng)
            msgs = [{"role": r, "content": c} for t in history for r, c in zip(("user", "assistant"), t, strict=True)]
            prompt: Any = [*msgs, {"role": "user", "content": user}] if history or rng.random() < 0.5 else user
            chosen = [{"role": "assistant", "content": good}]
            rejected = chosen if (day == 1 and i == 4) else [{"role": "assistant", "content": bad}]
            rec = {"id": f"pair-{DEMO_DAYS[day]:%m%d}-{i:04d}", "prompt": prompt, "chosen": chosen}
            lines.append(jsonl({**rec, "rejected": rejected}) + b"\n")
        write(folder / "pairs-msgs.jsonl", b"".join(lines))
        counts.append(n_rows + n_lines)
    return counts
