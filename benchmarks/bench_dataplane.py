"""Dataplane benchmark: durable intake of rollouts of ~1k tokens on loopback, and the trainer's GET /v1/batch.

    python benchmarks/bench_dataplane.py                  # prints the table
    python benchmarks/bench_dataplane.py --write-readme   # and writes it into README.md

A real `ptdata dataplane serve` (the release of a fresh `ptdata demo` home, or --home) takes POSTs of 64 rollouts
(8 groups of 8) of 1,000 token ids each from client processes posting as fast as they can for --seconds, each
answered only once its frame is fsynced; meanwhile a trainer in this process takes batches of 512 rollouts,
acknowledges them and advances the policy version, and its GET /v1/batch latency is timed. In the same command,
the floor: one process appending the same request bodies to a file with an fsync each, which is the least a
durable intake of these requests costs (the server also parses, checks and re-encodes every token id).
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_bronze import _machine, publish  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "dataplane.md"
TOKENS, GROUP, PER_POST = 1000, 8, 64


def _bodies(prompt_ids: list[str], client: int, n: int | None = None) -> Iterator[bytes]:
    """Request bodies of PER_POST rollouts, all of new groups (n of them, or without end): the token ids' JSON is
    made once and spliced, so the clients spend their time on the calls."""
    import random

    rng = random.Random(client)
    ids = [orjson.dumps([rng.randrange(1, 4000) for _ in range(TOKENS)]) for _ in range(16)]
    for b in itertools.count() if n is None else range(n):
        rows = []
        for k in range(PER_POST):
            group = f"c{client}-b{b}-g{k // GROUP}"
            prompt = prompt_ids[(b * PER_POST + k) // GROUP % len(prompt_ids)]
            rows.append(
                b'{"prompt_id":"%s","group_id":"%s","sample_index":%d,"policy_version":0,"completion_ids":%s,'
                b'"text":"#### 42","status":"completed","reward":%d}'
                % (prompt.encode(), group.encode(), k % GROUP, ids[(b + k) % 16], k % 2)
            )
        yield b'{"rollouts":[' + b",".join(rows) + b"]}"


def _client(url: str, prompt_ids: list[str], client: int, seconds: float, out: mp.Queue) -> None:
    bodies = _bodies(prompt_ids, client)
    session = requests.Session()
    sent, latencies, t_end = 0, [], time.perf_counter() + seconds
    headers = {"Content-Type": "application/json"}
    for body in bodies:
        if time.perf_counter() > t_end:
            break
        t0 = time.perf_counter()
        resp = session.post(url + "/v1/rollouts", data=body, headers=headers, timeout=60)
        latencies.append(time.perf_counter() - t0)
        if resp.status_code == 429:
            time.sleep(float(resp.headers.get("Retry-After", "0.1")))
            continue
        resp.raise_for_status()
        sent += resp.json()["accepted"]
    out.put((sent, latencies))


def _floor(bodies: list[bytes]) -> float:
    """Bodies per second appended to a file with an fsync each."""
    with tempfile.TemporaryDirectory() as tmp:
        fd = os.open(Path(tmp) / "f", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        t0 = time.perf_counter()
        for body in bodies:
            os.write(fd, body)
            os.fsync(fd)
        seconds = time.perf_counter() - t0
        os.close(fd)
    return len(bodies) / seconds


def _q(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] * 1000 if values else float("nan")


def measure(home: Path, clients: int, seconds: float) -> dict:
    from ptdata.rl.dataplane.client import Client
    from ptdata.rl.dataplane.simulate import started_server

    os.environ["PTDATA_HOME"] = str(home)
    args = ["--group-size", str(GROUP), "--batch-size", "100000", "--max-staleness", "1000000"]
    with started_server("demo", args) as url:
        trainer = Client(url)
        prompt_ids = [p["prompt_id"] for p in trainer.prompts(256)]
        queue: mp.Queue = mp.get_context("spawn").Queue()
        procs = [
            mp.get_context("spawn").Process(target=_client, args=(url, prompt_ids, c, seconds, queue))
            for c in range(clients)
        ]
        batch_latency: list[float] = []
        stop = threading.Event()

        def train() -> None:
            version = 0
            while not stop.is_set():
                t0 = time.perf_counter()
                batch = trainer.batch(512)
                batch_latency.append(time.perf_counter() - t0)
                if batch is None:
                    time.sleep(0.005)
                    continue
                trainer.ack(batch["lease"])
                version += 1
                trainer.set_policy(version)

        thread = threading.Thread(target=train)
        thread.start()
        for p in procs:
            p.start()
        t0 = time.perf_counter()
        results = [queue.get() for _ in procs]
        wall = time.perf_counter() - t0
        for p in procs:
            p.join()
        stop.set()
        thread.join()
        stats = trainer.stats()
    sent = sum(s for s, _ in results)
    post = [x for _, lat in results for x in lat]
    return {
        "clients": clients,
        "rollouts": sent,
        "seconds": wall,
        "per_s": sent / wall,
        "post_p50": _q(post, 0.5),
        "post_p99": _q(post, 0.99),
        "batch_p50": _q(batch_latency, 0.5),
        "batch_p99": _q(batch_latency, 0.99),
        "accounting": stats["accounting_holds"],
        "floor_per_s": _floor(list(_bodies(prompt_ids, 99, 200))) * PER_POST,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--home", type=Path, help="a PTDATA_HOME with the demo's release (default: a fresh ptdata demo)")
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ptdata-bench-") as tmp:
        home = args.home
        if home is None:
            home = Path(tmp) / "home"
            env = {**os.environ, "PTDATA_HOME": str(home)}
            subprocess.run([sys.executable, "-m", "ptdata.cli", "demo"], env=env, check=True, capture_output=True)
        r = measure(home, args.clients, args.seconds)
    text = "\n".join(
        [
            "| clients | rollouts (1k tokens) | seconds | durable intake rollouts/s | POST p50 / p99 ms "
            "| GET /v1/batch p50 / p99 ms | floor: fsynced appends, rollouts/s | accounting |",
            "|---:|---:|---:|---:|---:|---:|---:|---|",
            f"| {r['clients']} | {r['rollouts']:,} | {r['seconds']:.1f} | **{r['per_s']:,.0f}** | "
            f"{r['post_p50']:.1f} / {r['post_p99']:.1f} | {r['batch_p50']:.1f} / {r['batch_p99']:.1f} | "
            f"{r['floor_per_s']:,.0f} | {'holds' if r['accounting'] else 'BROKEN'} |",
            "",
            f"_Measured {time.strftime('%Y-%m-%d')} on {_machine()}; {PER_POST} rollouts a POST, the trainer taking "
            "512 a batch beside the clients._",
        ]
    )
    publish(text, "bench_dataplane", RESULTS, "Dataplane: durable intake and batch latency", args.write_readme)


if __name__ == "__main__":
    main()
