"""Reader of paginated JSON APIs (`kind: http`).

One page is in memory at a time. A page the server refuses for good (4xx other than 429, a reply that is not
JSON or lacks the records) becomes one error record and ends the paging: without its reply there is no next
cursor to follow, and guessing page numbers past a gap would make the partition's content depend on which
request happened to fail. A page that fails for a reason that may pass (network errors, timeouts, 429, 5xx)
is retried with backoff; once `max_retries` are spent it raises SourceUnavailable, so the partition is not
published partial and the bronze step is retried later as a whole.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import requests

from ptdata.core.config import HttpSource
from ptdata.sources.base import RawRecord, SourceContext, SourceUnavailable, error_record

_RAW_CAP = 4096  # bytes of a failed reply kept for the quarantine table
_SECRET_PARAM = re.compile(r"key|token|secret|password|passwd|auth|signature|^sig$|credential", re.IGNORECASE)
_MISSING = object()
# failures worth another try: the server or the network may recover; anything else will fail the same way
_TRANSIENT = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)


def read_http(
    source: HttpSource, ctx: SourceContext, *, sleep: Callable[[float], None] = time.sleep
) -> Iterator[RawRecord]:
    """Yield one record per element of each reply's `records_path`, page after page.

    `{start}` and `{end}` in the URL, in string params and in header values become the partition window.
    `sleep` is what waits between retries (tests pass one that only records the delay).
    """
    pag = source.pagination
    url = _fill(source.url, ctx)
    params = {k: _fill(v, ctx) for k, v in source.params.items()}
    cursor: Any = None
    page = pag.first_page
    with requests.Session() as session:
        session.headers.update({k: _fill(v, ctx) for k, v in source.headers.items()})
        for n in range(1, pag.max_pages + 1):
            query = dict(params)
            if pag.type == "cursor" and cursor is not None:
                query[pag.cursor_param] = cursor
            elif pag.type == "page":
                query[pag.page_param] = page
            got = _get_json(session, url, query, source, ctx, sleep)
            if isinstance(got, RawRecord):
                ctx.notes.append(f"http source {source.name}: page {n} failed, paging stopped: {got.error}")
                yield got
                return
            page_url, reply = got
            records = _dig(reply, source.records_path)
            if records is None:  # many APIs write null for "no items"
                records = []
            if not isinstance(records, list):
                what = "missing" if records is _MISSING else f"a {type(records).__name__}, not a list"
                detail = f"records path {source.records_path!r} is {what} in the reply"
                ctx.notes.append(f"http source {source.name}: page {n} unusable, paging stopped: {detail}")
                yield error_record(page_url, "http_error", detail, raw=orjson.dumps(reply)[:_RAW_CAP])
                return
            for i, item in enumerate(records):
                raw = orjson.dumps(item)
                yield RawRecord(source_uri=f"{page_url}#{i}", payload=item, raw=raw, nbytes=len(raw))
            if pag.type == "none" or (pag.type == "page" and not records):
                return
            if pag.type == "page":
                page += 1
            else:
                cursor = _dig(reply, pag.cursor_path)
                if cursor is _MISSING or cursor is None or cursor == "":
                    return
        ctx.notes.append(f"http source {source.name}: stopped at max_pages={pag.max_pages}; more pages may remain")


def public_url(url: str) -> str:
    """`url` with the values of credential-like query parameters (api_key, token, sig, ...) and any
    user:password replaced by ***: source_uri is stored in every table, and an API key in it would be too.
    A URL with nothing to mask is returned exactly as given."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if "@" not in parts.netloc and not any(_SECRET_PARAM.search(k) for k, _ in pairs):
        return url
    query = [(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs]
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"***@{host}" if "@" in parts.netloc else host
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="*")))


def _fill(value: Any, ctx: SourceContext) -> Any:
    """Put the partition window into a string; JSON-style spelling for booleans, other values as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # not str.format: a literal brace elsewhere in a URL or a header must not be an error
        return value.replace("{start}", ctx.start).replace("{end}", ctx.end)
    return value


def _dig(value: Any, path: str) -> Any:
    """The value at a dotted path ("result.items", "" for the value itself); _MISSING when absent."""
    for key in path.split(".") if path else []:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return _MISSING
    return value


def _get_json(
    session: requests.Session,
    url: str,
    query: dict[str, Any],
    source: HttpSource,
    ctx: SourceContext,
    sleep: Callable[[float], None],
) -> tuple[str, Any] | RawRecord:
    """(the final request URL, the parsed reply), or the error record that stands for the page."""
    try:
        prepared = session.prepare_request(requests.Request("GET", url, params=query))
    except requests.RequestException as e:
        return error_record(url, "http_error", f"cannot build the request: {_describe(e)}")
    # the URL that names the page in the lake (source_uri, errors) carries no credentials
    target = public_url(prepared.url or url)
    attempts = 0
    while True:
        attempts += 1
        body: bytes | None = None
        retry_after = 0.0
        try:
            resp = session.send(prepared, timeout=source.timeout)
        except _TRANSIENT as e:
            failure = _describe(e)
        except requests.RequestException as e:
            return error_record(target, "http_error", f"{_describe(e)} after {attempts} attempts")
        else:
            ctx.bytes_read += len(resp.content)
            body = resp.content[:_RAW_CAP] or None
            failure = f"HTTP {resp.status_code}"
            if 200 <= resp.status_code < 300:
                try:
                    return target, orjson.loads(resp.content)
                except orjson.JSONDecodeError as e:
                    return error_record(target, "http_error", f"{failure} reply is not JSON: {e}", raw=body)
            if resp.status_code != 429 and resp.status_code < 500:
                return error_record(target, "http_error", f"{failure} after {attempts} attempts", raw=body)
            retry_after = _retry_after(resp.headers.get("Retry-After"))
        if attempts > source.max_retries:
            raise SourceUnavailable(f"http source {source.name}: {target}: {failure} after {attempts} attempts")
        sleep(_delay(source, attempts - 1, retry_after))


def _delay(source: HttpSource, attempt: int, retry_after: float) -> float:
    """Full-jitter exponential backoff, raised to the server's Retry-After; `backoff_max` bounds any wait."""
    ceiling = min(source.backoff_max, source.backoff_base * 2 ** min(attempt, 32))
    return min(max(random.uniform(0, ceiling), retry_after), source.backoff_max)


def _retry_after(value: str | None) -> float:
    """Seconds asked for by a Retry-After header (delta-seconds or an HTTP-date); 0 when absent or unreadable."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _describe(e: Exception) -> str:
    return f"{type(e).__name__}: {e}"
