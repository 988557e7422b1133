"""PII redaction benchmark: precision/recall per type on the labelled set, and redaction throughput.

    python benchmarks/bench_pii.py            # ~20 MB of generated text; prints the tables
    python benchmarks/bench_pii.py --mb 5     # a quicker run

Throughput is measured on generated documents of four kinds (chat prose, Python code, service logs, config and
forum posts with PII in some of them), one `redact` call per document as silver calls it per text field. The
baseline, in the same run on the same documents, is the least any e-mail scan must do: a plain `re.finditer` of a
simple e-mail regex over each document. The ratio to it is the figure to compare across machines; MB/s alone
depends on the machine's load. Writes the tables to benchmarks/results/pii.md.
"""

from __future__ import annotations

import argparse
import random
import re
import string
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the scoring of the labelled set lives with its tests, which are not installed

from benchmarks.bench_bronze import WORDS  # noqa: E402
from ptdata.silver.pii import PII_TYPES, redact  # noqa: E402
from ptdata_tests.silver.test_pii import TARGET, load_labelled, score_labelled  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "pii.md"
SIMPLE_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
HEX = "0123456789abcdef"


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 22))]
    if rng.random() < 0.3:  # numbers are what make the phone, card and IP scanners work
        words.insert(rng.randrange(len(words)), rng.choice([str(rng.randint(2, 4096)), f"{rng.random():.4f}", "3e-4"]))
    return " ".join(words).capitalize() + rng.choice([".", ".", "?", "!"])


def _pii(rng: random.Random) -> str:
    return rng.choice(
        [
            f"{rng.choice(WORDS)}.{rng.choice(WORDS)}@{rng.choice(['gmail.com', 'acme-corp.com', 'uni.edu'])}",
            f"({rng.randint(201, 989)}) {rng.randint(201, 989)}-{rng.randint(1000, 9999)}",
            f"+44 20 7946 {rng.randint(1000, 9999)}",
            f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            f"ghp_{''.join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))}",
            "postgres://etl:Tr0ub4dor3x@db.internal:5432/app",
            f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        ]
    )


def _chat(rng: random.Random) -> str:
    turns = []
    for _ in range(rng.randint(2, 6)):
        body = " ".join(_sentence(rng) for _ in range(rng.randint(1, 5)))
        if rng.random() < 0.05:
            body += f" You can reach me at {_pii(rng)}."
        turns.append(f"{rng.choice(['user', 'assistant'])}: {body}")
    return "\n".join(turns)


def _code(rng: random.Random) -> str:
    lines = ["import torch", "from dataclasses import dataclass", "", "@dataclass", "class Config:"]
    for _ in range(rng.randint(10, 30)):
        name = rng.choice(WORDS)
        lines.append(
            rng.choice(
                [
                    f"    {name}: int = {rng.randint(0, 65536)}",
                    f"    {name}_mask = 0x{''.join(rng.choice(HEX) for _ in range(8))}",
                    f"    h = x@self.{name}.T + b[{rng.randint(1, 9)}::{rng.randint(2, 9)}]",
                    f"    # see commit {''.join(rng.choice(HEX) for _ in range(40))}",
                    f"    {name} = f'{{{name}:.3f}} at step {{step}}'  # since v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
                    f"    assert abs({name} - {rng.random():.12f}) < 1e-{rng.randint(3, 9)}",
                ]
            )
        )
    return "\n".join(lines)


def _logs(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(10, 30)):
        ts = f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z"
        rid = "-".join("".join(rng.choice(HEX) for _ in range(n)) for n in (8, 4, 4, 4, 12))
        src = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}" if rng.random() < 0.2 else "-"
        lines.append(
            f"{ts} {rng.choice(['INFO', 'WARN', 'DEBUG'])} req={rid} src={src} status={rng.choice([200, 201, 404, 500])} "
            f"latency={rng.randint(1, 999)}ms bytes={rng.randint(100, 10**6)} ts={1700000000 + rng.randint(0, 10**8)}"
        )
    return "\n".join(lines)


def _post(rng: random.Random) -> str:
    parts = [
        f"Re: upgrade to {rng.randint(1, 5)}.{rng.randint(0, 30)}.{rng.randint(0, 9)} broke my pipeline",
        " ".join(_sentence(rng) for _ in range(rng.randint(2, 6))),
        f"Posted 2026-11-{rng.randint(1, 28):02d} 10:{rng.randint(10, 59)} · {rng.randint(1, 999)} views · ${rng.randint(1, 999)}.99",
        f"DATABASE_URL=postgres://app:${{DB_PASSWORD}}@db:5432/app\nWORKERS={rng.randint(1, 64)}\nPORT=8080",
    ]
    if rng.random() < 0.1:
        parts.append(f"Contact: {_pii(rng)}")
    return "\n\n".join(parts)


KINDS = {"chat": _chat, "code": _code, "logs": _logs, "posts": _post}


def documents(total_mb: float, seed: int = 7) -> dict[str, list[str]]:
    """About `total_mb` MB of documents, split evenly across the kinds."""
    rng = random.Random(seed)
    per_kind = total_mb * 1e6 / len(KINDS)
    out: dict[str, list[str]] = {}
    for kind, make in KINDS.items():
        docs, size = [], 0
        while size < per_kind:
            doc = make(rng)
            docs.append(doc)
            size += len(doc.encode())
        out[kind] = docs
    return out


def throughput(docs: dict[str, list[str]]) -> tuple[list[str], Counter[str]]:
    """One table row per kind of document and one for all of them, and the spans redacted per type.

    CPU time of this process (time.process_time), not wall time: other work on the machine then moves the
    figures less, and the ratio to the baseline hardly at all.
    """
    rows, counts = [], Counter()
    total = {"count": 0, "bytes": 0, "redact": 0.0, "baseline": 0.0, "spans": 0}
    for kind, texts in docs.items():
        size = sum(len(d.encode()) for d in texts)
        t0 = time.process_time()
        for d in texts:
            for _ in SIMPLE_EMAIL.finditer(d):
                pass
        t1 = time.process_time()
        found: Counter[str] = Counter()
        for d in texts:
            found.update(redact(d)[1])
        t2 = time.process_time()
        counts.update(found)
        row = {"count": len(texts), "bytes": size, "redact": t2 - t1, "baseline": t1 - t0, "spans": found.total()}
        total = {k: total[k] + row[k] for k in total}
        rows.append(_speed_row(kind, row))
    rows.append(_speed_row("**all**", total))
    return rows, counts


def _speed_row(name: str, r: dict) -> str:
    mb = r["bytes"] / 1e6
    return (
        f"| {name} | {r['count']:,} | {mb:.1f} | {mb / r['redact']:.1f} | {mb / r['baseline']:.1f} | "
        f"{r['redact'] / r['baseline']:.1f}x | {r['spans']:,} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0, help="size of the generated text (default 20)")
    args = parser.parse_args()

    scores = score_labelled(load_labelled())
    quality = [
        "| type | precision | recall | support | predicted |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {t} | {scores[t].precision:.3f} | {scores[t].recall:.3f} | {scores[t].support} | {scores[t].predicted} |"
            for t in PII_TYPES
        ),
    ]
    speed_rows, counts = throughput(documents(args.mb))
    speed = [
        "| documents | count | MB | redact MB/s | baseline MB/s | time redact / baseline | spans redacted |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *speed_rows,
    ]
    report = "\n".join(
        [
            "# PII redaction benchmark",
            "",
            f"Produced by `python benchmarks/bench_pii.py --mb {args.mb:g}` (one process, one `redact` call per "
            "document). Baseline: a plain `re.finditer` of a simple e-mail regex over the same documents.",
            "",
            f"## Precision and recall per type (ptdata_tests/data/pii_labelled.jsonl, target {TARGET})",
            "",
            *quality,
            "",
            "The set is synthetic and its contexts were written alongside the detector (see the docstring of "
            "ptdata_tests/data/make_pii_labelled.py): it checks the rules and their hard negatives, it does not "
            "estimate accuracy on data in the wild.",
            "",
            "## Throughput",
            "",
            *speed,
            "",
            "Spans redacted in the generated text, by type: "
            + ", ".join(f"{t} {n:,}" for t, n in sorted(counts.items())),
            "",
        ]
    )
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
