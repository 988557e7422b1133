"""Writing help: article summaries, e-mails, explainers, travel plans, recipes, other languages and tool calls.

The texts are templates in fixtures/writing.json.zst; an entry with a `let` table draws its values by formulas
(see formulas.draw) and fills its templates with them."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from collections.abc import Mapping
from typing import Any

from ptdata.demo.common import Msg, Task, fill, fixture, lognorm_int, num, pick, some, wording
from ptdata.demo.formulas import draw, render
from ptdata.demo.people import CITIES, FIRST_NAMES, MONTHS, alnum, date_in

F = fixture("writing")
_REPORTS = list(F["reports"].values())


def report(rng: random.Random) -> tuple[str, list[str], list[str]]:
    """A news report: (title, paragraphs, key facts)."""
    spec = pick(rng, _REPORTS)
    v = draw(rng, spec, F)
    title = wording(rng, spec["title"], **v)
    return title, [p.format(**v) for p in spec["paras"]], [f.format(**v) for f in spec["facts"]]


def reactions(rng: random.Random) -> str:
    return render(rng, F["reactions_said"], F)


def whats_next(rng: random.Random) -> str:
    return render(rng, F["whats_next"], F)


def summary_task(rng: random.Random) -> Task:
    title, paras, facts = report(rng)
    doc = "\n\n".join(paras)
    ask = pick(rng, F["summary_asks"]).format(k=len(facts))
    user = f"{ask}\n\n{doc}" if rng.random() < 0.7 else f"{doc}\n\n{ask}"
    answer = "\n".join(f"- {f}" for f in facts)
    if rng.random() < 0.4:
        answer = f"**{title}**\n\n{answer}"
    t = F["summary_followups"]
    missing = t["missing_answer"].format(item=pick(rng, t["missing_items"]))
    return Task(user, answer, [(t["headline"], title + "."), (t["missing"], missing)])


# --------------------------------------------------------------------------------------------------- e-mails


def _email_slots(rng: random.Random) -> dict[str, Any]:
    first = date_in(rng)
    slots = {k: pick(rng, v) for k, v in F["email_fill"].items()}
    return slots | draw(rng, F["email_slots"], F, d1=first)


def _email_text(rng: random.Random, kind: Mapping[str, Any], slots: dict[str, Any], lo: int, hi: int) -> str:
    body = [s for s in kind["body"] if rng.random() < 0.8][:hi] or list(kind["body"][:lo])
    paragraphs = [" ".join(body[:2]), " ".join(body[2:])] if len(body) > 2 and rng.random() < 0.6 else [" ".join(body)]
    greeting = kind["greeting"] or pick(rng, F["email_greetings"])
    signoff, text = pick(rng, F["email_signoffs"]), "\n\n".join(paragraphs)
    # the subject, greeting and body are templates too: fill the e-mail, then its slots
    return F["email"].format(subject=kind["subject"], greeting=greeting, body=text, signoff=signoff).format(**slots)


def email_task(rng: random.Random) -> Task:
    kind, slots = pick(rng, F["emails"]), _email_slots(rng)
    user = pick(rng, kind["asks"]).format(**slots)
    if rng.random() < 0.3:
        user += F["email_my_name"].format(**slots)
    parts = (pick(rng, F["email_intros"]), _email_text(rng, kind, slots, 3, 5), pick(rng, F["email_tips"]))
    (shorter, tighter), (formal, of_course) = F["email_followups"]
    short = tighter + _email_text(rng, kind, slots, 2, 2)
    stiff = _email_text(rng, kind, slots, 3, 5)
    for casual, polite in F["email_formal"]:
        stiff = stiff.replace(casual, polite)
    return Task(user, "\n\n".join(p for p in parts if p), [(shorter, short), (formal, of_course + stiff)])


# --------------------------------------------------------------------------------------------------- explainers


def topic_example(rng: random.Random, topic: Mapping[str, Any]) -> str:
    """A worked example with drawn numbers for an explainer topic."""
    return topic["example"]["text"].format(**draw(rng, topic["example"], F))


def explain_task(rng: random.Random) -> Task:
    t = pick(rng, F["topics"])
    opener = pick(rng, F["explain_openers"]).format(who=pick(rng, F["explain_who"]))
    user = f"{opener} {pick(rng, t['asks'])}".strip()
    picked = sorted(rng.sample(range(len(t["facts"])), lognorm_int(rng, 3, 0.3, 2, 4)))
    facts = [t["facts"][i] for i in picked]
    facts.insert(rng.randint(1, len(facts)), topic_example(rng, t))
    if rng.random() < 0.4:
        answer = pick(rng, F["explain_intros"]) + "\n\n" + "\n".join(f"- {f}" for f in facts)
    else:
        cut = max(1, len(facts) // 2)
        answer = " ".join(facts[:cut]) + "\n\n" + " ".join(facts[cut:])
    if rng.random() < 0.4:
        answer += f"\n\n{pick(rng, F['explain_simple_leads'])} {t['simple']}"
    source, answer_source = F["explain_source"]
    follow = [(pick(rng, F["explain_simpler"]), t["simple"]), (source, answer_source.format(name=t["name"]))]
    return Task(user.lstrip(), answer.strip(), follow)


# --------------------------------------------------------------------------------------------------- travel


def travel_task(rng: random.Random) -> Task:
    c = pick(rng, F["city_guides"])
    days, month, who = rng.randint(2, 4), pick(rng, MONTHS), pick(rng, F["companions"])
    t = F["travel"]
    user = fill(rng, t["asks"], c=c["name"], d=days, m=month, w=who, x=pick(rng, F["travel_constraints"]))
    user = user.replace("  ", " ").strip()
    sights, foods = rng.sample(c["sights"], min(len(c["sights"]), days + 2)), rng.sample(c["foods"], len(c["foods"]))
    lines = [fill(rng, t["intros"], name=c["name"], month=month, days=days)]
    for d in range(days):
        then = t["then"].format(sight=sights[d + 1]) if d + 1 < len(sights) and rng.random() < 0.5 else "."
        area, food = c["areas"][d % len(c["areas"])], foods[d % len(foods)]
        lines.append(t["day"].format(n=d + 1, sight=sights[d], food=food, area=area, then=then))
    lines += [t["transport"].format(c=c), t["tips"].format(tips=" ".join(some(rng, F["travel_tips"], 1, 2)))]
    people = 2 if "partner" in who else 1
    budget = t["budget"].format(c=c, days=days, total=c["daily"] * days * people, who=t["people"][people - 1])
    return Task(user, "\n\n".join(lines), [(t["budget_ask"].format(c=c), budget)])


# --------------------------------------------------------------------------------------------------- cooking


def ingredient(q: float, unit: str, name: str) -> str:
    """An amount as a recipe writes it; a name "egg|eggs" is counted in whole pieces."""
    singular, _, plural = name.partition("|")
    if unit or not plural:
        return f"{num(round(q, 2)) if q < 10 else round(q)} {unit + ' ' if unit else ''}{name}"
    n = math.ceil(q - 1e-9)
    return f"{n} {singular if n == 1 else plural}"


def recipe_task(rng: random.Random) -> Task:
    r, t = pick(rng, F["recipes"]), F["recipe"]
    people = rng.choice([n for n in (1, 2, 3, 4, 5, 6, 8, 10, 12) if n != r["serves"]])
    scale, diet = people / r["serves"], pick(rng, F["diets"])
    user = fill(rng, t["asks"], d=r["dish"], n=people, x=diet)
    ings = "\n".join(f"- {ingredient(q * scale, u, name)}" for q, u, name in r["ingredients"])
    steps = [pick(rng, pair) for pair in r["steps"]]
    method = "\n".join(f"{i}. {st}" for i, st in enumerate(steps, 1)) if rng.random() < 0.7 else " ".join(steps)
    note = next((v for k, v in F["diet_notes"].items() if k in diet.lower()), "")
    intro = t["intro"].format(hello=pick(rng, t["hellos"]), dish=r["dish"].capitalize(), n=people, r=r).strip()
    heads = pick(rng, t["ingredient_heads"]), pick(rng, t["method_heads"])
    parts = [intro, f"{heads[0]}\n{ings}", f"{heads[1]}\n{method}", note, " ".join(some(rng, r["tips"], 1, 2))]
    if rng.random() < 0.5:
        parts.insert(1, t["times"].format(r=r))
    follow = [(t["leftovers"][0], t["leftovers"][1].format(r=r, days=rng.randint(2, 4)))]
    return Task(user.strip(), "\n\n".join(p for p in parts if p), follow)


# --------------------------------------------------------------------------------------------------- other languages


def foreign_task(rng: random.Random) -> Task:
    if rng.random() < 0.6:
        _, items, (lo, hi, decimals, comma), asks, answer = pick(rng, F["foreign_math"])
        n, p = rng.randint(2, 15), round(rng.uniform(lo, hi), decimals)
        t = round(n * p, 2)
        b = next(x for x in (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000) if x > t)

        def fmt(x: float) -> str:
            text = f"{x:.{decimals}f}"
            return text.replace(".", ",") if comma else text

        slots = dict(
            n=n, i=pick(rng, items), p=fmt(p), t=fmt(t), b=b, r=fmt(round(b - t, 2)), name=pick(rng, FIRST_NAMES)
        )
        return Task(pick(rng, asks).format(**slots), answer.format(**slots), [])
    _, ask, facts = pick(rng, F["foreign_tips"])
    c, m, d = pick(rng, CITIES), pick(rng, MONTHS), rng.randint(2, 14)
    reply = [facts[0], facts[1], *some(rng, facts[2:], 2, 4)]
    return Task(ask.format(c=c, m=m, d=d), " ".join(reply).format(c=c, m=m, d=d), [])


# --------------------------------------------------------------------------------------------------- tool calls


def tool_dialog(rng: random.Random, day: dt.date) -> list[Msg]:
    """A user question answered through one function call: the call, the tool's result and the final answer."""
    spec = pick(rng, list(F["tool_calls"].values()))
    v = draw(rng, spec, F, day=day)
    ask = {"role": "user", "content": fill(rng, spec["ask"], **v)}
    final = {"role": "assistant", "content": wording(rng, spec["final"], **v)}
    args, result = ({k: v[name] for k, name in spec[part].items()} for part in ("args", "result"))
    cid, arguments = "call_" + alnum(rng, 24), json.dumps(args, ensure_ascii=False)
    call = {"id": cid, "type": "function", "function": {"name": spec["name"], "arguments": arguments}}
    tool = {"role": "tool", "tool_call_id": cid, "content": json.dumps(result, ensure_ascii=False)}
    return [ask, {"role": "assistant", "content": None, "tool_calls": [call]}, tool, final]


TOOLS = F["tools"]
