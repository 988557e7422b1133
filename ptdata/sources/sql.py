"""Rows of a SQL query as raw records (`kind: sql`): sqlite and DuckDB files, PostgreSQL servers.

The query runs once per daily partition with the window [start, end) bound as the parameters `:start` and
`:end` (ISO dates, 'YYYY-MM-DD'), never formatted into the SQL text. Compare timestamps with the parameters
directly or through `CAST(:start AS ...)`; SQLAlchemy does not see `:start::date` as a parameter. Colons
inside '...' strings, "..." identifiers and comments are left as written. The reader keeps the row order
the database returns, so a query must ORDER BY a key for `source_uri` (the 0-based row index) to name the
same row on every run. For a PostgreSQL timestamptz column the window is in the session's time zone.

Databases are opened read-only: sqlite through a `mode=ro` URI, DuckDB with `read_only` (readers in
several processes share the file; DuckDB admits a writer elsewhere only once no reader has it open),
PostgreSQL in read-only transactions. PostgreSQL streams through a server-side cursor, so its query must
be a SELECT."""

from __future__ import annotations

import base64
import datetime as dt
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from ptdata.core.config import SqlSource
from ptdata.sources.base import RawRecord, SourceContext, SourceUnavailable, error_record

# rows fetched from the database at a time; bounds the reader's memory, not its output
BATCH_ROWS = 1000
# seconds; a scheduled run should fail on an unreachable server, not hang
_PG_CONNECT_TIMEOUT = 10
_MAX_MESSAGE = 300
_SQLA_LINK = re.compile(r"\s*\(Background on this error at: [^)]*\)")

# connection errors a retry cannot cure (PostgreSQL's wording)
_PERMANENT = re.compile(r"authentication failed|does not exist|no pg_hba\.conf entry|permission denied", re.IGNORECASE)
# what text() would misread as parameters: colons inside quoted strings, quoted identifiers and comments
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.DOTALL)


@dataclass(frozen=True)
class _Target:
    """How to open one database, and how to name it without its credentials."""

    ident: str
    url: URL | str
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    server: bool = False  # a database server (its connection errors may pass), not a local file

    def engine(self) -> Engine:
        return create_engine(self.url, poolclass=NullPool, **self.engine_kwargs)


def _file_path(url: URL, config_dir: Path) -> Path:
    if not url.database or url.database == ":memory:":
        raise ValueError(f"a {url.get_backend_name()} uri must name a database file")
    p = Path(url.database).expanduser()
    return p if p.is_absolute() else (config_dir / p).resolve()


def _target(uri: str, config_dir: Path) -> _Target:
    """Parse a source uri; raises ValueError for a uri that is malformed or of an unsupported kind."""
    try:
        url = make_url(uri)
    except (ArgumentError, ValueError):
        raise ValueError("the uri is not a database URL") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = _file_path(url, config_dir)
        ro_uri = path.as_uri() + "?mode=ro"  # as_uri quotes '?' and '#' in the file name
        return _Target(
            ident=path.name,
            url="sqlite://",
            # the stream may be resumed from another thread than the one that opened it; it is never shared
            engine_kwargs={"creator": lambda: sqlite3.connect(ro_uri, uri=True, check_same_thread=False)},
        )
    if backend == "duckdb":
        path = _file_path(url, config_dir)
        return _Target(
            ident=path.name, url=url.set(database=str(path)), engine_kwargs={"connect_args": {"read_only": True}}
        )
    if backend in ("postgresql", "postgres"):
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": _PG_CONNECT_TIMEOUT}
        return _Target(
            ident=f"{url.host or 'localhost'}/{url.database or ''}",
            url=url,
            engine_kwargs={"connect_args": connect_args, "execution_options": {"postgresql_readonly": True}},
            secrets=tuple(s for s in (url.username, url.password) if s),
            server=True,
        )
    raise ValueError(f"unsupported database {backend!r}; use a sqlite:///, duckdb:/// or postgresql:// uri")


def _short_message(exc: BaseException, secrets: tuple[str, ...]) -> str:
    """The driver's own first line, with the user name and password blanked out (servers echo the role)."""
    orig = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's exception; its text adds the SQL
    lines = str(orig).strip().splitlines()
    msg = f"{type(orig).__name__}: {_SQLA_LINK.sub('', lines[0]) if lines else ''}".strip()
    for s in secrets:
        msg = re.sub(rf"(?<!\w){re.escape(s)}(?!\w)", "***", msg)
    return msg[:_MAX_MESSAGE]


def _transient(exc: BaseException) -> bool:
    """A server error that may pass: refused or dropped connections, timeouts, a server starting up or out of
    connection slots. Bad credentials or a missing database are OperationalErrors too, but will not pass."""
    if isinstance(exc, DisconnectionError):
        return True
    return isinstance(exc, OperationalError) and not _PERMANENT.search(str(getattr(exc, "orig", None) or exc))


def _json_safe(v: Any) -> Any:
    """A value JSON can carry.

    Decimal becomes its exact string ("3.10" stays "3.10"): a float would round wide numerics and drop
    trailing zeros, which matters for an answer column a verifier compares as text.
    """
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, dt.date | dt.time):  # datetime is a date
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, bytes | bytearray | memoryview):
        b = bytes(v)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(b).decode("ascii")
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    return str(v)  # UUID, interval, network address: their text form


def _cell(v: Any) -> Any:
    """A column's value: text holding a JSON array or object (e.g. messages) is parsed, so shape mapping sees
    lists and dicts whether the database stored JSON text or a json type."""
    if isinstance(v, str) and v.lstrip()[:1] in ("[", "{"):
        try:
            parsed = orjson.loads(v)
        except orjson.JSONDecodeError:
            return v
        return parsed if isinstance(parsed, list | dict) else v
    return _json_safe(v)


def read_sql(source: SqlSource, ctx: SourceContext) -> Iterator[RawRecord]:
    """Yield one record per row of `source.query` for the partition window of `ctx`.

    `payload` maps column names to JSON-ready values; `source_uri` is `sql:<db>#<row>` where <db> is the
    file name or `host/dbname`, never a credential. A failure to connect or to run the query yields one
    `sql_error` record (after the rows already read) and a line in `ctx.notes`, and ends the stream.
    """
    try:
        target = _target(source.uri, ctx.config_dir)
    except ValueError as e:
        # the uri may hold a password; the message never quotes it
        yield _failure(source, ctx, source.name, str(e))
        return
    # quoted colons are escaped so text() binds only real parameters; SQLAlchemy removes the backslashes
    stmt = text(_QUOTED.sub(lambda m: m.group(0).replace(":", "\\:"), source.query))
    try:
        with target.engine().connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(
                stmt, {"start": ctx.start, "end": ctx.end}
            )
            keys = list(result.keys())
            for index, row in enumerate(result):
                payload = {k: _cell(v) for k, v in zip(keys, row, strict=True)}
                raw = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str)
                yield RawRecord(source_uri=f"sql:{target.ident}#{index}", payload=payload, raw=raw, nbytes=len(raw))
    except (SQLAlchemyError, ImportError) as e:
        message = _short_message(e, target.secrets)
        if target.server and _transient(e):
            raise SourceUnavailable(f"sql source {source.name} ({target.ident}): {message}") from None
        yield _failure(source, ctx, target.ident, message)


def _failure(source: SqlSource, ctx: SourceContext, ident: str, message: str) -> RawRecord:
    ctx.notes.append(f"sql source {source.name} ({ident}): {message}")
    return error_record(f"sql:{ident}", "sql_error", message)
