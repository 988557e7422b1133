"""Gold memory benchmark: seconds and peak RSS of the gold_sft step on 100k and 400k chat records.

    python benchmarks/bench_gold_memory.py                  # prints the table
    python benchmarks/bench_gold_memory.py --write-readme   # and writes it into README.md and results/gold_memory.md

Records: conversations of ~1 KB of real text, since the machine has no internet: sentences of the docstrings
and other triple-quoted strings of the standard library's and the installed packages' .py files, and of their
READMEs (METADATA), licenses and .rst/.md/.txt files (bench_dedup's corpus), drawn at random into one to three
user/assistant exchanges. They land as JSONL in a fresh PTDATA_HOME under benchmarks/.work/ with a one-source
config, and go through the `ptdata` command only (no ptdata module is imported here): one `ptdata materialize`
for bronze, eval_index, dedup_signatures, silver_sft and the tokenizer, untimed, then gold_sft alone in a
process of its own, whose peak RSS (ru_maxrss from wait4: the largest of that process and the ones it waited
for, its executor's worker processes among them, each counted alone; bench_e2e sums the process tree) is the
figure. Gold that streams keeps it flat as the partition grows: the ratio of the two peaks is the one to
compare across machines (the goal is at most 1.3).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from bench_bronze import _machine, publish
from dedup_corpus import _source_texts

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work" / "gold_memory"
RESULTS = ROOT / "benchmarks" / "results" / "gold_memory.md"
DATE = dt.date(2026, 11, 1)
SOURCE = "chat"
POOL = 300_000  # distinct sentences drawn from; enough that random conversations are not near duplicates
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def sentences(limit: int = POOL) -> list[str]:
    """Up to `limit` distinct sentences of 6-40 words, mostly words, that end a sentence."""
    seen: dict[str, None] = {}
    for text in _source_texts():
        for sentence in _SENTENCE.split(" ".join(text.split())):
            words = sentence.split()
            if not 6 <= len(words) <= 40 or sentence[-1] not in ".!?":
                continue
            if sum(w.strip(".,;:()'\"!?").isalpha() for w in words) < 0.8 * len(words):
                continue
            seen[sentence] = None
            if len(seen) >= limit:
                return list(seen)
    return list(seen)


def _chat(rng: random.Random, pool: list[str], i: int, exchanges: tuple[int, int]) -> dict:
    """`exchanges` (least, most) exchanges: a user turn of one or two sentences, an answer of two to five."""
    turns = []
    if rng.random() < 0.3:
        turns.append({"role": "system", "content": "You are a helpful assistant."})
    for _ in range(rng.randint(*exchanges)):
        turns.append({"role": "user", "content": " ".join(rng.choices(pool, k=rng.randint(1, 2)))})
        turns.append({"role": "assistant", "content": " ".join(rng.choices(pool, k=rng.randint(2, 5)))})
    return {"id": f"r{i}", "messages": turns}


def write_home(home: Path, n: int, pool: list[str], files: int = 4, exchanges: tuple[int, int] = (1, 3)) -> int:
    """A fresh PTDATA_HOME with a one-source config and n records in `files` JSONL files; returns their bytes."""
    shutil.rmtree(home, ignore_errors=True)
    folder = home / "landing" / SOURCE / DATE.isoformat()
    folder.mkdir(parents=True)
    rng = random.Random(n)
    total, per = 0, -(-n // files)
    for f in range(files):
        with open(folder / f"part-{f}.jsonl", "w", encoding="utf-8") as out:
            for i in range(f * per, min((f + 1) * per, n)):
                line = json.dumps(_chat(rng, pool, i, exchanges)) + "\n"
                total += len(line.encode())
                out.write(line)
    (home / "ptdata.yaml").write_text(
        f"start_date: {DATE}\nsources:\n  - {{name: {SOURCE}, regime: sft, kind: files, format: jsonl, license: mit}}\n"
    )
    return total


def _ptdata() -> str:
    """The `ptdata` command of the interpreter running this script (its venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("ptdata")
    found = str(beside) if beside.exists() else shutil.which("ptdata")
    if found is None:
        raise SystemExit("no `ptdata` command: install the project (pip install -e .) into this interpreter's venv")
    return found


def materialize(home: Path, select: str, log: Path) -> tuple[float, int]:
    """`ptdata materialize --select SELECT --partition DATE` in a process of its own; its seconds and peak RSS."""
    env = {k: v for k, v in os.environ.items() if k not in ("PTDATA_CONFIG", "PTDATA_LAKE")}
    env.update(PTDATA_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
    (home / "dagster").mkdir(exist_ok=True)
    cmd = [_ptdata(), "materialize", "--select", select, "--partition", DATE.isoformat()]
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=home)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{log.read_text()[-3000:]}")
    return seconds, usage.ru_maxrss * 1024


def _partition(home: Path, layer: str, table: str) -> Path:
    return home / "lake" / layer / table / f"date={DATE.isoformat()}" / "part-0.parquet"


def measure(n: int, pool: list[str]) -> dict:
    home = WORK / f"n{n}"
    size = write_home(home, n, pool)
    # dedup_signatures reads every regime's bronze: the other regimes have no source and come out empty
    materialize(
        home,
        "group:bronze or key:eval_index or key:dedup_signatures or key:silver_sft or key:tokenizer",
        home / "prepare.log",
    )
    seconds, rss = materialize(home, "key:gold_sft", home / "gold.log")
    gold = pq.ParquetFile(_partition(home, "gold", "gold_sft"))
    records = sum(
        sum(len(ids) for ids in gold.read_row_group(g, columns=["record_ids"]).column(0).to_pylist())
        for g in range(gold.num_row_groups)
    )
    return {
        "records": n,
        "mb": size / 1e6,
        "silver": pq.read_metadata(_partition(home, "silver", "silver_sft")).num_rows,
        "gold_records": records,
        "gold_rows": gold.metadata.num_rows,
        "row_groups": gold.num_row_groups,
        "seconds": seconds,
        "rss_mib": rss / 2**20,
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| records | input MB | silver records | packed in gold | gold rows (row groups) | gold_sft s | "
        "gold_sft peak RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['records']:,} | {r['mb']:.0f} | {r['silver']:,} | {r['gold_records']:,} | "
            f"{r['gold_rows']:,} ({r['row_groups']}) | {r['seconds']:.1f} | {r['rss_mib']:.0f} |"
        )
    if len(rows) > 1:
        ratio = rows[-1]["rss_mib"] / rows[0]["rss_mib"]
        lines.append(
            f"\nPeak RSS {rows[-1]['records']:,} / {rows[0]['records']:,} records: **{ratio:.2f}** (goal: at most 1.3)."
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, nargs="+", default=[100_000, 400_000])
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args()
    pool = sentences()
    rows = []
    for n in args.records:
        rows.append(measure(n, pool))
        print(json.dumps(rows[-1]), flush=True)
    text = (
        table(rows) + f"\n\n_Measured {dt.date.today()} on {_machine()}; seconds and peak RSS are those of the "
        "`ptdata materialize --select key:gold_sft` process (start-up, staging, audits and publish)._"
    )
    publish(
        text, "bench_gold_memory", RESULTS, "Gold memory: `python benchmarks/bench_gold_memory.py`", args.write_readme
    )


if __name__ == "__main__":
    main()
