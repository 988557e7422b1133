"""The near-dedup benchmark's documents and ground truth (benchmarks/bench_dedup.py runs it; see its docstring).

Documents are real text that ships with the interpreter (the machine has no internet), in one of two forms:
  docs  the docstrings and other triple-quoted strings of every .py file of the standard library and the installed
        packages and their READMEs (METADATA), licenses and .rst/.md/.txt files, cut at blank lines into
        documents of 30-300 words of which at least half are words (`real_documents`)
  chat  conversations of ~1 KB as the pipeline deduplicates them (one "role: content" line per turn), of
        sentences of the same texts drawn at random into one to three exchanges (bench_gold_memory's
        generator), the records of the issue's pipeline measurements (`chat_documents`)
Planted near duplicates are edited copies (`_variant`); the ground truth is every pair with exact word-5-gram
Jaccard ≥ 0.7, measured independently of the pipeline's n-gram hash (`similar_pairs`).
"""

from __future__ import annotations

import datetime as dt
import random
import re
import sysconfig
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import xxhash

from ptdata.silver.normalize import dedup_key_text

NGRAM = 5
PLANTED_SHARE = 0.25
FILLER_DOCS, EVAL_DOCS = 1000, 2000
FIRST_DAY = dt.date(2026, 10, 1)
_STRINGS = re.compile(r'(?s)("""|\'\'\')(.*?)\1')


def _source_texts() -> Iterator[str]:
    """Every triple-quoted string of every .py file, and every README (METADATA), license, .rst, .md and .txt
    file, under the interpreter's standard library and site-packages, in path order."""
    paths = sysconfig.get_paths()
    for root in sorted({Path(paths["stdlib"]), Path(paths["purelib"])}):
        for path in sorted(root.rglob("*")):
            is_text = (
                path.name == "METADATA" or path.name.startswith("LICENSE") or path.suffix in (".rst", ".md", ".txt")
            )
            if not (path.suffix == ".py" or is_text) or not path.is_file():
                continue
            try:
                source = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            if is_text:
                yield source
            else:
                yield from (match.group(2) for match in _STRINGS.finditer(source))


def _wordy(doc: str) -> bool:
    """At least half of the tokens are words: prose with some code or numbers, not a table or a listing."""
    tokens = doc.split()
    return sum(t.strip(".,;:()'\"!?").isalpha() for t in tokens) >= len(tokens) / 2


def real_documents() -> list[str]:
    """Distinct documents of 30-300 words, mostly words: the texts of _source_texts cut at blank lines,
    consecutive paragraphs joined until a document has 30 words, paragraphs over 300 words cut in pieces."""
    docs: list[str] = []
    for text in _source_texts():
        current, count = [], 0
        for para in re.split(r"\n\s*\n", text):
            words = para.split()
            if len(words) > 300:
                docs.extend(" ".join(words[i : i + 300]) for i in range(0, len(words), 300))
                continue
            current.append(para.strip())
            count += len(words)
            if count >= 30:
                docs.append("\n\n".join(current))
                current, count = [], 0
    # byte-identical documents are the exact stage's business, not this benchmark's
    return [doc for doc in dict.fromkeys(docs) if 30 <= len(doc.split()) <= 300 and _wordy(doc)]


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def _variant(text: str, rng: random.Random, vocab: list[str], filler: list[str]) -> str:
    """A copy of `text` edited towards a Jaccard similarity drawn from U(0.5, 1.0)."""
    target = rng.uniform(0.5, 1.0)
    words = text.split()
    grams = max(len(words) - NGRAM + 1, 1)
    destroyed = grams * (1 - target) / (1 + target)  # J = (G - x) / (G + x) for x grams replaced
    kind = rng.choices(
        ["substitute", "delete", "insert", "swap", "append", "cosmetic", "mixed"], [3, 2, 2, 1, 2, 1, 2]
    )[0]
    if kind == "cosmetic":  # J = 1 on the key text
        out = text.upper() if rng.random() < 0.5 else text.replace(". ", " .  ").replace(",", " , ")
        return out.replace("\n", "\r\n")
    if kind == "append":
        extra = max(1, round(grams * (1 - target) / target))
        start = rng.randrange(max(len(filler) - extra, 1))
        return text + " " + " ".join(filler[start : start + extra])
    if kind == "swap":
        sentences = _sentences(text)
        if len(sentences) > 2:
            i, j = rng.sample(range(len(sentences)), 2)
            sentences[i], sentences[j] = sentences[j], sentences[i]
            words = " ".join(sentences).split()
            destroyed = max(destroyed - 4 * NGRAM, 0)
        kind = "substitute"
    for _ in range(max(1, round(destroyed / NGRAM))):  # an edit replaces up to NGRAM shingles
        op = kind if kind != "mixed" else rng.choice(["substitute", "delete", "insert"])
        pos = rng.randrange(len(words))
        if op == "substitute":
            words[pos] = rng.choice(vocab)
        elif op == "delete" and len(words) > NGRAM:
            del words[pos]
        else:
            words.insert(pos, rng.choice(vocab))
    return " ".join(words)


def chat_documents(n: int, seed: int) -> list[str]:
    """n distinct conversations of ~1 KB, as sft records are deduplicated: one "role: content" line per turn
    (`dedup.dedup_text`), the turns drawn by bench_gold_memory's generator from its pool of real sentences."""
    from bench_gold_memory import _chat, sentences

    pool, rng = sentences(), random.Random(seed)
    docs: dict[str, None] = {}
    while len(docs) < n:
        turns = _chat(rng, pool, len(docs))["messages"]
        docs["\n".join(f"{t['role']}: {t['content']}" for t in turns)] = None
    return list(docs)


def build_corpus(
    n_docs: int, kind: str = "docs", seed: int = 20261124
) -> tuple[pl.DataFrame, list[tuple[int, int]], list[str]]:
    """n_docs documents (record_id, date, text) of a kind (see the module docstring), a quarter of them planted
    near duplicates; the planted (source row, copy row) pairs; and EVAL_DOCS real documents outside the corpus,
    for the decontam check."""
    rng = random.Random(seed)
    planted_n = round(n_docs * PLANTED_SHARE)
    real = real_documents() if kind == "docs" else chat_documents(n_docs - planted_n + FILLER_DOCS + EVAL_DOCS, seed)
    base_n = n_docs - planted_n
    if len(real) < base_n + FILLER_DOCS + EVAL_DOCS:
        most = int((len(real) - FILLER_DOCS - EVAL_DOCS) / (1 - PLANTED_SHARE))
        raise SystemExit(f"only {len(real):,} real documents here; run with --docs {most} or fewer")
    rng.shuffle(real)
    texts = real[:base_n]
    filler = " ".join(real[base_n : base_n + FILLER_DOCS]).split()  # appended text, from documents not in the corpus
    evals = real[base_n + FILLER_DOCS : base_n + FILLER_DOCS + EVAL_DOCS]
    vocab = sorted({w for t in texts[:5000] for w in t.split() if w.isalpha()})
    planted: list[tuple[int, int]] = []
    while len(planted) < planted_n:
        source = rng.randrange(len(texts)) if not planted or rng.random() > 0.2 else rng.choice(planted)[1]
        texts.append(_variant(texts[source], rng, vocab, filler))
        planted.append((source, len(texts) - 1))
    order = list(range(len(texts)))
    rng.shuffle(order)  # copies are not next to their sources, in rows or in dates
    position = {old: new for new, old in enumerate(order)}
    frame = pl.DataFrame(
        {
            "record_id": [xxhash.xxh3_128_hexdigest(f"bench:{i}".encode()) for i in range(len(texts))],
            "date": [FIRST_DAY + dt.timedelta(days=rng.randrange(30)) for _ in texts],
            "text": [texts[i] for i in order],
        }
    )
    return frame, [(position[a], position[b]) for a, b in planted], evals


# ------------------------------------------------------------------------------------------------ ground truth


def _gram_sets(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(doc, token) of every distinct word 5-gram of every key text, tokens hashed with Python's string hash."""
    docs, toks = array("q"), array("q")
    for i, text in enumerate(texts):
        w = dedup_key_text(text).split(" ")
        grams = {hash(" ".join(w[j : j + NGRAM])) for j in range(max(len(w) - NGRAM + 1, 1))}
        toks.extend(grams)
        docs.extend([i] * len(grams))
    return np.frombuffer(docs, dtype=np.int64), np.frombuffer(toks, dtype=np.int64)


def similar_pairs(texts: list[str], t: float) -> pl.DataFrame:
    """Every pair (a < b) with exact Jaccard ≥ t, with its Jaccard: an all-pairs join with prefix filtering."""
    doc, tok = _gram_sets(texts)
    toks = pl.DataFrame({"doc": doc, "tok": tok})
    toks = (
        toks.join(toks.group_by("tok").len("df"), on="tok")
        .sort(["doc", "df", "tok"])
        .with_columns(pos=pl.int_range(pl.len()).over("doc"), size=pl.len().over("doc"))
    )
    # |x| - ceil(t|x|) + 1, with t nudged down so float rounding can only lengthen the prefix
    prefix = toks.filter(pl.col("pos") < pl.col("size") - (pl.col("size") * (t - 1e-9)).ceil() + 1)
    cands = (
        prefix.select("doc", "tok", "size")
        .join(prefix.select("doc", "tok", "size"), on="tok", suffix="_b")
        .filter(pl.col("doc") < pl.col("doc_b"))
        .filter(pl.min_horizontal("size", "size_b") >= t * pl.max_horizontal("size", "size_b"))
        .select("doc", "doc_b", "size", "size_b")
        .unique(["doc", "doc_b"])
    )
    members = toks.select("doc", "tok")
    found = []
    for lo in range(0, cands.height, 100_000):
        chunk = cands.slice(lo, 100_000).with_row_index("p")
        left = chunk.select("p", "doc").join(members, on="doc").select("p", "tok")
        right = chunk.select("p", doc="doc_b").join(members, on="doc").select("p", "tok")
        inter = left.join(right, on=["p", "tok"]).group_by("p").len("inter")
        found.append(
            chunk.join(inter, on="p")
            .with_columns(jaccard=pl.col("inter") / (pl.col("size") + pl.col("size_b") - pl.col("inter")))
            .filter(pl.col("jaccard") >= t)
            .select(a="doc", b="doc_b", jaccard="jaccard")
        )
    return pl.concat(found) if found else pl.DataFrame(schema={"a": pl.Int64, "b": pl.Int64, "jaccard": pl.Float64})


def _pair_jaccard(x: str, y: str) -> float:
    def grams(s: str) -> set[str]:
        w = dedup_key_text(s).split(" ")
        return {" ".join(w[j : j + NGRAM]) for j in range(max(len(w) - NGRAM + 1, 1))}

    a, b = grams(x), grams(y)
    return len(a & b) / len(a | b)
