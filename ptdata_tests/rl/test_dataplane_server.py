"""The dataplane against a real server process (`ptdata dataplane serve` on loopback, the demo's release): access,
refusals, and kill -9 in the middle of a stream with the accounting intact and nothing served twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from ptdata.dataplane import Client, DataplaneError
from ptdata.rl.dataplane.simulate import serve_process

TOKEN = "s3cret-token-for-tests"


@contextmanager
def server(home: Path, folder: Path, *extra: str, token: str | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    env = {**os.environ, "PTDATA_HOME": str(home)}
    env.pop("PTDATA_DATAPLANE_TOKEN", None)
    if token:
        env["PTDATA_DATAPLANE_TOKEN"] = token
    with serve_process("demo", folder, extra, env, token) as started:
        yield started


def _group(prompt: dict, size: int, version: int = 0, rng: random.Random | None = None) -> list[dict]:
    rng = rng or random.Random(prompt["group_id"])
    return [
        {
            "prompt_id": prompt["prompt_id"],
            "group_id": prompt["group_id"],
            "sample_index": k,
            "policy_version": version,
            "completion_ids": [rng.randrange(1, 5000) for _ in range(rng.randint(20, 60))],
            "text": rng.choice(["#### 42", "The answer is \\boxed{7}.", "I am not sure."]),
            "status": "completed",
            "reward": float(k % 2),
        }
        for k in range(size)
    ]


def test_access_needs_the_token_and_a_public_address_needs_one(demo_home, tmp_path):
    with server(demo_home, tmp_path / "dp", token=TOKEN) as (url, _):
        assert requests.get(url + "/v1/stats", timeout=5).status_code == 401
        wrong = {"Authorization": "Bearer " + TOKEN[:-1] + "x"}
        assert requests.get(url + "/v1/stats", headers=wrong, timeout=5).status_code == 401
        assert Client(url, token=TOKEN).stats()["refused_calls"] == {"401:unauthorized": 2}
    env = {k: v for k, v in os.environ.items() if k != "PTDATA_DATAPLANE_TOKEN"}
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "ptdata.cli",
            "dataplane",
            "serve",
            "--release",
            "demo",
            "--dir",
            str(tmp_path / "x"),
            "--host",
            "0.0.0.0",
        ],
        env={**env, "PTDATA_HOME": str(demo_home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "without PTDATA_DATAPLANE_TOKEN" in refused.stderr


def test_bad_rollouts_are_refused_whole_named_and_counted(demo_home, tmp_path):
    with server(demo_home, tmp_path / "dp", "--group-size", "4", "--max-body-mb", "1") as (url, _):
        client = Client(url)
        prompt = client.prompts(1)[0]
        good = _group(prompt, 4)
        cases = {
            "rollouts[1].completion_ids": [good[0], {**good[1], "completion_ids": [1, 2, 10**7]}],
            "rollouts[0].policy_version": [{**good[0], "policy_version": 3}],
            "rollouts[0].prompt_id": [{**good[0], "prompt_id": "no-such-prompt"}],
            "rollouts[0].status": [{**good[0], "status": "done"}],
            "rollouts[0].logprobs": [{**good[0], "logprobs": [0.5]}],
            "rollouts[0].rewards": [{**good[0], "rewards": 1.0}],
            "rollouts[0].sample_index": [{**good[0], "sample_index": 9}],
        }
        for field, rollouts in cases.items():
            with pytest.raises(DataplaneError) as e:
                client.post_rollouts(rollouts)
            assert e.value.status == 400 and e.value.body["field"] == field
        resp = requests.post(url + "/v1/rollouts", data=b"{not json", timeout=5)
        assert resp.status_code == 400
        huge = requests.post(url + "/v1/rollouts", data=b"x" * (2 << 20), timeout=5)
        assert huge.status_code == 413
        stats = client.stats()
        assert stats["admitted"] == 0  # nothing of a refused call is stored
        refused = stats["refused_calls"]
        assert refused["400:future"] == 1 and refused["400:unknown_prompt"] == 1 and refused["413:too_large"] == 1
        assert sum(refused.values()) == len(cases) + 2
        assert client.post_rollouts(good) == {"accepted": 4, "duplicates": 0}
        assert client.post_rollouts(good) == {"accepted": 0, "duplicates": 4}


def test_kill_9_mid_stream_loses_nothing_accepted_and_serves_nothing_twice(demo_home, tmp_path):
    folder, size = tmp_path / "dp", 4
    accepted: set[str] = set()
    trained: list[str] = []
    args = ("--group-size", str(size), "--batch-size", "4096", "--max-staleness", "8")

    def produce(client: Client, stop: threading.Event) -> None:
        # the server is killed under this thread: a call that meets it is where the stream ends
        while not stop.is_set():
            try:
                prompts = client.prompts(4)
            except (requests.ConnectionError, DataplaneError):
                return
            for prompt in prompts:
                group = _group(prompt, size)
                try:
                    client.post_rollouts(group)
                except (requests.ConnectionError, DataplaneError):
                    return  # killed mid-call: this group may or may not be in
                accepted.update(r["group_id"] + str(r["sample_index"]) for r in group)

    def train(client: Client, steps: int) -> None:
        for _ in range(steps):
            batch = client.batch(16)
            if batch is None:
                time.sleep(0.05)
                continue
            groups = {}
            for r in batch["rollouts"]:
                groups.setdefault(r["group_id"], []).append(r)
            assert all(len(g) == size for g in groups.values())  # never a split group
            client.ack(batch["lease"])
            trained.extend(r["rollout_id"] for r in batch["rollouts"])

    with server(demo_home, folder, *args) as (url, proc):
        client = Client(url, retries=0)
        stop = threading.Event()
        producer = threading.Thread(target=produce, args=(client, stop))
        producer.start()
        train(Client(url), steps=15)
        leased_unacked = Client(url).batch(16)  # leased when the server dies: must come back
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        producer.join()
    assert accepted and trained
    with server(demo_home, folder, *args) as (url, _):
        client = Client(url)
        stats = client.stats()
        assert stats["accounting_holds"]
        assert stats["acknowledged"] == len(trained)
        assert sum(stats["buffered"].values()) > 0  # the kill left rollouts in the buffer, served again below
        # every rollout the server answered 200 for is there
        assert stats["admitted"] >= len(accepted)
        while (batch := client.batch(64)) is not None:
            ids = [r["rollout_id"] for r in batch["rollouts"]]
            assert not set(ids) & set(trained)
            client.ack(batch["lease"])
            trained.extend(ids)
        if leased_unacked is not None:
            assert {r["rollout_id"] for r in leased_unacked["rollouts"]} <= set(trained)
        stats = client.stats()
        assert stats["accounting_holds"]
        assert len(trained) == len(set(trained)) == stats["acknowledged"]
        assert stats["admitted"] == stats["acknowledged"] + sum(stats["buffered"].values())


def test_the_simulator_serves_whole_fresh_groups_and_the_accounting_holds(demo_home):
    env = {**os.environ, "PTDATA_HOME": str(demo_home)}
    env.pop("PTDATA_DATAPLANE_TOKEN", None)
    cmd = [sys.executable, "-m", "ptdata.cli", "dataplane", "simulate", "--workers", "3", "--seconds", "3"]
    out = subprocess.run(
        [*cmd, "--group-size", "4", "--max-staleness", "1"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "split groups served: 0" in out.stdout and ": holds" in out.stdout
    served = next(line for line in out.stdout.splitlines() if line.startswith("staleness served"))
    assert "bound 1)" in served and ("(max 0," in served or "(max 1," in served)


def test_rollouts_left_unverified_by_a_stop_are_verified_when_the_server_starts(demo_home, tmp_path):
    import numpy as np
    import pyarrow.parquet as pq

    from ptdata.rl.dataplane.log import SegmentLog
    from ptdata.rl.dataplane.records import Rollout, to_batch

    shards = sorted((demo_home / "lake" / "releases" / "demo" / "shards").glob("gold_rlvr-*.parquet"))
    rows = pq.read_table(shards[0], columns=["record_id", "verifier", "answer"]).to_pylist()
    prompt = next(r for r in rows if r["verifier"] == "math")
    log = SegmentLog(tmp_path / "dp" / "segments")
    rollouts = []
    for k, text in enumerate([f"#### {prompt['answer']}", "#### -1"]):
        r = Rollout(
            f"r{k}",
            prompt["record_id"],
            "g",
            k,
            0,
            0,
            None,
            np.arange(3, dtype=np.int32),
            None,
            None,
            text,
            "completed",
            None,
            None,
            k,
            time.time(),
        )
        rollouts.append(r)
    log.append(to_batch(rollouts))  # accepted, then the server stopped before it verified them
    log.close()
    with server(demo_home, tmp_path / "dp", "--group-size", "2") as (url, _):
        client = Client(url)
        deadline = time.monotonic() + 60
        while client.stats()["unverified"] and time.monotonic() < deadline:
            time.sleep(0.2)
        batch = client.batch(2)
    assert batch is not None
    assert sorted(r["reward"] for r in batch["rollouts"]) == [0.0, 1.0]
