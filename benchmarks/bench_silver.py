"""Silver benchmark: records/s and peak RSS of the silver layer over two daily partitions of chat records.

    python benchmarks/bench_silver.py                  # 100k records, prints a table
    python benchmarks/bench_silver.py --write-readme   # and writes it into README.md

Two days of synthetic chat records (bench_bronze's generator, ~1.15 KB each); a tenth of the second day copies a
first-day record exactly and another tenth with two words changed, so the second day's silver dedups against
the first. Bronze is built first (untimed). Then, through Dagster in one process, eval_index, dedup_signatures
and silver_sft for both days in one run, timed per asset from their metadata.

The baseline, in the same process and on the same bronze records: one pass of `prepare_record` (normalize and
redact every text field), the least work a silver layer that redacts PII must do per record. The ratio to it
is the figure to compare across machines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_bronze import _chat, _machine, write_readme

ROOT = Path(__file__).resolve().parents[1]
DAYS = (dt.date(2026, 11, 1), dt.date(2026, 11, 2))


def write_landing(home: Path, n: int) -> None:
    rng = random.Random(n)
    first = [_chat(rng, i) for i in range(n // 2)]
    second = [_chat(rng, i) for i in range(n // 2, n)]
    for i in range(0, len(second), 10):  # every tenth: an exact copy of a first-day record, under another id
        second[i] = {**rng.choice(first), "id": second[i]["id"]}
    for i in range(5, len(second), 10):  # and every tenth plus five: a copy with two words changed
        msgs = [dict(m) for m in rng.choice(first)["messages"]]
        words = msgs[-1]["content"].split()
        for _ in range(2):
            words[rng.randrange(len(words))] = "changed"
        msgs[-1]["content"] = " ".join(words)
        second[i] = {"id": second[i]["id"], "messages": msgs}
    for day, records in zip(DAYS, (first, second), strict=True):
        folder = home / "landing" / "chat" / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "part-0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (home / "ptdata.yaml").write_text(
        f"start_date: {DAYS[0]}\nsources:\n  - {{name: chat, regime: sft, kind: files, format: jsonl, license: mit}}\n"
    )


_RUN = """
import json, resource, sys, time
from pathlib import Path
import dagster as dg
from ptdata.core.config import Settings
from ptdata.core.lake import Lake, TablePartition
from ptdata.defs.runs import execute
from ptdata.silver.pii import Allowlist
from ptdata.silver.pipeline import prepare_record
home = Path(sys.argv[1])
s = Settings(home=home, config_path=home / "ptdata.yaml", lake=str(home / "lake"), engine="local")
days = ("2026-11-01", "2026-11-02")
with dg.DagsterInstance.ephemeral() as inst:
    assert execute(s, "group:bronze", days[0], days[1], inst).success
    lake, allow = Lake(s.lake), Allowlist.from_config({})
    t0 = time.perf_counter(); n = 0
    for d in days:
        pf = lake.parquet_file(lake.path(TablePartition("bronze", "bronze_sft", __import__("datetime").date.fromisoformat(d))))
        for i in range(pf.num_row_groups):
            for rec in pf.read_row_group(i).to_pylist():
                prepare_record("sft", rec, allow); n += 1
    base = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = execute(s, "key:eval_index or key:dedup_signatures or key:silver_sft", days[0], days[1], inst)
    wall = time.perf_counter() - t0
    assert result.success
    meta = {e.asset_key.path[0]: e.event_specific_data.materialization.metadata for e in result.get_asset_materialization_events()}
    sig, silver = meta["dedup_signatures"], meta["silver_sft"]
print(json.dumps({
    "records": n, "baseline_s": base, "wall_s": wall,
    "signatures_s": sig["seconds"].value, "silver_s": silver["seconds"].value,
    "rejected": silver["rejected_by_reason"].data,
    "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
"""


def measure(n: int, work: Path) -> dict:
    home = work / f"n{n}"
    write_landing(home, n)
    out = subprocess.run([sys.executable, "-c", _RUN, str(home)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    lines = [
        "| records | dedup_signatures s | silver_sft s | silver layer records/s | one prepare pass s (baseline) "
        "| silver / baseline time | peak RSS MiB | rejected |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        total = r["signatures_s"] + r["silver_s"]
        rejected = ", ".join(f"{k} {v:,}" for k, v in sorted(r["rejected"].items()))
        lines.append(
            f"| {r['records']:,} | {r['signatures_s']:.1f} | {r['silver_s']:.1f} | {r['records'] / total:,.0f} | "
            f"{r['baseline_s']:.1f} | {total / r['baseline_s']:.1f}× | {r['rss'] / 2**20:.0f} | {rejected} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, nargs="+", default=[100_000])
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ptdata-bench-") as tmp:
        rows = [measure(n, Path(tmp)) for n in args.records]
    text = table(rows) + f"\n\n_Measured {dt.date.today()} on {_machine()}; two daily partitions in one run._"
    print(text)
    if args.write_readme:
        write_readme(text, "bench_silver")


if __name__ == "__main__":
    main()
