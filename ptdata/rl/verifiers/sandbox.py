"""Run untrusted Python (a completion and its tests) in a child interpreter with a wall clock, a memory cap, no
network, no site-packages and a temporary working directory of its own.

The programs run in a fork of a small server interpreter (`python -I -S`: isolated, no user site, no PYTHON*
variables, no site-packages, so the standard library alone) that each process using this module starts once and
keeps: a fork costs ~1 ms where a new interpreter costs ~20. Each fork leads a session of its own, so its whole
process group is killed at the deadline, and before it runs anything it is given: RLIMIT_AS (the memory cap: an
allocation beyond it raises MemoryError), RLIMIT_CPU (the deadline again), RLIMIT_FSIZE 16 MiB, no core files, a
working directory of its own (removed after), a network namespace of its own where the kernel allows one (as root,
or with unprivileged user namespaces), and in any case a socket module whose constructors raise. Its standard
streams go to /dev/null; its result comes back on a pipe with a nonce the server checks.

This bounds accidents and runaway programs (an infinite loop, 10 GB allocations, a stray network call, files
written into the project). It is not a boundary against a program written to escape it: the tests run in the same
interpreter as the code they test, which can inspect and change them.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

FILE_SIZE_LIMIT = 16 << 20
# the server answers within the job's deadline plus this, or it is replaced
_SERVER_GRACE_S = 5.0

_SERVER = r"""
import builtins, ctypes, json, os, resource, secrets, select, shutil, signal, socket, struct, sys, tempfile, time
LIBC = ctypes.CDLL(None, use_errno=True)

def child(job, cwd, write_fd, nonce):
    os.setsid()
    os.chdir(cwd)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    memory, cpu = job["memory_mb"] << 20, int(job["timeout_s"]) + 1
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_FSIZE, (job["file_size"], job["file_size"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # CLONE_NEWNET alone (root), else inside a new user namespace (unprivileged, where allowed)
    isolated = LIBC.unshare(0x40000000) == 0 or LIBC.unshare(0x10000000 | 0x40000000) == 0
    def no_network(*args, **kwargs):
        raise PermissionError("network access is disabled here")
    for name in ("socket", "create_connection", "create_server", "getaddrinfo", "socketpair", "fromfd"):
        setattr(socket, name, no_network)
    os.environ.clear()
    os.environ.update(PATH="/usr/bin:/bin", HOME=cwd, TMPDIR=cwd, LANG="C.UTF-8")
    results = []
    for program in job["programs"]:
        result = {"passed": 0, "total": len(program["tests"]), "memory": False, "detail": ""}
        scope = {"__name__": "__main__", "__builtins__": builtins}
        try:
            exec(compile(program["code"], "<completion>", "exec"), scope)
            for test in program["tests"]:
                try:
                    exec(compile(test, "<test>", "exec"), scope)
                    result["passed"] += 1
                except MemoryError:
                    raise
                except BaseException as e:
                    result["detail"] = result["detail"] or f"{test[:80]}: {type(e).__name__}"
        except MemoryError:
            result["memory"] = True
        except BaseException as e:
            result["detail"] = f"the program raised {type(e).__name__}: {str(e)[:200]}"
        results.append(result)
    data = json.dumps({"nonce": nonce, "isolated": isolated, "results": results}).encode()
    while data:
        data = data[os.write(write_fd, data):]
    os._exit(0)

def run(job):
    nonce = secrets.token_hex(16)
    cwd = tempfile.mkdtemp(prefix="ptdata-code-")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            child(job, cwd, write_fd, nonce)
        finally:
            os._exit(1)
    os.close(write_fd)
    deadline, chunks, error = time.monotonic() + job["timeout_s"], [], None
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([read_fd], [], [], left)[0]:
            error = "timeout"
            break
        chunk = os.read(read_fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    _, status = os.waitpid(pid, 0)
    shutil.rmtree(cwd, ignore_errors=True)
    if error is None:
        try:
            report = json.loads(b"".join(chunks))
            if report.get("nonce") == nonce:
                return {"results": report["results"]}
        except (ValueError, AttributeError, KeyError):
            pass
        error = "timeout" if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU else "crashed"
    code = os.waitstatus_to_exitcode(status)
    return {"error": error, "status": code}

stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
while True:
    head = stdin.read(4)
    if len(head) < 4:
        break
    job = json.loads(stdin.read(struct.unpack("<I", head)[0]))
    reply = json.dumps(run(job)).encode()
    stdout.write(struct.pack("<I", len(reply)) + reply)
    stdout.flush()
"""


@dataclass(frozen=True)
class Program:
    """Code to run, then its tests (statements, each passing unless it raises) in the same namespace."""

    code: str
    tests: Sequence[str]


@dataclass(frozen=True)
class ProgramResult:
    passed: int
    total: int
    # "timeout" (killed at the deadline), "memory" (hit the cap), "crashed" (ended without a result), or None
    error: str | None = None
    detail: str = ""


class _Server:
    """The fork server: one job at a time."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            start_new_session=True,
        )

    def run(self, job: dict, timeout_s: float) -> dict:
        data = json.dumps(job).encode()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(struct.pack("<I", len(data)) + data)
        self.proc.stdin.flush()
        reply: dict = {}
        reader = threading.Thread(target=lambda: reply.update(self._read()), daemon=True)
        reader.start()
        reader.join(timeout_s + _SERVER_GRACE_S)
        if reader.is_alive() or not reply:
            self.close()
            raise RuntimeError("the sandbox server did not answer")
        return reply

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        head = self.proc.stdout.read(4)
        if len(head) < 4:
            return {}
        return json.loads(self.proc.stdout.read(struct.unpack("<I", head)[0]))

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()


_server: _Server | None = None
_server_lock = threading.Lock()


def run_programs(programs: Sequence[Program], timeout_s: float, memory_mb: int) -> list[ProgramResult]:
    """Run the programs one after another in one sandboxed fork, each in a fresh namespace, within `timeout_s`
    seconds in all; a fork that is killed or crashes gives every program that error."""
    global _server
    job = {
        "programs": [{"code": p.code, "tests": list(p.tests)} for p in programs],
        "memory_mb": int(memory_mb),
        "timeout_s": timeout_s,
        "file_size": FILE_SIZE_LIMIT,
    }
    with _server_lock:
        for attempt in (1, 2):  # a server that died (killed from outside) is started again once
            if _server is None or _server.proc.poll() is not None:
                _server = _Server()
            try:
                reply = _server.run(job, timeout_s)
                break
            except (OSError, RuntimeError, ValueError):
                _server = None
                if attempt == 2:
                    raise
    if "results" in reply and len(reply["results"]) == len(programs):
        return [
            ProgramResult(r["passed"], r["total"], "memory" if r["memory"] else None, r["detail"])
            for r in reply["results"]
        ]
    error = reply.get("error", "crashed")
    detail = (
        f"killed after {timeout_s:g}s"
        if error == "timeout"
        else f"the program ended without a result (exit status {reply.get('status')})"
    )
    return [ProgramResult(0, len(p.tests), error, detail) for p in programs]
