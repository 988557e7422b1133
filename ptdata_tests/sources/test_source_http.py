"""The http source against a real JSON API server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import email.utils
import time
from typing import Any

import orjson
import pytest

from ptdata.core.config import HttpSource, Pagination
from ptdata.sources.base import SourceContext, SourceUnavailable
from ptdata.sources.http import public_url, read_http
from ptdata_tests.conftest import Api, ApiHandler, LoopbackServer, Reply


@pytest.fixture
def ctx(tmp_path: Any) -> SourceContext:
    return SourceContext(date=dt.date(2026, 11, 2), landing_dir=tmp_path, config_dir=tmp_path)


class SleepLog:
    """An injected sleep: records what was asked, waits for nothing."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def source(url: str, **kw: Any) -> HttpSource:
    return HttpSource(kind="http", name="api", regime="sft", url=url, **kw)


def test_cursor_pagination_yields_every_record_in_order(api: Api, ctx: SourceContext) -> None:
    pages = {None: (["a", "b"], "c2"), "c2": (["c", "d"], "c3"), "c3": (["e"], None)}

    def route(path: str, query: dict[str, str]) -> Reply:
        items, nxt = pages[query.get("cursor")]
        return Reply(body={"data": [{"id": i} for i in items], "meta": {"next": nxt}})

    api.route = route
    src = source(f"{api.url}/items", params={"limit": 2}, pagination=Pagination(type="cursor", cursor_path="meta.next"))
    records = list(read_http(src, ctx))

    assert [r.payload for r in records] == [{"id": i} for i in "abcde"]
    assert [r.source_uri for r in records] == [
        f"{api.url}/items?limit=2#0",
        f"{api.url}/items?limit=2#1",
        f"{api.url}/items?limit=2&cursor=c2#0",
        f"{api.url}/items?limit=2&cursor=c2#1",
        f"{api.url}/items?limit=2&cursor=c3#0",
    ]
    assert all(r.error is None for r in records)
    assert records[0].raw == b'{"id":"a"}' and records[0].nbytes == len(b'{"id":"a"}')
    assert len(api.seen) == 3
    replies = [route("/items", q).body for q in ({}, {"cursor": "c2"}, {"cursor": "c3"})]
    assert ctx.bytes_read == sum(len(orjson.dumps(r)) for r in replies)
    assert list(read_http(src, ctx)) == records  # deterministic


def test_page_pagination_stops_at_an_empty_page(api: Api, ctx: SourceContext) -> None:
    def route(path: str, query: dict[str, str]) -> Reply:
        page = int(query["p"])
        items = [] if page > 2 else [page * 10, page * 10 + 1]
        return Reply(body={"result": {"items": items}})

    api.route = route
    src = source(
        f"{api.url}/v1", records_path="result.items", pagination=Pagination(type="page", page_param="p", first_page=1)
    )
    records = list(read_http(src, ctx))

    assert [r.payload for r in records] == [10, 11, 20, 21]
    assert [r.source_uri for r in records] == [
        f"{api.url}/v1?p=1#0",
        f"{api.url}/v1?p=1#1",
        f"{api.url}/v1?p=2#0",
        f"{api.url}/v1?p=2#1",
    ]
    assert [q["p"] for _, q, _ in api.seen] == ["1", "2", "3"]


def test_max_pages_bounds_paging(api: Api, ctx: SourceContext) -> None:
    api.route = lambda path, query: Reply(body=[{"n": query["page"]}])
    src = source(f"{api.url}/x", records_path="", pagination=Pagination(type="page", max_pages=3))
    records = list(read_http(src, ctx))

    assert [r.payload for r in records] == [{"n": "1"}, {"n": "2"}, {"n": "3"}]
    assert any("max_pages=3" in note for note in ctx.notes)


def test_window_and_headers_reach_the_server(api: Api, ctx: SourceContext) -> None:
    api.route = lambda path, query: Reply(body={"data": [{"ok": True}]})
    src = source(
        f"{api.url}/export/{{start}}",
        params={"from": "{start}", "to": "{end}", "n": 5, "full": True},
        headers={"Authorization": "Bearer s3cret", "X-Window": "{start}..{end}"},
    )
    records = list(read_http(src, ctx))

    path, query, headers = api.seen[0]
    assert path == "/export/2026-11-02"
    assert query == {"from": "2026-11-02", "to": "2026-11-03", "n": "5", "full": "true"}
    assert headers["Authorization"] == "Bearer s3cret" and headers["X-Window"] == "2026-11-02..2026-11-03"
    assert records[0].source_uri == f"{api.url}/export/2026-11-02?from=2026-11-02&to=2026-11-03&n=5&full=true#0"


def test_non_object_elements_are_kept_as_payloads(api: Api, ctx: SourceContext) -> None:
    api.route = lambda path, query: Reply(body={"data": [{"a": 1}, "text", 3, None, [1]]})
    records = list(read_http(source(f"{api.url}/x"), ctx))

    assert [r.payload for r in records] == [{"a": 1}, "text", 3, None, [1]]
    assert all(r.error is None for r in records)


def test_429_with_retry_after_then_success(api: Api, ctx: SourceContext) -> None:
    calls = iter([Reply(429, {"error": "slow down"}, {"Retry-After": "7"}), Reply(body={"data": [{"x": 1}]})])
    api.route = lambda path, query: next(calls)
    sleep = SleepLog()
    records = list(read_http(source(f"{api.url}/x", backoff_base=0.01), ctx, sleep=sleep))

    assert [r.payload for r in records] == [{"x": 1}]
    assert len(sleep.calls) == 1 and sleep.calls[0] >= 7


def test_retry_after_as_an_http_date(api: Api, ctx: SourceContext) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    calls = iter([Reply(429, {}, {"Retry-After": when}), Reply(body={"data": []})])
    api.route = lambda path, query: next(calls)
    sleep = SleepLog()
    assert list(read_http(source(f"{api.url}/x", backoff_base=0.01), ctx, sleep=sleep)) == []
    assert 25 <= sleep.calls[0] <= 30


def test_503_twice_then_success(api: Api, ctx: SourceContext) -> None:
    calls = iter([Reply(503, {}), Reply(503, {}), Reply(body={"data": [{"x": 1}, {"x": 2}]})])
    api.route = lambda path, query: next(calls)
    sleep = SleepLog()
    records = list(read_http(source(f"{api.url}/x", backoff_base=1.0, backoff_max=1.5), ctx, sleep=sleep))

    assert [r.payload for r in records] == [{"x": 1}, {"x": 2}]
    assert len(sleep.calls) == 2
    assert 0 <= sleep.calls[0] <= 1.0 and 0 <= sleep.calls[1] <= 1.5  # full jitter under the capped backoff
    assert ctx.notes == []


def test_timeout_then_success(api: Api, ctx: SourceContext) -> None:
    calls = iter([Reply(body={"data": [{"late": 1}]}, delay=1.0), Reply(body={"data": [{"x": 1}]})])
    api.route = lambda path, query: next(calls)
    sleep = SleepLog()
    records = list(read_http(source(f"{api.url}/x", timeout=0.2), ctx, sleep=sleep))

    assert [r.payload for r in records] == [{"x": 1}]
    assert len(sleep.calls) == 1 and len(api.seen) == 2


def test_retries_exhausted_raise_source_unavailable(api: Api, ctx: SourceContext) -> None:
    # a server that stays down must not give a published partition with a hole: the step fails and is retried
    api.route = lambda path, query: Reply(503, b"upstream down")
    sleep = SleepLog()
    with pytest.raises(SourceUnavailable, match=r"/x: HTTP 503 after 3 attempts"):
        list(read_http(source(f"{api.url}/x", max_retries=2), ctx, sleep=sleep))
    assert len(api.seen) == 3 and len(sleep.calls) == 2


def test_server_down_mid_paging_raises_after_the_pages_read(api: Api, ctx: SourceContext) -> None:
    def route(path: str, query: dict[str, str]) -> Reply:
        if query.get("cursor") == "c2":
            return Reply(502, b"bad gateway")
        return Reply(body={"data": [{"x": 1}], "next_cursor": "c2"})

    api.route = route
    reader = read_http(
        source(f"{api.url}/x", max_retries=1, pagination=Pagination(type="cursor")), ctx, sleep=SleepLog()
    )
    assert next(reader).payload == {"x": 1}
    with pytest.raises(SourceUnavailable, match=r"cursor=c2: HTTP 502 after 2 attempts"):
        next(reader)


def test_error_mid_paging_keeps_earlier_pages_and_stops(api: Api, ctx: SourceContext) -> None:
    def route(path: str, query: dict[str, str]) -> Reply:
        if query.get("cursor") == "c2":
            return Reply(403, {"error": "forbidden"})
        return Reply(body={"data": [{"x": 1}], "next_cursor": "c2"})

    api.route = route
    sleep = SleepLog()
    records = list(read_http(source(f"{api.url}/x", pagination=Pagination(type="cursor")), ctx, sleep=sleep))

    assert [r.payload for r in records[:1]] == [{"x": 1}]
    assert records[1].error == "http_error: HTTP 403 after 1 attempts"
    assert records[1].source_uri == f"{api.url}/x?cursor=c2"
    assert len(records) == 2 and sleep.calls == []  # a 4xx other than 429 is not retried


def test_non_json_reply_is_an_error_record(api: Api, ctx: SourceContext) -> None:
    api.route = lambda path, query: Reply(body=b"<html>maintenance</html>")
    records = list(read_http(source(f"{api.url}/x"), ctx))

    assert len(records) == 1
    assert records[0].error is not None and records[0].error.startswith("http_error: HTTP 200 reply is not JSON")
    assert records[0].raw == b"<html>maintenance</html>"


def test_missing_records_path_is_an_error_record(api: Api, ctx: SourceContext) -> None:
    api.route = lambda path, query: Reply(body={"items": [1, 2]})
    records = list(read_http(source(f"{api.url}/x", records_path="data"), ctx))

    assert len(records) == 1
    assert records[0].error == "http_error: records path 'data' is missing in the reply"
    assert ctx.notes


def test_connection_refused_raises_source_unavailable(ctx: SourceContext) -> None:
    with LoopbackServer(("127.0.0.1", 0), ApiHandler) as closed:
        port = closed.server_address[1]  # bound and closed again: nothing listens there
    sleep = SleepLog()
    with pytest.raises(SourceUnavailable, match=r"ConnectionError.*after 2 attempts"):
        list(read_http(source(f"http://127.0.0.1:{port}/x", max_retries=1), ctx, sleep=sleep))
    assert len(sleep.calls) == 1


def test_credentials_reach_the_server_but_not_the_source_uri(api: Api, ctx: SourceContext) -> None:
    api.route = lambda path, query: Reply(body={"data": [{"id": 1}]} if query["api_key"] == "s3cret" else {})
    src = source(f"{api.url}/items", params={"api_key": "s3cret", "lang": "en"})
    (record,) = list(read_http(src, ctx))
    assert api.seen[0][1]["api_key"] == "s3cret"
    assert record.source_uri == f"{api.url}/items?api_key=***&lang=en#0" and "s3cret" not in record.source_uri
    assert public_url("https://bob:pw@h.example/v1?token=t&signature=s&page=2") == (
        "https://***@h.example/v1?token=***&signature=***&page=2"
    )
