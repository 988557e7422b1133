"""Near-dedup benchmark: quality against exact Jaccard, speed against rensa and datasketch, and the dedup_signatures
join.

    python benchmarks/bench_dedup.py                  # 100k documents, 10M-record join; writes results/dedup.md
    python benchmarks/bench_dedup.py --kind chat --skip-join   # 100k ~1 KB chat records; results/dedup_chat.md
    python benchmarks/bench_dedup.py --docs 20000 --join-records 1000000   # a quick run
    --write-readme also writes the near-dedup table into README.md

Documents (dedup_corpus.py): real text that ships with the interpreter, since the machine has no internet, the
docstrings and docs of the standard library and the installed packages: `docs` cuts them into documents of
30-300 words; `chat` draws their sentences into ~1 KB conversations, the records of the pipeline's own case. It
is text written by people, with the code, tables and boilerplate that instruction data carries too, and none of
it was looked at while the dedup code was written. Byte-identical documents are removed (that is the exact
stage's job); the natural near duplicates that remain (a docstring copied between classes, two versions of a
package, the many MIT and BSD license texts) stay in and count in the ground truth like the planted ones.

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
  ptdata      dedup_key_texts → ngram_hashes → minhash_signatures → band_keys (lsh_bands) → candidate_pairs →
              verify_pairs (exact Jaccard ≥ 0.8) → clusters; drop every record that is not its cluster's survivor
  rensa       the same key text and 5-grams; RMinHash.from_token_sets (a batch of documents per call) and
              RMinHashLSH(threshold=0.8, num_perm=128); in (date, record_id) order, query, drop on any hit, else
              insert
  datasketch (update_batch)  the same with MinHash(num_perm=128).update_batch (permutations generated once and
              shared, which only helps it) and MinHashLSH(threshold=0.8, num_perm=128)
  datasketch (update)  the same with update() per shingle: identical signatures, datasketch's slower path

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
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from bench_bronze import write_readme
from dedup_corpus import NGRAM, PLANTED_SHARE, _pair_jaccard, build_corpus, similar_pairs
from dedup_decontam import measure_decontam

from ptdata.silver import dedup as d
from ptdata.silver.normalize import dedup_key_text

ROOT = Path(__file__).resolve().parents[1]
NUM_PERM, THRESHOLD, PARTNER = 128, 0.8, 0.7


# ------------------------------------------------------------------------------------------------ contenders


def run_ptdata(corpus: pl.DataFrame) -> dict:
    stages = {}
    t0 = time.perf_counter()
    ids, texts = corpus["record_id"].to_list(), corpus["text"].to_list()
    grams = d.ngram_hashes(texts, NGRAM)
    stages["shingles"] = time.perf_counter() - t0
    t = time.perf_counter()
    bands, rows = d.lsh_bands(THRESHOLD, NUM_PERM)
    # the band keys read only the first bands × rows permutations, so only those are computed (as silver does)
    sig = d.minhash_signatures(grams, bands * rows)
    stages["signatures"] = time.perf_counter() - t
    t = time.perf_counter()
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


def _gram_strings(text: str) -> set[str]:
    """The distinct word 5-grams of the key text, as strings: the shingles ptdata hashes."""
    w = dedup_key_text(text).split(" ")
    return {" ".join(w[j : j + NGRAM]) for j in range(max(len(w) - NGRAM + 1, 1))}


def run_datasketch(corpus: pl.DataFrame, batch: bool) -> dict:
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    stages = dict.fromkeys(("shingles", "signatures", "lsh"), 0.0)
    perms = MinHash(num_perm=NUM_PERM).permutations
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    dropped = []
    for rid, text in corpus.sort("date", "record_id").select("record_id", "text").iter_rows():
        t1 = time.perf_counter()
        grams = [g.encode() for g in _gram_strings(text)]
        t2 = time.perf_counter()
        m = MinHash(num_perm=NUM_PERM, permutations=perms, scheme="affine32")
        if batch:
            m.update_batch(grams)
        else:
            for g in grams:
                m.update(g)
        t3 = time.perf_counter()
        if lsh.query(m):
            dropped.append(rid)
        else:
            lsh.insert(rid, m)
        stages["shingles"] += t2 - t1
        stages["signatures"] += t3 - t2
        stages["lsh"] += time.perf_counter() - t3
    return {"seconds": time.perf_counter() - t0, "dropped": dropped, "bands": f"{lsh.b} × {lsh.r}", "stages": stages}


def rensa_bands() -> int:
    """rensa's band count: it takes only divisors of num_perm, so among those, the one datasketch's own rule
    picks (equal weights on the false positive and false negative integrals), as datasketch gets 9 × 13."""
    from ptdata.silver.dedup.lsh import _false_negative_probability, _false_positive_probability

    def error(b: int) -> float:
        r = NUM_PERM // b
        return 0.5 * _false_positive_probability(THRESHOLD, b, r) + 0.5 * _false_negative_probability(THRESHOLD, b, r)

    return min((b for b in range(1, NUM_PERM + 1) if NUM_PERM % b == 0), key=error)


def run_rensa(corpus: pl.DataFrame, batch_docs: int = 10_000) -> dict:
    """rensa 0.5's fast path: R-MinHash sketches of a batch of token sets in one call (`from_token_sets`, Rust,
    no Python object per token), an RMinHashLSH index; in (date, record_id) order, query, drop on any hit, else
    insert, as for datasketch."""
    from rensa import RMinHash, RMinHashLSH

    t0 = time.perf_counter()
    stages = dict.fromkeys(("shingles", "signatures", "lsh"), 0.0)
    bands = rensa_bands()
    lsh = RMinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, num_bands=bands)
    ordered = corpus.sort("date", "record_id")
    ids, texts = ordered["record_id"].to_list(), ordered["text"].to_list()
    dropped = []
    for lo in range(0, len(texts), batch_docs):
        t1 = time.perf_counter()
        token_sets = [list(_gram_strings(text)) for text in texts[lo : lo + batch_docs]]
        t2 = time.perf_counter()
        sketches = RMinHash.from_token_sets(token_sets, num_perm=NUM_PERM, seed=1)
        t3 = time.perf_counter()
        for i, m in enumerate(sketches, lo):
            if lsh.query(m):
                dropped.append(ids[i])
            else:
                lsh.insert(i, m)
        stages["shingles"] += t2 - t1
        stages["signatures"] += t3 - t2
        stages["lsh"] += time.perf_counter() - t3
    rows = NUM_PERM // bands
    return {"seconds": time.perf_counter() - t0, "dropped": dropped, "bands": f"{bands} × {rows}", "stages": stages}


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
    elif kind == "rensa":
        result = run_rensa(corpus)
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


CONTENDERS = {
    "ptdata": "ptdata",
    "rensa": "rensa (RMinHash + RMinHashLSH)",
    "datasketch-batch": "datasketch (update_batch)",
    "datasketch": "datasketch (update)",
}


def near_dup_table(n: int, kind: str, plant_hist: str, truth_seconds: float, res: dict) -> str:
    """The near-dedup section of the report: one row per contender, and the seconds of each one's stages."""
    what = {"docs": "real text documents of 30-300 words", "chat": "~1 KB chat records of real sentences"}[kind]
    ours = res["ptdata"]
    lines = [
        f"## Near dedup: {n:,} {what}, {round(n * PLANTED_SHARE):,} of them planted near duplicates",
        "",
        f"Ground truth (exact word-5-gram Jaccard, all pairs, {truth_seconds:.0f} s): "
        f"{res['quality']['pairs']:,} pairs with J ≥ 0.8. Planted pairs by J: {plant_hist}.",
        "",
        "| contender | bands × rows | recall (J ≥ 0.8 pairs) | missed pairs | precision (partner J ≥ 0.7) "
        "| false drops | dropped | seconds | docs/s | × ptdata's time | peak RSS MiB | seconds per stage |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in [c for c in CONTENDERS if c in res]:
        r, q = res[name], res[name + "_q"]
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items())
        lines.append(
            f"| {CONTENDERS[name]} | {r['bands']} | {q['recall']:.4f} | {q['missed']:,} | {q['precision']:.4f} | "
            f"{q['false_drops']:,} | {q['dropped']:,} | {r['seconds']:.1f} | {n / r['seconds']:,.0f} | "
            f"{r['seconds'] / ours['seconds']:.1f}× | {r['rss'] / 2**20:,.0f} | {stages} |"
        )
    lines += [
        "",
        f"ptdata: {ours['candidates']:,} candidate pairs, {ours['verified']:,} verified (exact J ≥ 0.8). Every "
        "contender's seconds include the key text and the shingles (same key text, same word 5-grams); rensa and "
        "datasketch build the 5-gram strings in Python and use the estimated signatures only (no verification), "
        "each with its library's band rule (rensa takes only divisors of 128 bands).",
    ]
    return "\n".join(lines)


def report(
    n: int, kind: str, plant_hist: str, truth_seconds: float, res: dict, contamination: dict, join: dict | None
) -> str:
    def mib(x: float) -> str:
        return f"{x / 2**20:,.0f}"

    lines = [near_dup_table(n, kind, plant_hist, truth_seconds, res)]
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
    command = f"python benchmarks/bench_dedup.py --docs {n} --kind {kind} " + (
        f"--join-records {join['records']}" if join else "--skip-join"
    )
    lines += ["", _measured(command)]
    return "\n".join(lines)


def _measured(command: str) -> str:
    return (
        f"_Measured {dt.date.today()} on {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}: `{command}`._"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--kind", choices=("docs", "chat"), default="docs", help="the documents (dedup_corpus.py)")
    ap.add_argument("--join-records", type=int, default=10_000_000)
    ap.add_argument("--skip-join", action="store_true")
    ap.add_argument("--skip-update", action="store_true", help="leave out datasketch's per-shingle update()")
    ap.add_argument("--out", type=Path, help="default: results/dedup.md, or dedup_chat.md for --kind chat")
    ap.add_argument("--write-readme", action="store_true", help="and the near-dedup table into README.md")
    ap.add_argument("--worker", nargs=3, metavar=("KIND", "CORPUS", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--join-worker", nargs=4, metavar=("STEP", "DIR", "N", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(*args.worker)
    if args.join_worker:
        return join_worker(*args.join_worker)
    out = args.out or ROOT / "benchmarks" / "results" / ("dedup.md" if args.kind == "docs" else "dedup_chat.md")

    with tempfile.TemporaryDirectory(prefix="ptdata-bench-dedup-") as tmp_name:
        tmp = Path(tmp_name)
        t = time.perf_counter()
        corpus, planted, evals = build_corpus(args.docs, args.kind)
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
        for kind in [c for c in CONTENDERS if not (args.skip_update and c == "datasketch")]:
            res[kind] = _subprocess("--worker", kind, str(tmp / "corpus.parquet"), str(tmp / f"{kind}.json"))
            res[kind + "_q"] = quality(set(res[kind]["dropped"]), ids, truth)
            res["quality"] = res[kind + "_q"]
            print(f"{kind}: {res[kind]['seconds']:.1f} s, {res[kind + '_q']}", flush=True)
        contamination = measure_decontam(texts, evals)
        print(f"decontam: {contamination}", flush=True)
        join = None if args.skip_join else measure_join(args.join_records, tmp)
    text = report(args.docs, args.kind, plant_hist, truth_seconds, res, contamination, join)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# Dedup benchmark\n\n" + text + "\n")
    if args.write_readme:
        table = near_dup_table(args.docs, args.kind, plant_hist, truth_seconds, res).split("\n", 2)[2]
        command = f"python benchmarks/bench_dedup.py --docs {args.docs} --kind {args.kind}"
        write_readme(f"{table}\n\n{_measured(command)}", f"bench_dedup_{args.kind}")


if __name__ == "__main__":
    sys.exit(main())
