"""Gold benchmarks: packing 1M sequences, and the tokenize-and-mask stage against raw encode_batch_fast.

    python benchmarks/bench_gold.py                  # prints both tables
    python benchmarks/bench_gold.py --write-readme   # and writes them into README.md

Packing: 1,000,000 sequence lengths from log-normal distributions (the shape of real chat and document token
counts), rows of 4,096 tokens. Naive padding (one sequence a row), first-fit in arrival order, and ptdata's
best-fit decreasing, on the same lengths in one process; efficiency = real tokens / row capacity.

Tokenize and mask: synthetic chat records (bench_bronze's generator) rendered with the chatml template and
encoded with their loss masks by `encode_segments`, against `Tokenizer.encode_batch_fast` of the same
rendered strings (no offsets: the least any tokenization must do), in the same process, with a byte-level BPE of 8,192 tokens
trained on the records first. Best of three runs each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time

import numpy as np
from bench_bronze import _chat, _machine, write_readme

from ptdata.gold.pack import pack_best_fit, pack_first_fit
from ptdata.gold.templates import ChatML
from ptdata.gold.tokenize import encode_segments, train_bpe

SEQ_LEN = 4096
# (name, log-normal mu, sigma): median e^mu tokens
DISTRIBUTIONS = [("chat, median 400", 6.0, 0.9), ("documents, median 1,100", 7.0, 1.1)]


def bench_packing(n: int) -> list[dict]:
    out = []
    for name, mu, sigma in DISTRIBUTIONS:
        rng = np.random.default_rng(20261124)
        lengths = np.clip(rng.lognormal(mu, sigma, n).astype(np.int64), 16, SEQ_LEN)
        keys = [f"{i:08d}" for i in range(n)]
        total = int(lengths.sum())
        rows = {"padding": (n, 0.0)}
        t0 = time.perf_counter()
        first = pack_first_fit(lengths, SEQ_LEN)
        rows["first-fit"] = (len(first), time.perf_counter() - t0)
        t0 = time.perf_counter()
        best = pack_best_fit(lengths, keys, SEQ_LEN)
        rows["best-fit decreasing (ptdata)"] = (len(best), time.perf_counter() - t0)
        for method, (count, seconds) in rows.items():
            out.append(
                {
                    "distribution": name,
                    "method": method,
                    "rows": count,
                    "efficiency": total / (count * SEQ_LEN),
                    "seq_per_s": n / seconds if seconds else None,
                }
            )
    return out


def bench_tokenize(n: int) -> dict:
    rng = random.Random(n)
    records = [_chat(rng, i)["messages"] for i in range(n)]
    template = ChatML()
    tok = train_bpe(("\n".join(m["content"] for m in r) for r in records[:20_000]), 8192)
    rendered = [template.render(r) for r in records]
    tokens = sum(len(e.ids) for e in tok.encode_batch(rendered[:1000], add_special_tokens=False))

    def raw() -> float:
        t0 = time.perf_counter()
        tok.encode_batch_fast(rendered, add_special_tokens=False)
        return time.perf_counter() - t0

    def ours() -> float:
        t0 = time.perf_counter()
        encode_segments(tok, [template.segments(r) for r in records])
        return time.perf_counter() - t0

    base = min(raw() for _ in range(3))
    mine = min(ours() for _ in range(3))
    return {"records": n, "raw_s": base, "ours_s": mine, "ratio": mine / base, "tokens_per_record": tokens / 1000}


def tables(packing: list[dict], tokenize: dict, n: int) -> str:
    lines = [
        f"Packing {n:,} sequences into rows of {SEQ_LEN:,} tokens:",
        "",
        "| lengths | method | rows | efficiency | sequences/s |",
        "|---|---|---:|---:|---:|",
    ]
    for r in packing:
        speed = f"{r['seq_per_s']:,.0f}" if r["seq_per_s"] else "—"
        lines.append(f"| {r['distribution']} | {r['method']} | {r['rows']:,} | {r['efficiency']:.4f} | {speed} |")
    t = tokenize
    lines += [
        "",
        f"Tokenize and mask, {t['records']:,} chat records (~{t['tokens_per_record']:.0f} tokens each): "
        f"`encode_batch_fast` of the rendered strings {t['raw_s']:.2f} s, ptdata's render + encode + loss mask "
        f"{t['ours_s']:.2f} s: **{t['ratio']:.2f}×** the raw encode.",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequences", type=int, default=1_000_000)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args()
    text = tables(bench_packing(args.sequences), bench_tokenize(args.records), args.sequences)
    text += f"\n\n_Measured {dt.date.today()} on {_machine()}._"
    print(text)
    if args.write_readme:
        write_readme(text, "bench_gold")


if __name__ == "__main__":
    main()
