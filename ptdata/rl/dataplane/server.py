"""`ptdata dataplane serve`: the RL dataplane's HTTP API (the calls of README.md's "RL dataplane"), an ASGI app on uvicorn.

One process owns a `--dir`: its segment log (the rollouts), its control log (policy versions, acknowledgements,
evictions, verdicts, the prompt cursor) and the buffer rebuilt from both at start. A POST of rollouts is answered
200 only once its frame is synced; a lease is not logged, so after a restart every unacknowledged group is ready
again, and an acknowledged one never comes back. Rollouts that come without a reward are verified by the server
(ptdata.rl.verifiers.pool) in the background, with the prompt's verifier and reference answer; their group is
ready once every reward is known. Every refusal is counted in /v1/stats by its kind: 400 (the bad field's kind),
401, 404, 409, 413, 429. ARCHITECTURE.md, "RL dataplane".
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ptdata.rl.dataplane.buffer import Full, GroupBuffer, LeaseConflict, Settings
from ptdata.rl.dataplane.log import CONTROL_LOG, SEGMENTS, ControlLog, SegmentLog
from ptdata.rl.dataplane.prompts import PromptSet
from ptdata.rl.dataplane.records import BadRollout, Limits, from_batch, parse_rollout, to_batch

TOKEN_ENV = "PTDATA_DATAPLANE_TOKEN"
MAX_BODY_BYTES = 64 << 20
MAX_ROLLOUTS_PER_CALL = 4096
MAX_PROMPTS_PER_CALL = 1024
VERIFY_BATCH = 256


class HttpError(Exception):
    def __init__(self, status: int, message: str, kind: str, field: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.kind, self.field, self.headers = status, kind, field, headers or {}


def _json(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status, headers, "application/json")


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8731
    token: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES


class Dataplane:
    """The state behind the API; every change is logged before it is answered."""

    def __init__(self, folder: Path, prompts: PromptSet, settings: Settings, token: str | None = None) -> None:
        self.folder, self.prompts, self.token = folder, prompts, token
        self.segments = SegmentLog(folder / SEGMENTS)
        self.control = ControlLog(folder / CONTROL_LOG)
        self.buffer = GroupBuffer(settings)
        entries = self.control.entries
        self.buffer.recover((r for batch in self.segments.recovered() for r in from_batch(batch)), entries)
        cursors = [e["cursor"] for e in entries if e["t"] == "prompts"]
        self.prompts.cursor = max(cursors, default=0)
        self.control.entries = []
        self.limits = Limits(prompts.vocab_size, settings.group_size, prompts.known)
        self.refused: Counter[str] = Counter()
        self.lock = asyncio.Lock()
        self._verifying: asyncio.Task | None = None

    def close(self) -> None:
        self.segments.close()
        self.control.close()

    async def _log(self, entries: list[dict[str, Any]]) -> None:
        if entries:
            await asyncio.to_thread(self.control.append, *entries)
            self.buffer.replay(entries)

    # -- calls ---------------------------------------------------------------------------------------------------

    async def post_rollouts(self, body: Any) -> Response:
        raw = body.get("rollouts") if isinstance(body, dict) else None
        if not isinstance(raw, list):
            raise HttpError(400, 'expected {"rollouts": [...]}', "invalid", "rollouts")
        if len(raw) > MAX_ROLLOUTS_PER_CALL:
            raise HttpError(400, f"at most {MAX_ROLLOUTS_PER_CALL} rollouts a call", "invalid", "rollouts")
        async with self.lock:
            try:
                parsed = [
                    parse_rollout(r, f"rollouts[{k}]", self.limits, self.buffer.version) for k, r in enumerate(raw)
                ]
                fresh, duplicates = self.buffer.admit(parsed, time.time())
            except BadRollout as e:
                raise HttpError(400, str(e), e.kind, e.field) from None
            except Full as e:
                raise HttpError(429, str(e), "full", headers={"Retry-After": f"{e.retry_after:g}"}) from None
            if fresh:
                await asyncio.to_thread(self.segments.append, to_batch(fresh))
                self.buffer.apply(fresh)
        if any(r.reward is None for r in fresh):
            self._start_verifying()
        return _json({"accepted": len(fresh), "duplicates": duplicates})

    async def post_policy(self, body: Any) -> Response:
        version = body.get("version") if isinstance(body, dict) else None
        if type(version) is not int or version < 0:
            raise HttpError(400, "version: expected an integer >= 0", "invalid", "version")
        async with self.lock:
            try:
                entries = self.buffer.set_version(version)
            except ValueError as e:
                raise HttpError(400, str(e), "invalid", "version") from None
            await self._log(entries)
        return _json({"policy_version": self.buffer.version})

    async def get_batch(self, size: int) -> Response:
        async with self.lock:
            try:
                lease, evictions = self.buffer.take(size, time.time())
            except ValueError as e:
                raise HttpError(400, str(e), "invalid", "size") from None
            await self._log(evictions)
        if lease is None:
            return Response(status_code=204)
        rollouts = []
        for gid in lease.groups:
            group = self.buffer.groups[gid]
            rollouts += [
                r.to_json(self.buffer.version - r.oldest_version, group.rewards[r.seq]) for r in group.rollouts
            ]
        return _json({"lease": lease.lease_id, "policy_version": self.buffer.version, "rollouts": rollouts})

    async def post_ack(self, body: Any) -> Response:
        lease = body.get("lease") if isinstance(body, dict) else None
        if not isinstance(lease, str):
            raise HttpError(400, "lease: expected the lease id /v1/batch gave", "invalid", "lease")
        async with self.lock:
            try:
                entries = self.buffer.ack(lease, time.time())
            except LeaseConflict as e:
                raise HttpError(409, str(e), "lease_conflict", "lease") from None
            await self._log(entries)
        return _json({"acknowledged": lease})

    async def get_prompts(self, n: int) -> Response:
        async with self.lock:
            prompts, entry = self.prompts.take(n)
            await asyncio.to_thread(self.control.append, entry)
            self.prompts.cursor = entry["cursor"]
        return _json({"prompts": prompts})

    def stats(self) -> dict[str, Any]:
        self.buffer.expire(time.time())
        return {**self.buffer.stats(), "refused_calls": dict(self.refused), "prompts_handed_out": self.prompts.cursor}

    # -- the server's own verification -------------------------------------------------------------------------

    def _start_verifying(self) -> None:
        if self._verifying is None or self._verifying.done():
            self._verifying = asyncio.get_running_loop().create_task(self._verify_loop())

    async def _verify_loop(self) -> None:
        from ptdata.rl.verifiers.pool import VerifyTask, shared_pool

        while self.buffer.unverified:
            todo = self.buffer.unverified[:VERIFY_BATCH]
            tasks, entries = [], []
            for r in todo:
                if r.status in ("failed", "aborted"):
                    entries.append({"t": "verdict", "seq": r.seq, "reward": 0.0, "error": None})
                    continue
                p = self.prompts.by_id[r.prompt_id]
                tasks.append((r, VerifyTask(p.verifier, (r.text,), p.answer, p.verifier_args)))
            if tasks:
                verdicts = await asyncio.to_thread(shared_pool().verify, [t for _, t in tasks])
                for (r, _), (verdict,) in zip(tasks, verdicts, strict=True):
                    entries.append({"t": "verdict", "seq": r.seq, "reward": verdict.reward, "error": verdict.error})
            async with self.lock:
                await self._log(entries)


def _int_param(request: Request, name: str, low: int, high: int) -> int:
    value = request.query_params.get(name, "")
    if not value.isdigit() or not low <= int(value) <= high:
        raise HttpError(400, f"{name}: expected an integer in [{low}, {high}]", "invalid", name)
    return int(value)


def build_app(plane: Dataplane, max_body_bytes: int = MAX_BODY_BYTES) -> Starlette:
    def endpoint(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                _authorize(plane.token, request)
                return await handler(request)
            except HttpError as e:
                plane.refused[f"{e.status}:{e.kind}"] += 1
                body = {"error": str(e), **({"field": e.field} if e.field else {})}
                return _json(body, e.status, e.headers)

        return wrapped

    async def body(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            raise HttpError(413, f"the body is over {max_body_bytes} bytes", "too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise HttpError(413, f"the body is over {max_body_bytes} bytes", "too_large")
            chunks.append(chunk)
        try:
            return orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            raise HttpError(400, "the body is not JSON", "not_json") from None

    async def rollouts(request: Request) -> Response:
        return await plane.post_rollouts(await body(request))

    async def policy(request: Request) -> Response:
        return await plane.post_policy(await body(request))

    async def batch(request: Request) -> Response:
        return await plane.get_batch(_int_param(request, "size", 1, 1 << 20))

    async def ack(request: Request) -> Response:
        return await plane.post_ack(await body(request))

    async def prompts(request: Request) -> Response:
        return await plane.get_prompts(_int_param(request, "n", 1, MAX_PROMPTS_PER_CALL))

    async def stats(request: Request) -> Response:
        return _json(plane.stats())

    routes = [
        Route("/v1/rollouts", endpoint(rollouts), methods=["POST"]),
        Route("/v1/policy", endpoint(policy), methods=["POST"]),
        Route("/v1/batch", endpoint(batch), methods=["GET"]),
        Route("/v1/ack", endpoint(ack), methods=["POST"]),
        Route("/v1/prompts", endpoint(prompts), methods=["GET"]),
        Route("/v1/stats", endpoint(stats), methods=["GET"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        plane.refused["404:not_found"] += 1
        return _json({"error": f"no call {request.method} {request.url.path}"}, 404)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # rollouts still without a reward when the server last stopped are verified now, not at the next POST
        if plane.buffer.unverified:
            plane._start_verifying()
        yield

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found}, lifespan=lifespan)


def _authorize(token: str | None, request: Request) -> None:
    if token is None:
        return
    given = request.headers.get("authorization", "")
    # compared in constant time: the answer's timing says nothing about how much of a guess was right
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise HttpError(
            401, "a bearer token is required (Authorization: Bearer <PTDATA_DATAPLANE_TOKEN>)", "unauthorized"
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(plane: Dataplane, options: ServeOptions) -> None:
    """Serve until interrupted (SIGINT, SIGTERM)."""
    import uvicorn

    if not options.token and not is_loopback(options.host):
        raise SystemExit(f"ptdata: refusing to serve on {options.host} without {TOKEN_ENV}: set a token first")
    app = build_app(plane, options.max_body_bytes)
    config = uvicorn.Config(app, host=options.host, port=options.port, log_level="warning", access_log=False)
    stats = plane.buffer.stats()
    print(
        f"dataplane: {len(plane.prompts.by_id)} prompts, {stats['admitted']} rollouts in {plane.folder} "
        f"({sum(stats['buffered'].values())} buffered), serving http://{options.host}:{options.port}",
        flush=True,
    )
    try:
        uvicorn.Server(config).run()
    finally:
        plane.close()


def token_from_env() -> str | None:
    return os.environ.get(TOKEN_ENV) or None
