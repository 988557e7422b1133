"""Bronze ingest benchmark: MB/s and peak RSS of staging chat JSONL into bronze, at two input sizes.

    python benchmarks/bench_bronze.py                 # 100k and 400k records, prints a table
    python benchmarks/bench_bronze.py --write-readme  # and writes the table into README.md

Each measurement runs in its own process so peak RSS (ru_maxrss) is that run's alone (the larger of the process
and its worker processes). The stage runs on all cores, as the asset does (PTDATA_WORKERS, default every core),
with the worker pool started before the clock: a run starts it once for all its stages. The baseline, in the same
command and on the same files, is the least any JSONL ingest must do: read the lines and parse them with orjson.
The ratio to it is the figure to compare across machines; MB/s alone depends on the machine's load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATE = dt.date(2026, 11, 1)
WORDS = (
    "the a model data training token batch loss gradient learning rate schedule warmup epoch step optimizer "
    "adam weight decay dropout layer attention head embedding vocabulary sequence packing padding mask label "
    "python function return value list dict string integer error exception file path read write query table "
    "join index column row database cache memory disk network request response server client latency "
    "throughput because however therefore which while after before during about around between under over"
).split()


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 22))]
    return " ".join(words).capitalize() + rng.choice([".", ".", "?", "!"])


def _chat(rng: random.Random, i: int) -> dict:
    turns = []
    if rng.random() < 0.3:
        turns.append({"role": "system", "content": "You are a helpful assistant."})
    for _ in range(rng.randint(1, 3)):
        turns.append({"role": "user", "content": " ".join(_sentence(rng) for _ in range(rng.randint(1, 2)))})
        turns.append({"role": "assistant", "content": " ".join(_sentence(rng) for _ in range(rng.randint(1, 5)))})
    return {"id": f"r{i}", "messages": turns, "model": "bench", "lang": "en"}


def write_landing(home: Path, n: int, files: int = 4) -> int:
    """n chat records (~1 KB each) in `files` JSONL files; returns the bytes written."""
    rng = random.Random(n)
    folder = home / "landing" / "chat" / DATE.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    per = n // files
    total = 0
    for f in range(files):
        with open(folder / f"part-{f}.jsonl", "w", encoding="utf-8") as out:
            for i in range(f * per, (f + 1) * per if f < files - 1 else n):
                line = json.dumps(_chat(rng, i)) + "\n"
                total += len(line)
                out.write(line)
    (home / "ptdata.yaml").write_text(
        f"start_date: {DATE}\nsources:\n  - {{name: chat, regime: sft, kind: files, format: jsonl, license: mit}}\n"
    )
    return total


_BRONZE = """
import json, resource, sys, time
from pathlib import Path
from ptdata.bronze.audits import audit_staged
from ptdata.core.config import Settings
from ptdata.bronze.stage import stage_bronze
from ptdata.core.executor import local_executor
from ptdata.core.lake import Lake
home = Path(sys.argv[1])
executor = local_executor()
list(executor.map(max, 0, [1, 2]))  # start the worker pool
s = Settings(home=home, config_path=home / "ptdata.yaml", lake=str(home / "lake"), engine="local")
cfg, lake = s.load_config(), Lake(s.lake)
t0 = time.perf_counter()
st = stage_bronze(cfg, lake, s.landing, "sft", __import__("datetime").date(2026, 11, 1), "bench", executor)
t1 = time.perf_counter()
audits = audit_staged(lake, cfg, st)
t2 = time.perf_counter()
assert audits["schema"].passed and audits["accounting"].passed, audits
rss = max(resource.getrusage(r).ru_maxrss for r in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) * 1024
print(json.dumps({"seconds": t2 - t0, "stage_seconds": t1 - t0, "bytes": st.bytes_read, "rows": st.bronze_rows, "rss": rss}))
"""

_BASELINE = """
import json, resource, sys, time, orjson
from pathlib import Path
t0 = time.perf_counter(); n = 0; nbytes = 0
for p in sorted(Path(sys.argv[1]).glob("landing/chat/*/*.jsonl")):
    nbytes += p.stat().st_size
    with open(p, "rb") as f:
        for line in f:
            orjson.loads(line); n += 1
secs = time.perf_counter() - t0
print(json.dumps({"seconds": secs, "bytes": nbytes, "rows": n, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def _run(code: str, home: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", code, str(home)], check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(n: int, work: Path) -> dict:
    home = work / f"n{n}"
    size = write_landing(home, n)
    base = _run(_BASELINE, home)
    bronze = _run(_BRONZE, home)
    assert bronze["rows"] == n, f"bronze has {bronze['rows']} rows for {n} records"
    mb = size / 1e6
    return {
        "records": n,
        "mb": mb,
        "bronze_mb_s": mb / bronze["seconds"],
        "stage_mb_s": mb / bronze["stage_seconds"],
        "baseline_mb_s": mb / base["seconds"],
        "ratio": base["seconds"] / bronze["seconds"],
        "rss_mib": bronze["rss"] / 2**20,
        "baseline_rss_mib": base["rss"] / 2**20,
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| records | input MB | bronze MB/s (stage + audit) | stage only MB/s | read+parse baseline MB/s "
        "| bronze / baseline speed | bronze peak RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['records']:,} | {r['mb']:.0f} | {r['bronze_mb_s']:.1f} | {r['stage_mb_s']:.1f} | {r['baseline_mb_s']:.1f} | "
            f"{r['ratio']:.2f} | {r['rss_mib']:.0f} |"
        )
    return "\n".join(lines)


def publish(text: str, marker: str, results: Path, title: str, write: bool) -> None:
    """Print a benchmark's report; with `write`, put it into README.md's block and its results file too."""
    print(text)
    if write:
        write_readme(text, marker=marker)
        results.write_text(f"# {title}\n\n{text}\n")


def write_readme(text: str, marker: str = "bench_bronze") -> None:
    """Replace the README's block between `<!-- {marker}:start -->` and `<!-- {marker}:end -->` with `text`."""
    readme = ROOT / "README.md"
    block = f"<!-- {marker}:start -->\n{text}\n<!-- {marker}:end -->"
    body = re.sub(f"<!-- {marker}:start -->.*?<!-- {marker}:end -->", lambda _: block, readme.read_text(), flags=re.S)
    readme.write_text(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, nargs="+", default=[100_000, 400_000])
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ptdata-bench-") as tmp:
        rows = [measure(n, Path(tmp)) for n in args.records]
    text = (
        table(rows)
        + f"\n\n_Measured {dt.date.today()} on {_machine()}; the stage on every core, the audits in the run's process; peak RSS covers both._"
    )
    print(text)
    if args.write_readme:
        write_readme(text)


def _machine() -> str:
    import os
    import platform

    return f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"


if __name__ == "__main__":
    main()
