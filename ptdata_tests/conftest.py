from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import dagster as dg
import orjson
import pytest
import yaml

from ptdata.cli import main
from ptdata.core.config import Settings
from ptdata.defs.runs import execute


@pytest.fixture
def make_home(tmp_path):
    """A fresh PTDATA_HOME with the given config; returns its Settings."""

    def _make(config: dict, name: str = "home") -> Settings:
        home = tmp_path / name
        home.mkdir()
        (home / "ptdata.yaml").write_text(yaml.safe_dump(config))
        return Settings(home=home, config_path=home / "ptdata.yaml", lake=str(home / "lake"), engine="local")

    return _make


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory):
    """`ptdata demo` run once for the whole session, in a fresh PTDATA_HOME (tests only read it), with two worker
    processes whatever the machine, so the golden data versions (computed on one) check the executor's pool."""
    home = tmp_path_factory.mktemp("demo")
    mp = pytest.MonkeyPatch()
    for var in ("PTDATA_CONFIG", "PTDATA_LAKE", "DAGSTER_HOME"):
        mp.delenv(var, raising=False)
    mp.setenv("PTDATA_HOME", str(home))
    mp.setenv("PTDATA_WORKERS", "2")
    try:
        assert main(["demo"]) == 0
        yield home
    finally:
        mp.undo()


def run(settings: Settings, instance: dg.DagsterInstance, start: str, end: str | None = None, select: str = "*"):
    return execute(settings, select, start, end or start, instance)


def landing(settings: Settings, source: str, date: str) -> Path:
    d = settings.landing / source / date
    d.mkdir(parents=True, exist_ok=True)
    return d


# A JSON API on 127.0.0.1 for the http source's tests and the end-to-end ones.


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # bytes are sent as they are, anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Api:
    """The test server: `route` answers each request; `seen` keeps (path, query, headers) of every request."""

    url: str
    route: Callable[[str, dict[str, str]], Reply] = lambda path, query: Reply(404, {"error": "no route"})
    seen: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)


class LoopbackServer(ThreadingHTTPServer):
    """A test HTTP server on 127.0.0.1; its handler finds the test's state as `self.server.state`."""

    state: Any

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out or stopped reading and hung up is expected in these tests


@contextmanager
def loopback(handler: type[BaseHTTPRequestHandler], make_state: Callable[[str], Any]) -> Iterator[Any]:
    """Serve `handler` on a free port in a thread; yields the state made from the server's base URL."""
    server = LoopbackServer(("127.0.0.1", 0), handler)
    server.state = make_state(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class ApiHandler(BaseHTTPRequestHandler):
    server: LoopbackServer

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        api = self.server.state
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query))
        api.seen.append((parts.path, query, dict(self.headers)))
        reply = api.route(parts.path, query)
        time.sleep(reply.delay)
        body = reply.body if isinstance(reply.body, bytes) else orjson.dumps(reply.body)
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[Api]:
    with loopback(ApiHandler, Api) as state:
        yield state
