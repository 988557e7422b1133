"""`ptdata dataplane simulate`: rollout workers and a trainer against a real dataplane server, on loopback.

It starts `ptdata dataplane serve` on a fresh folder (or uses `--url`), then for `--seconds`: `--workers` threads
each take a prompt, "generate" a group (random token ids of about `--tokens` each, after `--generate-ms`, with the
policy version they last saw, as a worker holding stale weights does) and post it; one trainer takes a batch,
checks that every group in it is whole, acknowledges it and advances the policy version. It prints the intake
throughput, the latency percentiles of each call, the staleness actually served against the bound, split groups
(always 0) and the server's accounting (admitted = acknowledged + evicted + buffered). ARCHITECTURE.md, "RL
dataplane".
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from ptdata.rl.dataplane.client import Client, DataplaneError
from ptdata.rl.dataplane.server import TOKEN_ENV


@dataclass
class Figures:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"post": [], "batch": [], "prompts": []})
    posted: int = 0
    trained: int = 0
    steps: int = 0
    split_groups: int = 0
    staleness: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, name: str, t0: float) -> None:
        with self.lock:
            self.latencies[name].append(time.perf_counter() - t0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_process(
    release: str, folder: Path, args: Sequence[str] = (), env: dict[str, str] | None = None, token: str | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`ptdata dataplane serve` of `release` over `folder` in a process of its own, on a free loopback port: its URL
    and process once it answers, stopped (SIGINT, then killed) when the block ends."""
    port = _free_port()
    cmd = [sys.executable, "-m", "ptdata.cli", "dataplane", "serve", "--release", release, "--dir", str(folder)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    # the probe sends the token the server was started with, if any
    token = token if token is not None else (os.environ if env is None else env).get(TOKEN_ENV)
    client = Client(url, token=token or "", retries=0)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.stats()
            break
        except requests.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.poll() is not None else "no answer in 60 s"
                proc.kill()
                raise SystemExit(f"ptdata: the dataplane server did not start: {out}") from None
            time.sleep(0.1)
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def started_server(release: str, args: Sequence[str]) -> Iterator[str]:
    """`serve_process` over a temporary folder: the server of one simulation or benchmark."""
    with (
        tempfile.TemporaryDirectory(prefix="ptdata-dataplane-") as folder,
        serve_process(release, Path(folder), args) as (url, _),
    ):
        yield url


def _worker(url: str, group_size: int, tokens: int, generate_s: float, stop: threading.Event, figs: Figures) -> None:
    client = Client(url)
    rng = random.Random(threading.get_ident())
    version = 0
    while not stop.is_set():
        t0 = time.perf_counter()
        (prompt,) = client.prompts(1)
        figs.timed("prompts", t0)
        time.sleep(generate_s)
        group = [
            {
                "prompt_id": prompt["prompt_id"],
                "group_id": prompt["group_id"],
                "sample_index": k,
                "policy_version": version,
                "completion_ids": [rng.randrange(1, 4000) for _ in range(max(1, int(rng.gauss(tokens, tokens / 4))))],
                "text": "#### 42",
                "status": "completed",
                "reward": float(rng.random() < 0.5),
            }
            for k in range(group_size)
        ]
        t0 = time.perf_counter()
        try:
            client.post_rollouts(group)
        except DataplaneError as e:
            if e.status != 400 or "group_closed" not in str(e.body):
                raise
        figs.timed("post", t0)
        with figs.lock:
            figs.posted += group_size
        version = client.stats()["policy_version"]  # the weights this worker loads for its next group


def _trainer(url: str, batch_size: int, group_size: int, stop: threading.Event, figs: Figures) -> None:
    client = Client(url)
    version = 0
    while not stop.is_set():
        t0 = time.perf_counter()
        batch = client.batch(batch_size)
        figs.timed("batch", t0)
        if batch is None:
            time.sleep(0.01)
            continue
        sizes = Counter(r["group_id"] for r in batch["rollouts"])
        with figs.lock:
            figs.split_groups += sum(1 for n in sizes.values() if n != group_size)
            figs.staleness.update(r["staleness"] for r in batch["rollouts"])
            figs.trained += len(batch["rollouts"])
            figs.steps += 1
        client.ack(batch["lease"])
        version += 1
        client.set_policy(version)


def _percentiles(values: list[float]) -> str:
    if not values:
        return "no calls"
    values = sorted(values)

    def q(p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))] * 1000

    return f"p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms ({len(values)} calls)"


def simulate(
    url: str,
    workers: int,
    seconds: float,
    group_size: int,
    tokens: int,
    generate_s: float,
    batch_size: int,
    max_staleness: int,
) -> dict[str, Any]:
    figs, stop = Figures(), threading.Event()
    threads = [
        threading.Thread(target=_worker, args=(url, group_size, tokens, generate_s, stop, figs), daemon=True)
        for _ in range(workers)
    ]
    threads.append(threading.Thread(target=_trainer, args=(url, batch_size, group_size, stop, figs), daemon=True))
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(30)
    wall = time.perf_counter() - t0
    stats = Client(url).stats()
    return {"figures": figs, "wall": wall, "stats": stats, "max_staleness": max_staleness}


def report(result: dict[str, Any]) -> str:
    figs, stats, wall = result["figures"], result["stats"], result["wall"]
    served = max(figs.staleness, default=0)
    lines = [
        f"intake: {figs.posted:,} rollouts posted in {wall:.1f} s = {figs.posted / wall:,.0f} rollouts/s",
        f"trainer: {figs.steps} steps, {figs.trained:,} rollouts trained, policy version {stats['policy_version']}",
        f"POST /v1/rollouts: {_percentiles(figs.latencies['post'])}",
        f"GET /v1/batch: {_percentiles(figs.latencies['batch'])}",
        f"GET /v1/prompts: {_percentiles(figs.latencies['prompts'])}",
        f"staleness served: {dict(sorted(figs.staleness.items()))} (max {served}, bound {result['max_staleness']})",
        f"split groups served: {figs.split_groups}",
        f"accounting: admitted {stats['admitted']:,} = acknowledged {stats['acknowledged']:,} + evicted "
        f"{sum(stats['evicted'].values()):,} {stats['evicted']} + buffered {sum(stats['buffered'].values()):,} "
        f"{stats['buffered']}: {'holds' if stats['accounting_holds'] else 'DOES NOT HOLD'}",
        f"refused: {stats['refused']}",
    ]
    return "\n".join(lines)


def ok(result: dict[str, Any]) -> bool:
    figs, stats = result["figures"], result["stats"]
    return (
        stats["accounting_holds"]
        and not figs.split_groups
        and max(figs.staleness, default=0) <= result["max_staleness"]
    )


def default_release() -> str:
    """The release the config names (the demo's is `demo`)."""
    from ptdata.core.config import Settings

    return Settings.from_env().load_config().pipeline.release.name
