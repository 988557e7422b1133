"""The web source against a real web server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import orjson
import pytest

from ptdata.core.config import WebSource
from ptdata.sources.base import SourceContext
from ptdata.sources.web import read_web
from ptdata_tests.conftest import LoopbackServer, loopback

ARTICLE = """<!doctype html><html><head><title>Keeping the Light</title></head><body>
<header><nav><a href="/">Home</a> <a href="/about">About us</a> <a href="/shop">Shop the catalogue</a></nav></header>
<main><article><h1>Keeping the Light</h1>
<p>The lighthouse keeper climbed the spiral stairs every evening to light the great lamp, and he counted the
steps aloud.</p>
<p>Storms came from the west in autumn, and the keeper wrote each one into his log with the hour and the
height of the waves.</p>
<p>Ships passing the headland answered his beam with their horns, a sound he said he could tell apart by the
vessel.</p>
</article></main>
<footer><p>Copyright 2026 Example Media. All rights reserved. Subscribe to our newsletter.</p></footer>
</body></html>"""


@dataclass
class Page:
    body: bytes | str = b""
    content_type: str = "text/plain; charset=utf-8"
    status: int = 200
    length: bool = True  # False: no Content-Length, the body ends when the connection closes


@dataclass
class Site:
    """The test server: `pages` by path (404 otherwise); `seen` lists (path, User-Agent) of every request."""

    url: str
    pages: dict[str, Page] = field(default_factory=dict)
    seen: list[tuple[str, str]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackServer

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        site = self.server.state
        site.seen.append((self.path, self.headers.get("User-Agent", "")))
        page = site.pages.get(self.path, Page(b"not found", status=404))
        body = page.body.encode("utf-8") if isinstance(page.body, str) else page.body
        self.send_response(page.status)
        self.send_header("Content-Type", page.content_type)
        if page.length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[Site]:
    with loopback(_Handler, Site) as state:
        yield state


@pytest.fixture
def ctx(tmp_path: Path) -> SourceContext:
    return SourceContext(date=dt.date(2026, 11, 2), landing_dir=tmp_path, config_dir=tmp_path)


def source(urls: list[str] | None = None, **kw: Any) -> WebSource:
    kw.setdefault("rate_limit", 1000.0)
    return WebSource(kind="web", name="pages", regime="text", urls=urls or [], **kw)


def test_robots_disallow_and_allow(site: Site, ctx: SourceContext) -> None:
    site.pages["/robots.txt"] = Page("User-agent: *\nDisallow: /private/\n")
    site.pages["/public/a"] = Page("public text")
    site.pages["/private/b"] = Page("secret text")
    urls = [f"{site.url}/private/b", f"{site.url}/public/a", f"{site.url}/private/c"]
    records = list(read_web(source(urls), ctx))

    assert [r.source_uri for r in records] == urls
    assert records[0].error is not None and records[0].error.startswith("robots_disallowed: ")
    assert records[1].error is None and records[1].payload["text"] == "public text"
    assert records[2].error is not None and records[2].error.startswith("robots_disallowed: ")
    assert [path for path, _ in site.seen] == ["/robots.txt", "/public/a"]  # robots.txt read once


def test_robots_for_one_agent_and_ignoring_robots(site: Site, ctx: SourceContext) -> None:
    site.pages["/robots.txt"] = Page("User-agent: ptdata-test\nDisallow: /\n")
    site.pages["/a"] = Page("hello")
    blocked = list(read_web(source([f"{site.url}/a"], user_agent="ptdata-test"), ctx))
    allowed = list(read_web(source([f"{site.url}/a"], user_agent="other-bot"), ctx))
    ignored = list(read_web(source([f"{site.url}/a"], user_agent="ptdata-test", respect_robots=False), ctx))

    assert blocked[0].error is not None and blocked[0].error.startswith("robots_disallowed")
    assert allowed[0].payload["text"] == "hello" and ignored[0].payload["text"] == "hello"
    assert [ua for _, ua in site.seen] == ["ptdata-test", "other-bot", "other-bot", "ptdata-test"]


def test_missing_robots_allows_and_unreachable_robots_disallows(site: Site, ctx: SourceContext) -> None:
    site.pages["/a"] = Page("hello")
    assert list(read_web(source([f"{site.url}/a"]), ctx))[0].payload["text"] == "hello"  # robots.txt is a 404

    site.pages["/robots.txt"] = Page("oops", status=503)
    records = list(read_web(source([f"{site.url}/a"]), ctx))
    assert records[0].error is not None and records[0].error.startswith("robots_disallowed")
    assert any("HTTP 503" in note for note in ctx.notes)


def test_http_404_is_a_fetch_error(site: Site, ctx: SourceContext) -> None:
    records = list(read_web(source([f"{site.url}/gone"]), ctx))
    assert len(records) == 1 and records[0].error == "fetch_error: HTTP 404"
    assert records[0].source_uri == f"{site.url}/gone"


def test_unreachable_host_is_a_fetch_error(ctx: SourceContext) -> None:
    with LoopbackServer(("127.0.0.1", 0), _Handler) as closed:
        port = closed.server_address[1]  # bound and closed again: nothing listens there
    records = list(read_web(source([f"http://127.0.0.1:{port}/a"], respect_robots=False), ctx))

    assert len(records) == 1
    assert records[0].error is not None and records[0].error.startswith("fetch_error: ConnectionError")
    assert records[0].error.endswith("(after 2 attempts)")


@pytest.mark.parametrize("length", [True, False], ids=["declared", "streamed"])
def test_too_large_body(site: Site, ctx: SourceContext, length: bool) -> None:
    site.pages["/big"] = Page(b"x" * 200_000, length=length)
    site.pages["/small"] = Page(b"y" * 500)
    records = list(read_web(source([f"{site.url}/big", f"{site.url}/small"], max_bytes=1000), ctx))

    assert records[0].error is not None and records[0].error.startswith("too_large: ")
    assert records[1].payload["text"] == "y" * 500


def test_html_page_gives_its_main_text(site: Site, ctx: SourceContext) -> None:
    site.pages["/story"] = Page(ARTICLE, content_type="text/html; charset=utf-8")
    site.pages["/untyped"] = Page(ARTICLE, content_type="application/octet-stream")
    records = list(read_web(source([f"{site.url}/story", f"{site.url}/untyped"]), ctx))

    for rec in records:
        text = rec.payload["text"]
        assert "The lighthouse keeper climbed the spiral stairs" in text
        assert "Ships passing the headland" in text
        assert "Shop the catalogue" not in text and "All rights reserved" not in text
        assert rec.payload["title"] == "Keeping the Light"
        assert rec.payload["fetched_status"] == 200
        assert rec.nbytes == len(ARTICLE.encode())
    assert records[0].payload["url"] == f"{site.url}/story"
    assert records[0].payload["content_type"] == "text/html; charset=utf-8"


def test_html_page_without_main_text(site: Site, ctx: SourceContext) -> None:
    site.pages["/empty"] = Page(
        "<html><head><title>T</title></head><body><script>go()</script></body></html>", "text/html"
    )
    records = list(read_web(source([f"{site.url}/empty"]), ctx))
    assert records[0].error == "no_text: no main text extracted"


def test_json_pages(site: Site, ctx: SourceContext) -> None:
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    site.pages["/chat.json"] = Page(orjson.dumps(chat), "application/json")
    site.pages["/many.json"] = Page(orjson.dumps([{"n": 1}, {"n": 2}]), "application/json; charset=utf-8")
    site.pages["/broken.json"] = Page(b"{not json", "application/json")
    urls = [f"{site.url}/chat.json", f"{site.url}/many.json", f"{site.url}/broken.json"]
    records = list(read_web(source(urls), ctx))

    assert records[0].payload == chat and records[0].source_uri == urls[0]
    assert [(r.source_uri, r.payload) for r in records[1:3]] == [(f"{urls[1]}#0", {"n": 1}), (f"{urls[1]}#1", {"n": 2})]
    assert records[3].error is not None and records[3].error.startswith("bad_json: ")
    assert len(records) == 4


def test_text_page_and_charset(site: Site, ctx: SourceContext) -> None:
    site.pages["/plain"] = Page("caf\u00e9 au lait\n")
    site.pages["/latin1"] = Page("caf\u00e9".encode("latin-1"), "text/plain; charset=iso-8859-1")
    site.pages["/bad-utf8"] = Page(b"caf\xe9", "text/plain")
    site.pages["/image"] = Page(b"\x89PNG", "image/png")
    urls = [f"{site.url}/plain", f"{site.url}/latin1", f"{site.url}/bad-utf8", f"{site.url}/image"]
    records = list(read_web(source(urls), ctx))

    assert records[0].payload == {
        "text": "caf\u00e9 au lait\n",
        "url": urls[0],
        "content_type": "text/plain; charset=utf-8",
        "fetched_status": 200,
    }
    assert records[0].raw == "caf\u00e9 au lait\n".encode() and records[0].nbytes == 14
    assert ctx.bytes_read == 14 + 4 + 4 + 4  # the bodies of the four pages
    assert records[1].payload["text"] == "caf\u00e9"
    assert records[2].payload["text"] == "caf\ufffd"
    assert records[3].error == "unsupported_content: content type image/png"


def test_rate_limit_spaces_requests_to_one_host(site: Site, ctx: SourceContext) -> None:
    for i in range(5):
        site.pages[f"/p{i}"] = Page(f"page {i}")
    urls = [f"{site.url}/p{i}" for i in range(5)]
    started = time.monotonic()
    records = list(read_web(source(urls, rate_limit=20.0, respect_robots=False), ctx))
    elapsed = time.monotonic() - started

    assert [r.payload["text"] for r in records] == [f"page {i}" for i in range(5)]
    assert elapsed >= 0.18  # 4 gaps of 1/20 s between 5 request starts


def test_rate_limit_counts_the_robots_fetch(site: Site, ctx: SourceContext) -> None:
    site.pages["/a"] = Page("a")
    site.pages["/b"] = Page("b")
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    list(read_web(source([f"{site.url}/a", f"{site.url}/b"], rate_limit=2.0), ctx, clock=lambda: now[0], sleep=sleep))
    assert [path for path, _ in site.seen] == ["/robots.txt", "/a", "/b"]
    assert waits == [0.5, 0.5]


def test_url_file_for_the_day(site: Site, ctx: SourceContext, tmp_path: Path) -> None:
    site.pages["/a"] = Page("a")
    site.pages["/b"] = Page("b")
    site.pages["/c"] = Page("c")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "urls-2026-11-02.txt").write_text(
        f"# today's pages\n{site.url}/b\n\n  {site.url}/c  \n{site.url}/a\n{site.url}/b\n", encoding="utf-8"
    )
    src = source([f"{site.url}/a"], url_file="lists/urls-{date}.txt", respect_robots=False)
    records = list(read_web(src, ctx))
    assert [r.source_uri for r in records] == [f"{site.url}/a", f"{site.url}/b", f"{site.url}/c"]

    other_day = SourceContext(date=dt.date(2026, 11, 3), landing_dir=tmp_path, config_dir=tmp_path)
    assert list(read_web(src, other_day)) == []
    assert len(other_day.notes) == 1 and "urls-2026-11-03.txt not found" in other_day.notes[0]


def test_url_credentials_are_masked_in_source_uri(site: Site, ctx: SourceContext) -> None:
    site.pages["/a"] = Page("plain text page")
    host = site.url.removeprefix("http://")
    records = list(read_web(source([f"http://reader:pw@{host}/a?token=abc&q=a%20b"], respect_robots=False), ctx))
    assert [r.source_uri for r in records] == [f"http://***@{host}/a?token=***&q=a+b"]
    clean = f"{site.url}/a?q=a%20b"
    assert [r.source_uri for r in read_web(source([clean], respect_robots=False), ctx)] == [clean]
