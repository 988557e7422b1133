"""Web and personal text: forum posts, notes and article pages, and the forum_dump, notes_txt and web_docs
sources. Texts with drawn values are `let` specs in fixtures/web.json.zst; planted records and notes are listed
there by day and line (or path)."""

from __future__ import annotations

import datetime as dt
import html
import random
from collections import ChainMap, Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ptdata.demo import writing
from ptdata.demo.chat import near_dup
from ptdata.demo.common import F as COMMON
from ptdata.demo.common import fixture, mojibake, pick, rng_for, slug, some
from ptdata.demo.files import DEMO_DAYS, Copy, day_dirs, ids, place, resolve, serialize, write
from ptdata.demo.formulas import draw, render
from ptdata.demo.people import CITIES, alnum, ascii_fold, date_in, full_name, pretty_date

F = fixture("web")
_BANKS = ChainMap(F, writing.F)


def _text(rng: random.Random, spec: Mapping[str, Any], **given: Any) -> str:
    text = render(rng, spec, _BANKS, forum_author=lambda: forum_author(rng), **given)
    return mojibake(text) if spec.get("mojibake") else text


def forum_author(rng: random.Random) -> str:
    return _text(rng, F["forum_author"])


def _forum_hobby(rng: random.Random, hobby: str) -> str:
    lines = some(rng, F["hobbies"][hobby], 3, 5)
    slots = draw(rng, F["hobby_slots"], F)
    text = " ".join(line.format(**slots) for line in lines)
    if rng.random() < 0.3:  # the lead-in is a template too, formatted with the text
        text = f"{pick(rng, ('Update:', 'Long time lurker, first post.', 'Week {k} report.'))} {text}".format(**slots)
    return text


def forum_post(rng: random.Random) -> tuple[str, str]:
    """A post and the forum it was posted on."""
    kind = rng.choices(("tech", "reply", "hobby", "review"), weights=(3, 2, 4, 2))[0]
    if kind == "hobby":
        hobby = pick(rng, tuple(F["hobbies"]))
        return F["hobby_sites"][hobby], _forum_hobby(rng, hobby)
    text = _text(rng, F[f"forum_{kind}"])
    return pick(rng, ("forum.tinkerhub.net", "community.gadgetry.io")), text


def _long_forum(rng: random.Random) -> str:
    while True:
        hobby = pick(rng, tuple(F["hobbies"]))
        posts = [_text(rng, F["forum_tech"]), _text(rng, F["forum_reply"]), _forum_hobby(rng, hobby)]
        text = " ".join([*posts, _forum_hobby(rng, hobby), _text(rng, F["forum_review"])])
        if len(text.split()) >= 200:
            return text


def _forum_planted(rng: random.Random, day: int, base: str) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for line, (kind, *args) in F["forum_planted"][day].items():
        if kind == "copy":
            out[int(line)] = Copy(*args)
        elif kind == "near_dup":
            out[int(line)] = {"text": base if args[0] == "original" else near_dup(base, args[0], rng)}
        else:
            out[int(line)] = {"text": _text(rng, F["forum_pii"][args[0]])}
    return out


def write_forum(home: Path, seed: int) -> list[int]:
    dirs = day_dirs(home, "forum_dump")
    base = _long_forum(rng_for(seed, "forum_dump", "near-dup-base"))
    files: dict[tuple[int, str], list[Any]] = {}
    for day, size in enumerate((200, 205, 195)):
        rng = rng_for(seed, "forum_dump", day)
        normal = [{"text": text, "site": site} for site, text in (forum_post(rng) for _ in range(size))]
        files[(day, "posts-000.jsonl")] = place(normal, _forum_planted(rng, day, base))
        for slot in files[(day, "posts-000.jsonl")]:
            if isinstance(slot, dict):
                site = slot.pop("site", "forum.tinkerhub.net")
                url = f"https://{site}/t/{slug(' '.join(slot['text'].split()[:6]))[:48]}/"
                slot.update(author=forum_author(rng), url=url + str(rng.randint(1000, 99999)))
    resolve(files)
    counts = []
    for day, folder in enumerate(dirs):
        data, n = serialize(files[(day, "posts-000.jsonl")], ids(f"post-{DEMO_DAYS[day]:%m%d}-"))
        write(folder / "posts-000.jsonl", data)
        counts.append(n)
    return counts


# --------------------------------------------------------------------------------------------------- notes


def _note_journal(rng: random.Random) -> str:
    d = date_in(rng)
    lines = some(rng, F["journal"], 3, 5)
    slots = draw(rng, F["journal_slots"], _BANKS)
    return f"{pretty_date(d)}, {d.year}\n\n" + " ".join(x.format(**slots) for x in lines) + "\n"


def _note(rng: random.Random, kind: str) -> str:
    if kind == "journal":
        return _note_journal(rng)
    return _text(rng, F["notes"][kind], example=lambda topic: writing.topic_example(rng, topic))


def write_notes(home: Path, seed: int) -> list[int]:
    counts = []
    for day, folder in enumerate(day_dirs(home, "notes_txt")):
        rng = rng_for(seed, "notes_txt", day)
        docs = {}
        for i in range(100):
            name, kind, _ = rng.choices(F["note_kinds"], weights=[k[2] for k in F["note_kinds"]])[0]
            docs[f"notes/{'ab'[i // 50]}/{i % 50:03d}-{name}.txt"] = _note(rng, kind)
        for path, kind in F["notes_planted"][day].items():
            prefix = path.rsplit("-", 1)[0]
            docs = {k: v for k, v in docs.items() if not k.startswith(prefix + "-")}
            docs[path] = _note(rng, kind)
        for path in sorted(docs):
            write(folder / path, docs[path].encode("utf-8"))
        counts.append(len(docs))
    return counts


# --------------------------------------------------------------------------------------------------- web pages


def _article(rng: random.Random, topic: Mapping[str, Any] | None) -> tuple[str, list[str]]:
    """A news report, or a travel or recipe post when `topic` is a city guide or a recipe."""
    if topic is None:
        title, paras, _ = writing.report(rng)
        lead = pick(rng, F["background_leads"])
        background = " ".join(some(rng, writing.F["background"], 2, 3)).format(
            city=pick(rng, CITIES), n=rng.randint(2, 9)
        )
        return title, [*paras, writing.reactions(rng), f"{lead} {background}", writing.whats_next(rng)]
    if "dish" in topic:
        spec = F["recipe_post"]
        ingredients = ", ".join(writing.ingredient(q, u, n) for q, u, n in topic["ingredients"])
        v = draw(rng, spec, _BANKS, r=topic, ingredients=ingredients)
    else:
        spec = F["city_post"]
        v = draw(rng, spec, _BANKS, c=topic)
    return v["title"], [p.format(**v) for p in spec["paras"]]


def _long_article(rng: random.Random) -> tuple[str, list[str]]:
    while True:
        title, paras, _ = writing.report(rng)
        paras.append(writing.reactions(rng))
        paras.append(" ".join(writing.F["background"]).format(city=pick(rng, CITIES), n=rng.randint(2, 9)))
        official, a = pick(rng, writing.F["quotes_official"]), full_name(rng)
        ceo, b = pick(rng, writing.F["quotes_ceo"]), full_name(rng)
        paras.append(F["long_article_quotes"].format(official=official, a=a, ceo=ceo, b=b))
        if sum(len(p.split()) for p in paras) >= 250:
            return title, paras


def _near_dup_paras(paras: list[str], how: str, rng: random.Random) -> list[str]:
    if how == "punct":
        return [near_dup(p, how, rng) for p in paras]
    if how == "words":
        mid = len(paras) // 2
        return [*paras[:mid], near_dup(paras[mid], how, rng), *paras[mid + 1 :]]
    return [*paras[:-1], near_dup(paras[-1], how, rng)]


def _html_page(rng: random.Random, site: list[str], title: str, paras: list[str], day: dt.date) -> str:
    name, domain = site
    author, mins = full_name(rng), max(2, sum(len(p.split()) for p in paras) // 200)
    nav = "".join(F["nav_item"].format(slug=n.lower(), name=n) for n in rng.sample(F["nav"], 6))
    heads = [pick(rng, COMMON["headlines"]).format(city=pick(rng, CITIES), n=rng.randint(3, 12)) for _ in range(4)]
    related = "".join(F["nav_item"].format(slug=slug(t), name=t) for t in heads)
    body = "\n".join(f"      <p>{html.escape(p, quote=False)}</p>" for p in paras)
    css, title, day_text = alnum(rng, 8, "0123456789abcdef"), html.escape(title, quote=False), day.isoformat()
    return F["html_page"].format(**locals())


def write_web_docs(home: Path, seed: int) -> list[int]:
    base_title, base = _long_article(rng_for(seed, "web_docs", "near-dup-base"))
    guides = [*writing.F["city_guides"], *writing.F["recipes"]]  # each guide and recipe is posted once
    rng_for(seed, "web_docs", "topics").shuffle(guides)
    counts = []
    for day, folder in enumerate(day_dirs(home, "web_docs")):
        rng = rng_for(seed, "web_docs", day)
        topics: list[Mapping[str, Any] | None] = [*guides[day::3]]
        topics += [None] * ((38, 40, 38)[day] - len(topics))
        rng.shuffle(topics)
        pages = [(pick(rng, F["sites"]), *_article(rng, t)) for t in topics]
        how, site = (("words", 1), ("punct", 2), ("append", 3))[day]  # the near-duplicate and the site it is on
        if day == 0:
            pages.insert(3, (F["sites"][0], base_title, base))
        pages.insert(17, (F["sites"][site], base_title, _near_dup_paras(base, how, rng)))
        used: Counter[str] = Counter()
        for site_, title, paras in pages:
            name = slug(ascii_fold(title))[:70].rstrip("-")
            used[name] += 1
            path = folder / (f"{name}.html" if used[name] == 1 else f"{name}-{used[name]}.html")
            write(path, _html_page(rng, site_, title, paras, DEMO_DAYS[day]).encode("utf-8"))
        counts.append(len(pages))
    return counts
