"""Chat conversations: the mix of tasks, message lists, the planted chat records and the chat_openai and
sharegpt_export sources. Planted records are listed in fixtures/chat.json.zst by day, file and line (the module
docstring of generate.py is their catalogue); PII and look-alike chats there are `let` specs."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import ChainMap
from pathlib import Path
from typing import Any

from ptdata.demo import writing
from ptdata.demo.coding import js_task, py_task, sql_task
from ptdata.demo.common import F as COMMON
from ptdata.demo.common import Msg, Task, chat, fixture, mojibake, pick, rng_for
from ptdata.demo.files import DEMO_DAYS, Copy, day_dirs, gz, ids, place, resolve, serialize, write, zstd
from ptdata.demo.formulas import draw
from ptdata.demo.math_problems import math_task
from ptdata.demo.people import CITIES

F = fixture("chat")
_TASKS = {f.__name__: f for f in (py_task, sql_task, js_task, math_task, writing.email_task, writing.summary_task)}
_TASKS |= {
    f.__name__: f for f in (writing.explain_task, writing.travel_task, writing.recipe_task, writing.foreign_task)
}


def chat_task(rng: random.Random) -> Task:
    names, weights, kinds = zip(*F["chat_kinds"], strict=True)
    i = rng.choices(range(len(names)), weights=weights)[0]
    task = _TASKS[names[i]](rng)
    task.kind = kinds[i]
    return task


def messages(rng: random.Random, task: Task, system_p: float = 0.3) -> list[Msg]:
    """The task and some of its follow-ups as a message list, with a fitting system prompt now and then."""
    prompts = F["system_prompts"][task.kind] + F["system_prompts"]["general"]
    msgs: list[Msg] = [{"role": "system", "content": pick(rng, prompts)}] if rng.random() < system_p else []
    n_more = rng.choices((0, 1, 2, 3), weights=(55, 25, 13, 7))[0]
    pool = task.followups + [pick(rng, COMMON["thanks"])]
    for user, assistant in [(task.user, task.answer), *rng.sample(pool, min(n_more, len(pool)))]:
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return msgs


def to_sharegpt(msgs: list[Msg]) -> list[dict[str, str]]:
    names = {"system": "system", "user": "human", "assistant": "gpt"}
    return [{"from": names[m["role"]], "value": m["content"]} for m in msgs]


def dialog_text(msgs: list[Msg]) -> str:
    return "\n".join(m["content"] for m in msgs if isinstance(m.get("content"), str))


# --------------------------------------------------------------------------------------------------- defects


def spec_chat(rng: random.Random, name: str) -> list[Msg]:
    """One of the chats written out in the fixture (PII, hard negatives, control characters...)."""
    spec = F["chats"][name]
    v = draw(rng, spec, ChainMap(F, writing.F))
    user, answer = spec["user"].format(**v), spec["answer"].format(**v)
    return chat(mojibake(user), mojibake(answer)) if spec.get("mojibake") else chat(user, answer)


def refusal(rng: random.Random) -> list[Msg]:
    task = pick(rng, (writing.recipe_task, writing.travel_task, writing.email_task))(rng)
    return chat(task.user, pick(rng, F["refusals"]))


def _cut_mid_sentence(rng: random.Random) -> list[Msg]:
    task = pick(rng, (writing.email_task, writing.summary_task, writing.explain_task))(rng)
    words = task.answer.split(" ")
    cut = max(6, len(words) * 3 // 5)
    while cut < len(words) - 1 and words[cut - 1].endswith((".", "!", "?", ":")):
        cut += 1
    return chat(task.user, " ".join(words[:cut]))


def _unclosed_fence(rng: random.Random) -> list[Msg]:
    task = py_task(rng)
    head, _, code_and_rest = task.answer.partition("```python\n")
    return chat(task.user, head + "```python\n" + code_and_rest.split("\n```", 1)[0])


def mojibake_foreign(rng: random.Random) -> list[Msg]:
    """A French, Spanish, German or Portuguese exchange whose accents went through a double encoding."""
    while True:
        task = writing.foreign_task(rng)
        if not task.user.isascii() and all(ord(ch) < 0x3000 for ch in task.user + task.answer):
            return chat(mojibake(task.user), mojibake(task.answer))


def _long_chat(rng: random.Random) -> list[Msg]:
    """A summarisation chat of 250+ words: long enough that the near-duplicate variants stay above a 0.8 Jaccard."""
    while True:
        title, paras, facts = writing.report(rng)
        paras.append(writing.reactions(rng))
        paras.append(" ".join(writing.F["background"]).format(city=pick(rng, CITIES), n=rng.randint(2, 9)))
        msgs = chat(F["long_chat_ask"] + "\n\n".join(paras), f"**{title}**\n\n" + "\n".join(f"- {f}" for f in facts))
        if len(dialog_text(msgs).split()) >= 250:
            return msgs


def _huge_chat() -> list[Msg]:
    rows = "".join(
        f"2026-{1 + i // 44640:02d}-{1 + i // 1440 % 31:02d}T{i // 60 % 24:02d}:{i % 60:02d},"
        f"s-{i % 17:02d},{18 + (i * 7) % 90 / 10:.1f},{40 + (i * 13) % 35}\n"
        for i in range(190_000)
    )
    return chat(F["huge_chat"][0], F["huge_chat"][1].format(rows=rows))


def near_dup(text: str, how: str, rng: random.Random) -> str:
    """A near-duplicate of `text`: a few words changed, punctuation and spacing changed, or a sentence appended."""
    if how == "words":
        words = text.split(" ")
        for pos in (len(words) // 5, len(words) // 2, len(words) * 4 // 5):
            words[pos] = pick(rng, F["near_dup_words"])
        return " ".join(words)
    if how == "punct":
        return text.replace(", ", " , ").replace(". ", ".  ").replace("\n\n", "\n \n").replace(":", " -")
    return text.rstrip() + " " + pick(rng, F["near_dup_appended"])


def _near_dup_msgs(msgs: list[Msg], how: str, rng: random.Random) -> list[Msg]:
    out = [dict(m) for m in msgs]
    out[-2]["content"] = near_dup(out[-2]["content"], how, rng)
    return out


def _planted(rng: random.Random, day: int, base: list[Msg], leak: dict[str, str]) -> dict[str, dict[int, Any]]:
    """The planted records of a day, by file and line: [kind, arguments...] entries of the fixture."""
    makers = {
        "chat": lambda name: spec_chat(rng, name),
        "near_dup": lambda how: base if how == "original" else _near_dup_msgs(base, how, rng),
        "eval_leak": lambda: chat(leak["prompt"], F["eval_leak_answer"].format(**leak)),
        "look_alike": lambda: chat(*F["look_alike"]),
        "empty_reply": lambda: chat(writing.explain_task(rng).user, ""),
        "refusal": lambda: refusal(rng),
        "cut_mid_sentence": lambda: _cut_mid_sentence(rng),
        "unclosed_fence": lambda: _unclosed_fence(rng),
        "mojibake_foreign": lambda: mojibake_foreign(rng),
        "huge": _huge_chat,
    }
    out: dict[str, dict[int, Any]] = {}
    for name, lines in F["planted"][day].items():
        for line, (kind, *args) in lines.items():
            if kind == "raw":  # malformed input, written as it is (latin-1 keeps invalid UTF-8 bytes)
                slot: Any = args[0].encode("latin-1")
            elif kind == "copy":
                slot = Copy(*args)
            elif kind == "record":
                slot = args[0]
            else:
                slot = {"messages": makers[kind](*args), "created_at": _stamp(rng, DEMO_DAYS[day])}
            out.setdefault(name, {})[int(line)] = slot
    return out


def _stamp(rng: random.Random, day: dt.date) -> str:
    return f"{day.isoformat()}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


def _chat_record(rng: random.Random, day: dt.date) -> dict[str, Any]:
    if rng.random() < 0.05:
        rec: dict[str, Any] = {"messages": writing.tool_dialog(rng, day), "tools": list(writing.TOOLS)}
    else:
        rec = {"messages": messages(rng, chat_task(rng))}
    for m in rec["messages"]:
        if m["role"] == "user" and rng.random() < 0.08:
            m["content"] = [{"type": "text", "text": m["content"]}]
    rec["created_at"] = _stamp(rng, day)
    return rec


def write_chat_openai(home: Path, seed: int, leak: dict[str, str]) -> list[int]:
    dirs = day_dirs(home, "chat_openai")
    base = _long_chat(rng_for(seed, "chat_openai", "near-dup-base"))
    files: dict[tuple[int, str], list[Any]] = {}
    for day, sizes in enumerate(F["chat_sizes"]):
        rng = rng_for(seed, "chat_openai", day)
        planted = _planted(rng, day, base, leak)
        for name, size in zip(F["chat_files"], sizes, strict=True):
            files[(day, name)] = place([_chat_record(rng, DEMO_DAYS[day]) for _ in range(size)], planted.get(name, {}))
    resolve(files)
    counts = [0, 0, 0]
    for day, folder in enumerate(dirs):
        day_ids = ids(f"chat-{DEMO_DAYS[day]:%Y%m%d}-")
        for name in F["chat_files"]:
            data, n = serialize(files[(day, name)], day_ids)
            write(folder / name, gz(data) if name.endswith(".gz") else data)
            counts[day] += n
    write(dirs[0] / "empty.jsonl", b"")
    return counts


def write_sharegpt(home: Path, seed: int) -> list[int]:
    dirs, days = day_dirs(home, "sharegpt_export"), []
    for day, size in enumerate((300, 290, 310)):
        rng = rng_for(seed, "sharegpt_export", day)
        stamp = f"sg-{DEMO_DAYS[day]:%m%d}-"
        recs = [
            {
                "id": f"{stamp}{rng.randrange(16**8):08x}",
                "conversations": to_sharegpt(messages(rng, chat_task(rng), 0.15)),
            }
            for _ in range(size)
        ]
        source = days[0] if day else recs  # an exact copy of day 1's row 2, under a new id
        recs.insert(
            (10, 5, 7)[day], {"id": f"{stamp}{rng.randrange(16**8):08x}", "conversations": source[2]["conversations"]}
        )
        if day == 1:
            recs[40]["conversations"] = to_sharegpt(mojibake_foreign(rng))
        days.append(recs)
    for day, (folder, recs) in enumerate(zip(dirs, days, strict=True)):
        data = json.dumps(recs, ensure_ascii=False, indent=1).encode("utf-8")
        write(folder / ("export.json.zst" if day == 2 else "export.json"), zstd(data) if day == 2 else data)
    return [len(r) for r in days]
