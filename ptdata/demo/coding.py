"""Programming questions with working answers: Python tasks whose printed results are computed, SQL, JavaScript.

Each task's wording and code are templates in fixtures/coding.json.zst, formatted with the generator's local
values (the field names in a task's templates are the names in its function); a task whose values are all
plain draws has a `let` table there instead of a function."""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from ptdata.demo.common import F as COMMON
from ptdata.demo.common import Task, fence, fill, fixture, num, pick, some, wording
from ptdata.demo.formulas import draw
from ptdata.demo.people import CITIES, digits, full_name

F = fixture("coding")


def code_prompt(rng: random.Random, task: str, context: Sequence[str] = (), lang: str = "code") -> str:
    """The user's message: an opener, maybe some context, the task and up to two constraints (`lang` code or js)."""
    parts = [pick(rng, F[f"{lang}_openers"])]
    if context and rng.random() < 0.6:
        parts.append(pick(rng, context))
    parts.append(task)
    parts += [
        c.format(n=rng.choice((5_000, 20_000, 250_000, 2_000_000))) for c in some(rng, F[f"{lang}_constraints"], 0, 2)
    ]
    return " ".join(p for p in parts if p)


def code_answer(rng: random.Random, lang: str, code: str, bullets: Sequence[str]) -> str:
    parts = [pick(rng, F["code_intros"]), fence(lang, code)]
    if lang == "python" and rng.random() < 0.3:
        parts.insert(1, pick(rng, F["code_asides"]))
    chosen = some(rng, bullets, 2, 4)
    if rng.random() < 0.5:
        parts.append("A few notes:\n" + "\n".join(f"- {b}" for b in chosen))
    else:
        parts.append(" ".join(chosen))
    parts.append(pick(rng, F["code_closings"]))
    return "\n\n".join(p for p in parts if p)


@dataclass(frozen=True)
class _Domain:
    plural: str
    singular: str
    value: str
    key: str
    keys: list[str]
    lo: float
    hi: float
    decimals: int
    context: list[str]

    def rows(self, rng: random.Random, n: int) -> list[dict[str, Any]]:
        base = rng.randint(100, 8000)
        out = []
        for i in range(n):
            v = round(rng.uniform(self.lo, self.hi), self.decimals)
            out.append({"id": base + i, self.key: pick(rng, self.keys), self.value: v if self.decimals else int(v)})
        return out

    @property
    def human(self) -> str:
        """The value's name in prose: `temperature_c` is "temperature", `nightly_price` is "nightly price"."""
        for unit in ("_c", "_km", "_kg", "_minutes"):
            if self.value.endswith(unit):
                return self.value.removesuffix(unit).replace("_", " ")
        return self.value.replace("_", " ")


_DOMAINS = [_Domain(**d) for d in F["domains"]]


def _py_rows(rows: list[dict[str, Any]]) -> str:
    return "[\n" + "".join(f"    {r!r},\n" for r in rows) + "]"


def _sig(rng: random.Random, name: str, params: str, typed: str, returns: str) -> str:
    """A def line, with type hints half of the time."""
    return f"def {name}({typed}) -> {returns}:" if rng.random() < 0.5 else f"def {name}({params}):"


def _py(rng: random.Random, name: str, v: dict[str, Any], context: Sequence[str] = ()) -> Task:
    """The Python task `name` from its templates, formatted with the generator's values `v`."""
    t = F[name]
    task = fill(rng, t["task"], **v)
    bullets = [b.format(**v) for b in t["bullets"]]
    follow = [(q.format(**v), a.format(**v)) for q, a in t.get("follow", [])]
    return Task(code_prompt(rng, task, context), code_answer(rng, "python", t["code"].format(**v), bullets), follow)


def _py_filter(rng: random.Random) -> Task:
    d = pick(rng, _DOMAINS)
    p, s, v = d.plural, d.singular, d.value
    rows = d.rows(rng, rng.randint(4, 6))
    t = sorted(r[v] for r in rows)[len(rows) // 2]
    fn, arg, tn = fill(rng, F["py_filter"]["fn"], p=p), f"min_{v}", num(t)
    sig = _sig(rng, fn, f"{p}, {arg}", f"{p}: list[dict], {arg}: float", "list[dict]")
    rows_py, kept = _py_rows(rows), [r for r in rows if r[v] >= t]
    ranked = [r["id"] for r in sorted(kept, key=lambda r: r[v], reverse=True)]
    return _py(rng, "py_filter", locals(), d.context)


def _py_group_sum(rng: random.Random) -> Task:
    d = pick(rng, _DOMAINS)
    p, s, v, k = d.plural, d.singular, d.value, d.key
    rows = d.rows(rng, rng.randint(5, 7))
    totals: dict[str, float] = defaultdict(float)
    for r in rows:
        totals[r[k]] += r[v]
    result = {key: round(val, 2) if d.decimals else int(val) for key, val in totals.items()}
    fn, zero = fill(rng, F["py_group_sum"]["fn"], v=v, k=k), "float" if d.decimals else "int"
    sig = _sig(rng, fn, p, f"{p}: list[dict]", f"dict[str, {zero}]")
    rows_py, best = _py_rows(rows), max(result, key=lambda key: result[key])
    best_total = num(result[best])
    return _py(rng, "py_group_sum", locals(), d.context)


def _py_top_k(rng: random.Random) -> Task:
    d = pick(rng, _DOMAINS)
    p, s, v = d.plural, d.singular, d.value
    rows = d.rows(rng, rng.randint(6, 8))
    k = rng.randint(2, 3)
    top = sorted(rows, key=lambda r: r[v], reverse=True)[:k]
    fn, rows_py = fill(rng, F["py_top_k"]["fn"], p=p, k=k, v=v), _py_rows(rows)
    printed = "\n".join(f"# {r['id']} {r[v]}" for r in top)
    return _py(rng, "py_top_k", locals(), d.context)


def _py_csv_total(rng: random.Random) -> Task:
    d = pick(rng, _DOMAINS)
    rows = d.rows(rng, rng.randint(3, 5))
    total = num(round(sum(r[d.value] for r in rows), 2))
    fname = f"{d.plural}_{rng.choice(F['py_csv_total']['files'])}.csv"
    csv_text = fence("", f"id,{d.key},{d.value}\n" + "\n".join(f"{r['id']},{r[d.key]},{r[d.value]}" for r in rows))
    fn = fill(rng, F["py_csv_total"]["fn"], d=d)
    return _py(rng, "py_csv_total", locals())


def _py_dataclass(rng: random.Random) -> Task:
    d = pick(rng, _DOMAINS)
    cls, typ, lo = d.singular.capitalize(), "float" if d.decimals else "int", num(d.lo) if d.lo < 0 else 0
    row = d.rows(rng, 1)[0]
    key, value = row[d.key], row[d.value]
    return _py(rng, "py_dataclass", locals(), d.context)


def _py_dedupe(rng: random.Random) -> Task:
    name, human, items = pick(rng, F["py_dedupe"]["kinds"])
    items = rng.sample(items, len(items))
    fold = rng.random() < 0.6
    seen: set[str] = set()
    out = []
    for x in items:
        key = x.casefold() if fold else x
        if key not in seen:
            seen.add(key)
            out.append(x)
    key_expr, case = ("item.casefold()", " ignoring case") if fold else ("item", "")
    fn, note = fill(rng, F["py_dedupe"]["fn"], name=name), F["py_dedupe"]["notes"][0 if fold else 1]
    return _py(rng, "py_dedupe", locals())


def _flatten(d: dict[str, Any], sep: str, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{sep}{k}" if prefix else k
        out.update(_flatten(v, sep, key) if isinstance(v, dict) else {key: v})
    return out


def _py_flatten(rng: random.Random) -> Task:
    sep, city = pick(rng, (".", "_", "/", "__")), pick(rng, CITIES)
    # the three sample configs are all drawn before one is picked
    nested = pick(
        rng,
        (
            {
                "db": {"host": "localhost", "port": rng.choice((5432, 3306, 6543))},
                "debug": rng.random() < 0.5,
                "cache": {"ttl": rng.choice((60, 300, 900)), "backend": {"name": "redis"}},
            },
            {"user": {"name": full_name(rng), "address": {"city": city, "zip": digits(rng, 5)}}, "active": True},
            {"model": {"name": "resnet50", "layers": rng.choice((18, 34, 50))}, "train": {"lr": 0.001, "epochs": 20}},
        ),
    )
    flat, fn, nested_json = _flatten(nested, sep), pick(rng, F["py_flatten"]["fn"]), json.dumps(nested)
    return _py(rng, "py_flatten", locals())


def _py_word_freq(rng: random.Random) -> Task:
    k = rng.randint(2, 4)
    text = " ".join(some(rng, COMMON["sentences"], 2, 3))
    top = Counter(re.findall(r"[a-z']+", text.lower())).most_common(k)
    return _py(rng, "py_word_freq", locals())


def _py_log_levels(rng: random.Random) -> Task:
    t = F["py_log_levels"]
    lines = []
    for _ in range(rng.randint(5, 7)):
        when = (
            f"2026-{rng.randint(9, 10):02d}-{rng.randint(10, 28):02d} {rng.randint(0, 23):02d}:"
            f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
        )
        msg = pick(rng, t["messages"]).format(n=rng.randint(3, 4000), a=rng.randint(2, 5))
        lines.append(f"{when} {pick(rng, t['levels'])} [{pick(rng, t['services'])}] {msg}")
    counts, sample = dict(Counter(line.split()[2] for line in lines)), fence("", "\n".join(lines))
    return _py(rng, "py_log_levels", locals())


def _merge(intervals: list[tuple[int, int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def _py_merge_intervals(rng: random.Random) -> Task:
    what, iv = pick(rng, F["py_merge_intervals"]["what"]), []
    for _ in range(rng.randint(4, 6)):
        a = rng.randint(8, 17) * 60 + rng.choice((0, 15, 30, 45))
        iv.append((a, a + rng.choice((30, 45, 60, 90, 120))))
    merged = _merge(iv)
    n_iv, n_merged = len(iv), len(merged)
    return _py(rng, "py_merge_intervals", locals())


def _py_spec(name: str, rng: random.Random) -> Task:
    """A Python task whose values are all drawn by its fixture `let` table."""
    return _py(rng, name, draw(rng, F[name], F))


_CODED = {f.__name__[1:]: f for f in (_py_filter, _py_group_sum, _py_top_k, _py_csv_total, _py_dataclass, _py_dedupe)}
_CODED |= {f.__name__[1:]: f for f in (_py_flatten, _py_word_freq, _py_log_levels, _py_merge_intervals)}
PY_TASKS = [_CODED.get(name, partial(_py_spec, name)) for name in F["py_tasks"]]  # in the fixture's order


def py_task(rng: random.Random) -> Task:
    return pick(rng, PY_TASKS)(rng)


# --------------------------------------------------------------------------------------------------- SQL


def sql_task(rng: random.Random) -> Task:
    s, dialect = pick(rng, F["sql_schemas"]), pick(rng, tuple(F["sql_month"]))
    q = pick(rng, F["sql_queries"])
    v = draw(rng, q, F, s=s, dialect=dialect, amount=s["amount"].replace("_", " "), Parent=s["parent"].capitalize())
    t = F["sql_task"]
    task = fill(rng, t["task"], d=dialect, st=s["story"], sc=fence("", t["schema"].format(s=s)), a=q["ask"].format(**v))
    rows, release = rng.randint(2, 900) * 1000, rng.randint(8, 17)
    extra = some(rng, [e.format(s=s, rows=rows, dialect=dialect, release=release) for e in t["extra"]], 0, 2)
    answer = code_answer(rng, "sql", q["query"].format(**v), [n.format(**v) for n in q["notes"]])
    return Task(" ".join([task, *extra]), answer, [(t["follow"][0], t["follow"][1].format(s=s))])


# --------------------------------------------------------------------------------------------------- JavaScript


def _js_group_by(rng: random.Random) -> dict[str, Any]:
    d = pick(rng, _DOMAINS)
    rows = d.rows(rng, 4)
    groups: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        groups[r[d.key]].append(r["id"])
    items = "".join(
        "  { " + ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in r.items()) + " },\n" for r in rows
    )
    key = d.key.capitalize().replace("_", "")
    return {"d": d, "arr": f"[\n{items}]", "Key": key, "keys": json.dumps(list(groups))}


def _price(cur: str, symbol: str, x: float) -> str:
    """A price as Intl.NumberFormat writes it for the locale."""
    if cur == "JPY":  # yen has no minor unit
        return f"{symbol}{round(x):,}"
    if cur == "EUR":  # German grouping: 1.234,56 €
        return f"{x:,.2f} {symbol}".replace(",", "_").replace(".", ",").replace("_", ".")
    return f"{symbol}{x:,.2f}"


def _js_currency(rng: random.Random) -> dict[str, Any]:
    locale, cur, symbol = pick(rng, F["js_currency"]["formats"])
    amounts = [round(rng.uniform(3, 25000), 2) for _ in range(3)]
    calls = "\n".join(f"formatter.format({a});  // '{_price(cur, symbol, a)}'" for a in amounts)
    return {"locale": locale, "cur": cur, "calls": calls}


_JS = {"js_group_by": _js_group_by, "js_currency": _js_currency}  # the others draw their values by fixture formulas


def js_task(rng: random.Random) -> Task:
    name = pick(rng, F["js_tasks"])
    t = F[name]
    v = _JS[name](rng) if name in _JS else draw(rng, t, F)
    ask = wording(rng, t["ask"], **v)
    lang = pick(rng, ("javascript", "js"))
    user = code_prompt(rng, ask, lang="js")
    answer = code_answer(rng, lang, t["code"].format(**v), [n.format(**v) for n in t["notes"]])
    return Task(user, answer, [pick(rng, COMMON["thanks"])])
