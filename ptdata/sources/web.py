"""Reader of web pages (`kind: web`): a list of URLs, fetched politely, one record per page.

Polite means: robots.txt is obeyed (RFC 9309: a missing robots.txt allows everything, an unreachable one
allows nothing), request starts to one host are spaced by `1 / rate_limit` seconds, and no body is read past
`max_bytes`. Every URL ends as records or as one error record, so the bronze accounting holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

import orjson
import requests

from ptdata.core.config import WebSource
from ptdata.sources.base import RawRecord, SourceContext, error_record
from ptdata.sources.html import extract_main_text
from ptdata.sources.http import public_url

_RAW_CAP = 4096  # bytes of a page kept in `raw`
_CHUNK = 64 * 1024
_TRANSIENT = (requests.ConnectionError, requests.Timeout)


@dataclass(frozen=True)
class _Reply:
    status: int
    content_type: str  # the header as sent ("" when absent)
    body: bytes  # empty for a non-2xx reply: its body is not read


@dataclass(frozen=True)
class _Robots:
    parser: RobotFileParser
    why: str  # the detail of a robots_disallowed record


class _Pacer:
    """Spaces the starts of requests to one host at least `1 / rate` seconds apart."""

    def __init__(self, rate: float, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._last: dict[str, float] = {}

    def wait(self, host: str) -> None:
        last = self._last.get(host)
        if last is not None:
            delay = last + self._interval - self._clock()
            if delay > 0:
                self._sleep(delay)
        self._last[host] = self._clock()


def read_web(
    source: WebSource,
    ctx: SourceContext,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[RawRecord]:
    """Fetch each URL of `urls` and of the day's `url_file` once, in order; yield its records or its error.

    HTML pages give their main text, text pages their body, JSON pages their parsed value (a JSON list gives
    one record per element). `clock` and `sleep` drive the per-host rate limit. A URL's credentials (userinfo,
    token-like query parameters) are masked in `source_uri`, which every table stores.
    """
    for record in _fetch_all(source, ctx, clock, sleep):
        record.source_uri = public_url(record.source_uri)
        yield record


def _fetch_all(
    source: WebSource, ctx: SourceContext, clock: Callable[[], float], sleep: Callable[[float], None]
) -> Iterator[RawRecord]:
    pacer = _Pacer(source.rate_limit, clock, sleep)
    robots: dict[str, _Robots] = {}
    with requests.Session() as session:
        session.headers["User-Agent"] = source.user_agent
        for url in _url_list(source, ctx):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                yield error_record(url, "fetch_error", "not an http(s) URL")
                continue
            if source.respect_robots:
                origin = f"{parts.scheme}://{parts.netloc}"
                if origin not in robots:
                    robots[origin] = _read_robots(session, origin, source, pacer, ctx)
                if not robots[origin].parser.can_fetch(source.user_agent, url):
                    yield error_record(url, "robots_disallowed", robots[origin].why)
                    continue
            got = _get(session, url, source, pacer)
            if isinstance(got, RawRecord):
                yield got
            else:
                ctx.bytes_read += len(got.body)
                yield from _records(url, got)


def _url_list(source: WebSource, ctx: SourceContext) -> list[str]:
    """`urls` then the url_file's lines, first occurrence kept; nothing at all when the day's file is missing."""
    urls = [u.strip() for u in source.urls]
    if source.url_file:
        path = Path(source.url_file.replace("{date}", ctx.start)).expanduser()
        path = path if path.is_absolute() else ctx.config_dir / path
        if not path.is_file():
            ctx.notes.append(f"web source {source.name}: url file {path} not found; nothing fetched")
            return []
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                urls.append(line)
    return list(dict.fromkeys(u for u in urls if u))


def _get(session: requests.Session, url: str, source: WebSource, pacer: _Pacer) -> _Reply | RawRecord:
    """GET with one retry on a network error or timeout; the body is streamed and cut at `max_bytes`."""
    host = urlsplit(url).hostname or ""
    failure = ""
    for _ in range(2):
        pacer.wait(host)
        try:
            with session.get(url, timeout=source.timeout, stream=True) as resp:
                return _read_body(url, resp, source.max_bytes)
        except _TRANSIENT as e:
            failure = f"{type(e).__name__}: {e}"
        except requests.RequestException as e:
            return error_record(url, "fetch_error", f"{type(e).__name__}: {e}")
    return error_record(url, "fetch_error", f"{failure} (after 2 attempts)")


def _read_body(url: str, resp: requests.Response, max_bytes: int) -> _Reply | RawRecord:
    content_type = resp.headers.get("Content-Type", "")
    if not 200 <= resp.status_code < 300:
        return _Reply(resp.status_code, content_type, b"")
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return error_record(url, "too_large", f"Content-Length {declared} is over max_bytes={max_bytes}")
    body = bytearray()
    for chunk in resp.iter_content(_CHUNK):
        body += chunk
        if len(body) > max_bytes:
            return error_record(url, "too_large", f"body is over max_bytes={max_bytes}")
    return _Reply(resp.status_code, content_type, bytes(body))


def _read_robots(
    session: requests.Session, origin: str, source: WebSource, pacer: _Pacer, ctx: SourceContext
) -> _Robots:
    parser = RobotFileParser(f"{origin}/robots.txt")
    got = _get(session, f"{origin}/robots.txt", source, pacer)
    if isinstance(got, RawRecord) or got.status >= 500:
        problem = got.error if isinstance(got, RawRecord) else f"HTTP {got.status}"
        parser.disallow_all = True
        ctx.notes.append(f"web source {source.name}: robots.txt of {origin} unreadable ({problem}); its URLs skipped")
        return _Robots(parser, f"robots.txt of {origin} unreadable ({problem})")
    # a 3xx left after redirects or a 4xx: there is no robots.txt, so everything is allowed
    parser.parse(got.body.decode("utf-8", errors="replace").splitlines() if got.status < 300 else [])
    return _Robots(parser, f"robots.txt of {origin} disallows it for {source.user_agent!r}")


def _records(url: str, reply: _Reply) -> Iterator[RawRecord]:
    if not 200 <= reply.status < 300:
        yield error_record(url, "fetch_error", f"HTTP {reply.status}")
        return
    header = Message()
    header["Content-Type"] = reply.content_type
    mime = header.get_content_type()  # text/plain when the header is absent or malformed
    text = _decode(reply.body, header.get_content_charset())
    raw, nbytes = reply.body[:_RAW_CAP], len(reply.body)
    if mime == "application/json" or mime.endswith("+json"):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            yield error_record(url, "bad_json", str(e), raw=raw)
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                dumped = orjson.dumps(item)
                yield RawRecord(source_uri=f"{url}#{i}", payload=item, raw=dumped, nbytes=len(dumped))
        else:
            yield RawRecord(source_uri=url, payload=value, raw=raw, nbytes=nbytes)
        return
    meta = {"url": url, "content_type": reply.content_type, "fetched_status": reply.status}
    if mime in ("text/html", "application/xhtml+xml") or _looks_like_html(text):
        page = extract_main_text(text, url)
        if not (page["text"] or "").strip():
            yield error_record(url, "no_text", "no main text extracted", raw=raw)
            return
        payload = {"text": page["text"], "title": page["title"], **meta}
        yield RawRecord(source_uri=url, payload=payload, raw=raw, nbytes=nbytes)
    elif mime.startswith("text/"):
        if not text.strip():
            yield error_record(url, "no_text", "empty body", raw=raw)
            return
        yield RawRecord(source_uri=url, payload={"text": text, **meta}, raw=raw, nbytes=nbytes)
    else:
        yield error_record(url, "unsupported_content", f"content type {mime}", raw=raw)


def _decode(body: bytes, charset: str | None) -> str:
    """The declared charset when Python knows it, else UTF-8; undecodable bytes become U+FFFD."""
    if charset:
        try:
            return body.decode(charset, errors="replace").removeprefix("\ufeff")
        except LookupError:
            pass
    return body.decode("utf-8", errors="replace").removeprefix("\ufeff")


def _looks_like_html(text: str) -> bool:
    return text[:512].lstrip().lower().startswith(("<!doctype html", "<html"))
