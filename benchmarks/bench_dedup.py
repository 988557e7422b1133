"""Near-dedup benchmark: quality against exact Jaccard, speed against datasketch, and the dedup_signatures join.

    python benchmarks/bench_dedup.py                  # 100k documents, 10M-record join; writes results/dedup.md
    python benchmarks/bench_dedup.py --docs 20000 --join-records 1000000   # a quick run

Corpus: real text that ships with the interpreter, since the machine has no internet: the docstrings and other
triple-quoted strings of every .py file of the standard library and the installed packages (numpy, scipy,
sqlalchemy, botocore, sympy, ...) and their READMEs (METADATA), licenses and .rst/.md/.txt files, cut at blank
lines into documents of 30-300 words of which at least half are words. It is text written by people, with the
code, tables and boilerplate that instruction data carries too, and none of it was looked at while the dedup
code was written. Byte-identical documents are removed (that is the exact stage's job); the natural near
duplicates that remain (a docstring copied between classes, two versions of a package, the many MIT and BSD
license texts) stay in and count in the ground truth like the planted ones.

Planted near duplicates, a quarter of the documents: copies of other documents with word substitutions,
deletions, insertions, sentence swaps, appended text, or only case/punctuation/spacing changed, aimed at
Jaccard similarities spread over 0.5-1.0; a fifth are copies of copies.

Ground truth: every pair with exact word-5-gram Jaccard ≥ 0.7 over the whole corpus, found by an exact
all-pairs similarity join (prefix filtering: two sets with J ≥ t share a token among the first
|x| - ⌈t|x|⌉ + 1 of each, in one global rarest-first token order) and measured on Python sets of 5-grams hashed
with Python's own string hash, independently of the pipeline's n-gram hash.
  recall    = share of pairs with J ≥ 0.8 of which at least one record is dropped
  precision = share of dropped records that have a partner with J ≥ 0.7

Contenders, each in its own process on the same documents (peak RSS is that process's VmHWM):
  ptdata      dedup_key_text → ngram_hashes → minhash_signatures → band_keys (lsh_bands) → candidate_pairs →
              verify_pairs (exact Jaccard ≥ 0.8) → clusters; drop every record that is not its cluster's survivor
  datasketch  the same key text and 5-grams; MinHash(num_perm=128) per document with update() per shingle
              (permutations generated once and shared, which only helps it); MinHashLSH(threshold=0.8,
              num_perm=128); in (date, record_id) order, query, drop on any hit, else insert
  datasketch (update_batch)  the same with update_batch(): identical signatures, datasketch's faster path

The join: a synthetic dedup_signatures of N records (one row per record: record_id, date, band_keys as a list of
18 uint64, exact_key, reject), hive-partitioned by date, against a new partition of 100k records, 1,000 of which
share band keys with old records, run through silver's own code (see the report).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import xxhash

from ptdata.silver import dedup as d
from ptdata.silver.decontam import EvalIndex, find_contamination_batch, item_ngram
from ptdata.silver.normalize import dedup_key_text

ROOT = Path(__file__).resolve().parents[1]
NGRAM, NUM_PERM, THRESHOLD, PARTNER = 5, 128, 0.8, 0.7
PLANTED_SHARE = 0.25
FILLER_DOCS, EVAL_DOCS = 1000, 2000
FIRST_DAY = dt.date(2026, 10, 1)
_STRINGS = re.compile(r'(?s)("""|\'\'\')(.*?)\1')


# ------------------------------------------------------------------------------------------------ corpus


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


def build_corpus(n_docs: int, seed: int = 20261124) -> tuple[pl.DataFrame, list[tuple[int, int]], list[str]]:
    """n_docs documents (record_id, date, text), a quarter of them planted near duplicates; the planted
    (source row, copy row) pairs; and EVAL_DOCS real documents outside the corpus, for the decontam check."""
    rng = random.Random(seed)
    real = real_documents()
    planted_n = round(n_docs * PLANTED_SHARE)
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


# ------------------------------------------------------------------------------------------------ decontam


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


# ------------------------------------------------------------------------------------------------ contenders


def run_ptdata(corpus: pl.DataFrame) -> dict:
    stages = {}
    t0 = time.perf_counter()
    ids, texts = corpus["record_id"].to_list(), corpus["text"].to_list()
    grams = d.ngram_hashes(texts, NGRAM)
    stages["shingles"] = time.perf_counter() - t0
    t = time.perf_counter()
    sig = d.minhash_signatures(grams, NUM_PERM)
    stages["signatures"] = time.perf_counter() - t
    t = time.perf_counter()
    bands, rows = d.lsh_bands(THRESHOLD, NUM_PERM)
    keys = d.band_key_frame(ids, d.band_keys(sig, bands, rows), corpus["date"])
    pairs = d.candidate_pairs(keys)
    stages["bands + candidates"] = time.perf_counter() - t
    t = time.perf_counter()
    row_of = {rid: i for i, rid in enumerate(ids)}
    verified = d.verify_pairs(pairs, lambda rid: np.unique(grams[row_of[rid]]), THRESHOLD)
    stages["verify"] = time.perf_counter() - t
    t = time.perf_counter()
    survivors = d.clusters(verified, corpus.select("record_id", "date"))
    dropped = survivors.filter(pl.col("record_id") != pl.col("survivor"))["record_id"].to_list()
    stages["clusters"] = time.perf_counter() - t
    return {
        "seconds": time.perf_counter() - t0,
        "dropped": dropped,
        "stages": stages,
        "candidates": pairs.height,
        "verified": verified.height,
        "bands": f"{bands} × {rows}",
    }


def run_datasketch(corpus: pl.DataFrame, batch: bool) -> dict:
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    perms = MinHash(num_perm=NUM_PERM).permutations
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    dropped = []
    for rid, text in corpus.sort("date", "record_id").select("record_id", "text").iter_rows():
        w = dedup_key_text(text).split(" ")
        grams = {" ".join(w[j : j + NGRAM]).encode() for j in range(max(len(w) - NGRAM + 1, 1))}
        m = MinHash(num_perm=NUM_PERM, permutations=perms, scheme="affine32")
        if batch:
            m.update_batch(list(grams))
        else:
            for g in grams:
                m.update(g)
        if lsh.query(m):
            dropped.append(rid)
        else:
            lsh.insert(rid, m)
    return {"seconds": time.perf_counter() - t0, "dropped": dropped, "bands": f"{lsh.b} × {lsh.r}"}


def peak_rss() -> int:
    """This process's peak RSS in bytes. VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a
    worker would report its parent's peak whenever that is higher."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker(kind: str, corpus_path: str, out_path: str) -> None:
    corpus = pl.read_parquet(corpus_path)
    if kind == "ptdata":
        result = run_ptdata(corpus)
    else:
        result = run_datasketch(corpus, batch=kind == "datasketch-batch")
    result["rss"] = peak_rss()
    Path(out_path).write_text(json.dumps(result))


def _subprocess(*args: str) -> dict:
    out = Path(args[-1])
    subprocess.run([sys.executable, __file__, *args], check=True, cwd=ROOT)
    return json.loads(out.read_text())


# ------------------------------------------------------------------------------------------------ join


_JOIN_GENERATE = """
SET threads = 2; SET preserve_insertion_order = false;
COPY (
    SELECT md5(i::VARCHAR) AS record_id, DATE '2025-01-01' + CAST(i * 300 // {n} AS INTEGER) AS date,
           md5('key' || i::VARCHAR) AS exact_key, list_transform(range({bands}), lambda j: hash(i, j)) AS band_keys,
           NULL::VARCHAR AS reject, date AS day
    FROM range({n}) t(i)
) TO '{old}' (FORMAT parquet, PARTITION_BY (day), ROW_GROUP_SIZE 122880);
COPY (
    SELECT md5('new' || k::VARCHAR) AS record_id, DATE '2026-01-01' AS date, md5('newkey' || k::VARCHAR) AS exact_key,
           list_transform(range({bands}), lambda j: CASE WHEN k < {shared} AND j < 3 THEN hash(k * {stride}, j)
                                                         ELSE hash(-1 - k, j) END) AS band_keys,
           NULL::VARCHAR AS reject
    FROM range(100000) t(k)
) TO '{new}' (FORMAT parquet);
"""


def join_worker(step: str, folder: str, n: str, out_path: str) -> None:
    import duckdb

    records = int(n)
    bands, _ = d.lsh_bands(THRESHOLD, NUM_PERM)
    con = duckdb.connect()
    t0 = time.perf_counter()
    result: dict = {}
    if step == "generate":
        shared = 1000
        con.execute(
            _JOIN_GENERATE.format(
                n=records,
                bands=bands,
                old=f"{folder}/old",
                new=f"{folder}/new.parquet",
                shared=shared,
                stride=records // shared - 1,
            )
        )
        result["expected"] = shared
    else:
        # silver's own path: curate.dedup_inputs (exact representatives over all history, band keys shared by two
        # or more of them, in DuckDB under a 1 GB memory limit), then candidate_pairs over the shared keys
        from ptdata.core.lake import Lake
        from ptdata.silver.dedup.history import dedup_inputs

        new = f"{folder}/new.parquet"
        paths = [*sorted(str(p) for p in Path(folder, "old").rglob("*.parquet")), new]
        today, _, shared = dedup_inputs(Lake(folder), paths, new)
        pairs = d.candidate_pairs(shared)
        fresh = today["record_id"].implode()
        result["pairs"] = pairs.filter(pl.col("a").is_in(fresh) | pl.col("b").is_in(fresh)).height
    result["seconds"] = time.perf_counter() - t0
    result["rss"] = peak_rss()
    Path(out_path).write_text(json.dumps(result))


def measure_join(records: int, tmp: Path) -> dict:
    folder = tmp / "signatures"
    folder.mkdir()
    gen = _subprocess("--join-worker", "generate", str(folder), str(records), str(tmp / "gen.json"))
    size = sum(p.stat().st_size for p in folder.rglob("*.parquet"))
    join = _subprocess("--join-worker", "join", str(folder), str(records), str(tmp / "join.json"))
    if join["pairs"] != gen["expected"]:
        raise SystemExit(f"the join found {join['pairs']} pairs, {gen['expected']} were planted")
    return {"records": records, "gen_seconds": gen["seconds"], "bytes": size, **join}


# ------------------------------------------------------------------------------------------------ report


def quality(dropped: set[str], ids: list[str], truth: pl.DataFrame) -> dict:
    row_dropped = np.array([rid in dropped for rid in ids])
    strong = truth.filter(pl.col("jaccard") >= THRESHOLD)
    a, b = strong["a"].to_numpy(), strong["b"].to_numpy()
    caught = row_dropped[a] | row_dropped[b]
    has_partner = np.zeros(len(ids), dtype=bool)
    has_partner[truth["a"].to_numpy()] = True
    has_partner[truth["b"].to_numpy()] = True
    n_dropped = int(row_dropped.sum())
    return {
        "pairs": len(a),
        "recall": float(caught.mean()) if len(a) else 1.0,
        "missed": int((~caught).sum()),
        "dropped": n_dropped,
        "precision": float((row_dropped & has_partner).sum() / n_dropped) if n_dropped else 1.0,
        "false_drops": int((row_dropped & ~has_partner).sum()),
    }


def _histogram(values: list[float]) -> str:
    edges = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    counts = [sum(lo <= v < hi for v in values) for lo, hi in zip(edges, edges[1:], strict=False)]
    counts[-1] += sum(v >= 1.0 for v in values)
    below = sum(v < 0.5 for v in values)
    cells = ", ".join(
        f"[{lo}, {hi}{']' if hi == 1.0 else ')'}: {c:,}" for lo, hi, c in zip(edges, edges[1:], counts, strict=False)
    )
    return cells + (f", < 0.5: {below:,}" if below else "")


def report(n: int, plant_hist: str, truth_seconds: float, res: dict, contamination: dict, join: dict | None) -> str:
    def mib(x: float) -> str:
        return f"{x / 2**20:,.0f}"

    ours = res["ptdata"]
    lines = [
        f"## Near dedup: {n:,} documents (real text, {round(n * PLANTED_SHARE):,} planted near duplicates)",
        "",
        f"Ground truth (exact word-5-gram Jaccard, all pairs, {truth_seconds:.0f} s): "
        f"{res['quality']['pairs']:,} pairs with J ≥ 0.8. Planted pairs by J: {plant_hist}.",
        "",
        "| contender | bands × rows | recall (J ≥ 0.8 pairs) | missed pairs | precision (partner J ≥ 0.7) "
        "| false drops | dropped | seconds | docs/s | speedup | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("ptdata", "datasketch", "datasketch-batch"):
        r, q = res[name], res[name + "_q"]
        label = {"datasketch-batch": "datasketch (update_batch)"}.get(name, name)
        lines.append(
            f"| {label} | {r['bands']} | {q['recall']:.4f} | {q['missed']:,} | {q['precision']:.4f} | "
            f"{q['false_drops']:,} | {q['dropped']:,} | {r['seconds']:.1f} | {n / r['seconds']:,.0f} | "
            f"{r['seconds'] / ours['seconds'] if name != 'ptdata' else 1:.1f}× | {mib(r['rss'])} |"
        )
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in ours["stages"].items())
    lines += [
        "",
        f"ptdata stages: {stages}; {ours['candidates']:,} candidate pairs, {ours['verified']:,} verified (J ≥ 0.8). "
        "speedup = the contender's seconds / ptdata's; both include key text and shingling.",
    ]
    c = contamination
    lines += [
        "",
        f"## Decontamination: {c['items']:,} registered eval items (real held-out documents, 13-grams)",
        "",
        "| leak form | caught |",
        "|---|---:|",
        *(f"| {kind} | {hit:,} / {total:,} |" for kind, (hit, total) in c["caught"].items()),
        f"| the same forms of {c['items']:,} unregistered documents | {c['flagged_other']:,} of "
        f"{c['unregistered_forms'] - 5 * c['overlapping_items']:,} flagged |",
        "",
        f"{c['overlapping_items']:,} of the unregistered documents really share a word run with a registered one "
        f"(licence texts, copied docstrings); {c['flagged_overlapping']:,} of their {5 * c['overlapping_items']:,} "
        "forms are flagged and left out of the row above. A catch is a match whose n-gram is one of the planted "
        "item's own (a twin licence text may win the tie).",
        "",
        f"Index: {c['index_rows']:,} n-grams, built in {c['build_seconds']:.1f} s. One search over the corpus and the "
        f"planted leaks, {c['texts']:,} texts: {c['seconds']:.1f} s ({c['texts'] / c['seconds']:,.0f} texts/s); "
        f"{c['corpus_flagged']:,} corpus documents are flagged, {c['corpus_flagged_without_run']:,} of them without "
        'a word run shared with a registered item: the rest share API-doc boilerplate ("warning: this functionality '
        'is considered unstable…", "seed: integer, random_state, or None…"), licence clauses or package '
        "classifiers with those held-out documents, which is what a 13-gram check is meant to find.",
    ]
    if join:
        lines += [
            "",
            f"## dedup_signatures join: {join['records']:,} old records × 18 band keys against a 100k-record partition",
            "",
            "| old records | parquet size | join seconds | candidate pairs found / planted | join peak RSS MiB | generation seconds |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {join['records']:,} | {join['bytes'] / 1e9:.2f} GB | {join['seconds']:.1f} | {join['pairs']:,} / 1,000 | "
            f"{mib(join['rss'])} | {join['gen_seconds']:.0f} |",
            "",
            "silver's own code (`curate.dedup_inputs`, then `dedup.candidate_pairs`): DuckDB, 2 threads, memory_limit "
            "1GB (spills to disk above it), picks the earliest record of every exact key over all history, unnests "
            "their band keys and keeps the keys two or more records share; Polars links the records of each bucket.",
        ]
    command = f"python benchmarks/bench_dedup.py --docs {n} " + (
        f"--join-records {join['records']}" if join else "--skip-join"
    )
    lines += [
        "",
        f"_Measured {dt.date.today()} on {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}: `{command}`._",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--join-records", type=int, default=10_000_000)
    ap.add_argument("--skip-join", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dedup.md")
    ap.add_argument("--worker", nargs=3, metavar=("KIND", "CORPUS", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--join-worker", nargs=4, metavar=("STEP", "DIR", "N", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(*args.worker)
    if args.join_worker:
        return join_worker(*args.join_worker)

    with tempfile.TemporaryDirectory(prefix="ptdata-bench-dedup-") as tmp_name:
        tmp = Path(tmp_name)
        t = time.perf_counter()
        corpus, planted, evals = build_corpus(args.docs)
        corpus.write_parquet(tmp / "corpus.parquet")
        texts = corpus["text"].to_list()
        plant_hist = _histogram([_pair_jaccard(texts[a], texts[b]) for a, b in planted])
        print(f"corpus: {corpus.height:,} documents in {time.perf_counter() - t:.0f} s", flush=True)
        t = time.perf_counter()
        truth = similar_pairs(texts, PARTNER)
        truth_seconds = time.perf_counter() - t
        print(f"ground truth: {truth.height:,} pairs with J ≥ {PARTNER} in {truth_seconds:.0f} s", flush=True)
        res: dict = {}
        ids = corpus["record_id"].to_list()
        for kind in ("ptdata", "datasketch", "datasketch-batch"):
            res[kind] = _subprocess("--worker", kind, str(tmp / "corpus.parquet"), str(tmp / f"{kind}.json"))
            res[kind + "_q"] = quality(set(res[kind]["dropped"]), ids, truth)
            res["quality"] = res[kind + "_q"]
            print(f"{kind}: {res[kind]['seconds']:.1f} s, {res[kind + '_q']}", flush=True)
        contamination = measure_decontam(texts, evals)
        print(f"decontam: {contamination}", flush=True)
        join = None if args.skip_join else measure_join(args.join_records, tmp)
    text = report(args.docs, plant_hist, truth_seconds, res, contamination, join)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("# Dedup benchmark\n\n" + text + "\n")


if __name__ == "__main__":
    sys.exit(main())
