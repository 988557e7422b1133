"""The decontamination check of the dedup benchmark (benchmarks/bench_dedup.py): eval items planted in the corpus
in the forms a leak takes, and held-out documents planted the same way that must not be flagged."""

from __future__ import annotations

import random
import time

from ptdata.silver.decontam import EvalIndex, find_contamination_batch, item_ngram
from ptdata.silver.normalize import dedup_key_text


def _leaks(item: str, rng: random.Random) -> dict[str, str]:
    """The planted forms of an eval item in training data."""
    words = item.split()
    size = -(-len(words) * 7 // 10)  # 70% of the words, rounded up, from a random start
    start = rng.randrange(len(words) - size + 1)
    return {
        "verbatim": item,
        "re-spaced": "  ".join(item.split(" ")).replace("\n", "\n\n  "),
        "CRLF": item.replace("\n", "\r\n") + "\r\n",
        "inside a longer instruction": f"Answer the question below carefully.\n\n{item}\n\nExplain each step.",
        "70% of the item": " ".join(words[start : start + size]),
    }


def measure_decontam(corpus_texts: list[str], evals: list[str]) -> dict:
    """Half of `evals` registered as an eval set, the other half not; every leak form of both planted among the
    corpus; one search over everything."""
    rng = random.Random(13)
    registered, unregistered = evals[: len(evals) // 2], evals[len(evals) // 2 :]
    t0 = time.perf_counter()
    index = EvalIndex.build([("bench_eval", str(i), text) for i, text in enumerate(registered)], ngram=13)
    build_seconds = time.perf_counter() - t0
    leaks = {"registered": [_leaks(t, rng) for t in registered], "unregistered": [_leaks(t, rng) for t in unregistered]}
    texts = list(corpus_texts)
    where: list[tuple[str, str, int]] = []
    for group, forms in leaks.items():
        for i, by_kind in enumerate(forms):
            for kind, text in by_kind.items():
                texts.append(text)
                where.append((group, kind, i))
    t0 = time.perf_counter()
    found = find_contamination_batch(index, texts)
    seconds = time.perf_counter() - t0
    # the harness's own check of what a match must mean: a run of words (of a size the index uses) shared with a
    # registered item, found here with plain Python sets of word-run strings
    reg_keys = [dedup_key_text(t).split(" ") for t in registered]
    reg_runs = {
        " ".join(w[j : j + k]) for w in reg_keys for k in [item_ngram(len(w), 13)] for j in range(len(w) - k + 1)
    }
    sizes = {item_ngram(len(w), 13) for w in reg_keys}

    def shares_run(text: str) -> bool:
        w = dedup_key_text(text).split(" ")
        return any(" ".join(w[j : j + k]) in reg_runs for k in sizes for j in range(len(w) - k + 1))

    overlapping = {i for i, text in enumerate(unregistered) if shares_run(text)}
    corpus_found = found[: len(corpus_texts)]
    caught: dict[str, list[int]] = {}
    flagged_overlapping = flagged_other = 0
    for (group, kind, i), match in zip(where, found[len(corpus_texts) :], strict=True):
        if group == "registered":
            # registered items include near-identical licence texts: a match on a twin is a catch when the n-gram
            # really is one of this item's
            key = f" {dedup_key_text(registered[i])} "
            hit = match is not None and (match.item_id == str(i) or f" {match.ngram} " in key)
            caught.setdefault(kind, [0, 0])[1] += 1
            caught[kind][0] += hit
        elif match is not None:
            flagged_overlapping += i in overlapping
            flagged_other += i not in overlapping
    return {
        "items": len(registered),
        "index_rows": len(index),
        "build_seconds": build_seconds,
        "caught": caught,
        "unregistered_forms": len(where) - sum(total for _, total in caught.values()),
        "overlapping_items": len(overlapping),
        "flagged_overlapping": flagged_overlapping,
        "flagged_other": flagged_other,
        "corpus_flagged": sum(m is not None for m in corpus_found),
        "corpus_flagged_without_run": sum(
            m is not None and not shares_run(t) for t, m in zip(corpus_texts, corpus_found, strict=True)
        ),
        "texts": len(texts),
        "seconds": seconds,
    }
