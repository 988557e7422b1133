"""The sql source against real sqlite, DuckDB and (when its binaries are installed) PostgreSQL databases."""

from __future__ import annotations

import datetime as dt
import glob
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import orjson
import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from ptdata.core.config import SqlSource
from ptdata.sources.base import RawRecord, SourceContext, SourceUnavailable
from ptdata.sources.sql import BATCH_ROWS, read_sql

DAY = dt.date(2026, 11, 2)
MESSAGES = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
# (id, timestamp, author, note): three days, the partition's edges included on both sides
ROWS = [
    (1, "2026-11-01 23:59:59", "before", "x"),
    (2, "2026-11-02 00:00:00", "O'Brien", ":start"),
    (3, "2026-11-02 12:30:00", "Zoë 日本語 🙂", None),
    (4, "2026-11-02 23:59:59", "last", "'; DROP TABLE chats; --"),
    (5, "2026-11-03 00:00:00", "after", "y"),
]
WINDOW_QUERY = (
    "SELECT id, created_at, author, note, messages FROM chats WHERE created_at >= :start AND created_at < :end "
    "ORDER BY id"
)


def _source(uri: str, query: str = WINDOW_QUERY) -> SqlSource:
    return SqlSource(name="chats", regime="sft", kind="sql", uri=uri, query=query)


def _ctx(config_dir: Path) -> SourceContext:
    return SourceContext(date=DAY, landing_dir=config_dir / "landing", config_dir=config_dir)


def _read(uri: str, ctx: SourceContext, query: str = WINDOW_QUERY) -> list[RawRecord]:
    return list(read_sql(_source(uri, query), ctx))


def _make_sqlite(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE chats (id INTEGER PRIMARY KEY, created_at TEXT, author TEXT, note TEXT, messages TEXT)"
        )
        db.executemany(
            "INSERT INTO chats VALUES (?, ?, ?, ?, ?)", [(*r, orjson.dumps(MESSAGES).decode()) for r in ROWS]
        )
    db.close()
    return path


def _make_duckdb(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = duckdb.connect(str(path))
    db.execute(
        "CREATE TABLE chats (id INTEGER, created_at TIMESTAMP, author VARCHAR, note VARCHAR, messages VARCHAR, "
        "price DECIMAL(10, 2), blob BLOB)"
    )
    db.executemany(
        "INSERT INTO chats VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(*r, orjson.dumps(MESSAGES).decode(), Decimal("3.10"), b"\xff\x00") for r in ROWS],
    )
    db.close()  # an open read-write handle in this process would refuse the reader's read-only one
    return path


def _assert_window(records: list[RawRecord], ident: str) -> None:
    assert [r.error for r in records] == [None, None, None]
    assert [r.payload["id"] for r in records] == [2, 3, 4]
    assert [r.source_uri for r in records] == [f"sql:{ident}#0", f"sql:{ident}#1", f"sql:{ident}#2"]
    first, second, third = (r.payload for r in records)
    assert first["author"] == "O'Brien" and first["note"] == ":start"
    assert second["author"] == "Zoë 日本語 🙂" and second["note"] is None
    assert third["note"] == "'; DROP TABLE chats; --"
    assert first["messages"] == MESSAGES  # JSON text comes out as a list, ready for shape mapping
    for r in records:
        assert r.raw == orjson.dumps(r.payload, option=orjson.OPT_SORT_KEYS)
        assert r.nbytes == len(r.raw)


@pytest.fixture
def executed() -> Iterator[list[tuple[str, object]]]:
    """Every (SQL text, parameters) pair sent to a driver while the test runs."""
    seen: list[tuple[str, object]] = []

    def listen(conn: object, cursor: object, statement: str, parameters: object, *_: object) -> None:
        seen.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", listen)
    yield seen
    event.remove(Engine, "before_cursor_execute", listen)


def test_sqlite_window_selects_the_partition_rows(tmp_path: Path) -> None:
    _make_sqlite(tmp_path / "chats.db")
    records = _read(f"sqlite:///{tmp_path / 'chats.db'}", _ctx(tmp_path))
    _assert_window(records, "chats.db")
    assert records[0].payload["created_at"] == "2026-11-02 00:00:00"


def test_duckdb_window_and_value_conversion(tmp_path: Path) -> None:
    _make_duckdb(tmp_path / "chats.duckdb")
    query = WINDOW_QUERY.replace("messages FROM", "messages, price, blob FROM")
    records = _read(f"duckdb:///{tmp_path / 'chats.duckdb'}", _ctx(tmp_path), query)
    _assert_window(records, "chats.duckdb")
    first = records[0].payload
    assert first["created_at"] == "2026-11-02T00:00:00"
    assert first["price"] == "3.10"  # Decimal keeps its exact text
    assert first["blob"] == "/wA="  # bytes that are not UTF-8 become base64


def test_parameters_are_bound_not_formatted(tmp_path: Path, executed: list[tuple[str, object]]) -> None:
    _make_sqlite(tmp_path / "chats.db")
    query = (
        "SELECT id, ':start' AS lit, 'O''Brien at 12:30' AS quoted, \"author\" FROM chats "
        "WHERE created_at >= :start AND created_at < :end /* not :end */ ORDER BY id -- nor :start"
    )
    records = _read("sqlite:///chats.db", _ctx(tmp_path), query)
    assert [r.payload["id"] for r in records] == [2, 3, 4]
    assert records[0].payload["lit"] == ":start"
    assert records[0].payload["quoted"] == "O'Brien at 12:30"
    ((statement, parameters),) = executed
    assert "2026-11" not in statement
    assert DAY.isoformat() in str(parameters) and "2026-11-03" in str(parameters)
    # the text reaches the driver as written, but for the two placeholders the driver binds
    assert statement == query.replace(">= :start", ">= ?").replace("< :end ", "< ? ")


def test_relative_paths_resolve_against_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_dir = tmp_path / "project"
    _make_sqlite(config_dir / "data" / "chats.db")
    _make_duckdb(config_dir / "data" / "chats.duckdb")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    _assert_window(_read("sqlite:///data/chats.db", _ctx(config_dir)), "chats.db")
    _assert_window(_read("duckdb:///data/chats.duckdb", _ctx(config_dir)), "chats.duckdb")


@pytest.mark.parametrize("kind", ["sqlite", "duckdb"])
def test_files_are_opened_read_only(tmp_path: Path, kind: str) -> None:
    path = _make_sqlite(tmp_path / "chats.db") if kind == "sqlite" else _make_duckdb(tmp_path / "chats.duckdb")
    writing = "INSERT INTO chats (id, created_at) SELECT 99, :start WHERE :start < :end RETURNING id"
    (record,) = _read(f"{kind}:///{path.name}", _ctx(tmp_path), writing)
    assert record.error is not None and record.error.startswith("sql_error: ")
    assert len(_read(f"{kind}:///{path.name}", _ctx(tmp_path))) == 3  # nothing was inserted
    (missing,) = _read(f"{kind}:///missing.db", _ctx(tmp_path))
    assert missing.error is not None and missing.error.startswith("sql_error: ")
    assert not (tmp_path / "missing.db").exists()  # a missing file is an error, not a new empty database


def test_bad_table_is_one_sql_error(tmp_path: Path) -> None:
    _make_sqlite(tmp_path / "chats.db")
    ctx = _ctx(tmp_path)
    records = _read("sqlite:///chats.db", ctx, WINDOW_QUERY.replace("FROM chats", "FROM no_such_table"))
    assert len(records) == 1
    assert records[0].source_uri == "sql:chats.db"
    assert records[0].error == "sql_error: OperationalError: no such table: no_such_table"
    assert records[0].payload is None
    assert len(ctx.notes) == 1 and "no_such_table" in ctx.notes[0] and "\n" not in ctx.notes[0]


def test_unsupported_uri_is_an_error(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    (record,) = _read("mysql://bob:pw@db.example/shop", ctx)
    assert record.error is not None and record.error.startswith("sql_error: unsupported database 'mysql'")
    assert "bob" not in record.error and len(ctx.notes) == 1


def test_refused_connection_is_unavailable_and_hides_credentials(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = _ctx(tmp_path)
    # a server that refuses connections may be back later: the step fails (and is retried), nothing is quarantined
    with pytest.raises(SourceUnavailable, match=r"\(127.0.0.1/shop\): OperationalError: ") as caught:
        _read(f"postgresql://alice_secret:hunter2@127.0.0.1:{port}/shop", ctx)
    for text in (str(caught.value), *ctx.notes):
        assert "alice_secret" not in text and "hunter2" not in text


def test_rows_stream_lazily(tmp_path: Path) -> None:
    total = 50_000
    with sqlite3.connect(tmp_path / "big.db") as db:
        db.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, day TEXT, body TEXT)")
        db.execute(
            "INSERT INTO big WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?) "
            "SELECT i, '2026-11-02', printf('row %d', i) FROM n",
            (total,),
        )
    db.close()
    produced = 0

    def probe(value: int) -> int:
        nonlocal produced
        produced += 1
        return value

    def register(dbapi_conn: sqlite3.Connection, record: object) -> None:
        dbapi_conn.create_function("probe", 1, probe)

    # the database calls probe() once for each row it has produced, so the count is what was fetched
    event.listen(Pool, "connect", register)
    try:
        query = "SELECT id, probe(id) AS p, body FROM big WHERE day >= :start AND day < :end ORDER BY id"
        stream = read_sql(_source("sqlite:///big.db", query), _ctx(tmp_path))
        first = next(stream)
        assert first.payload == {"id": 0, "p": 0, "body": "row 0"}
        assert produced <= BATCH_ROWS + 1 < total
        assert sum(1 for _ in stream) == total - 1
        assert produced == total
    finally:
        event.remove(Pool, "connect", register)


# --- PostgreSQL: a throwaway cluster, when the server binaries are installed ---------------------------------


def _pg_bin_dir() -> Path | None:
    initdb = shutil.which("initdb")
    candidates = [Path(initdb).resolve().parent] if initdb else []
    candidates += sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    return next((d for d in candidates if (d / "initdb").is_file() and (d / "pg_ctl").is_file()), None)


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {(done.stderr or done.stdout)[-2000:]}")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A superuser URL (trust auth, no password) of a fresh cluster holding a `shop` database."""
    bin_dir = _pg_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found in PATH or /usr/lib/postgresql/*/bin")
    as_owner: list[str] = []
    owner = None
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # initdb refuses to run as root
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run initdb as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root and runuser is not available to run initdb as 'postgres'")
        as_owner = ["runuser", "-u", "postgres", "--"]
    # directly under /tmp: pytest's own tmp dirs are private to the user running the tests
    tmp = Path(tempfile.mkdtemp(prefix="ptdata-pg-"))
    if owner is not None:
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
    data = tmp / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server_opts = f"-k {tmp} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off -c timezone=UTC"
    pg_ctl = [*as_owner, str(bin_dir / "pg_ctl"), "-D", str(data)]
    try:
        _run([*as_owner, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
              "--no-locale", "--no-sync"])  # fmt: skip
        _run([*pg_ctl, "-l", str(tmp / "server.log"), "-w", "-t", "30", "-o", server_opts, "start"])
        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as db:
            db.execute("CREATE DATABASE shop")
        yield f"postgresql://postgres@127.0.0.1:{port}/shop"
    finally:
        if (data / "postmaster.pid").exists():
            _run([*pg_ctl, "-m", "immediate", "stop"])
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_chats(pg_url: str) -> str:
    with psycopg.connect(pg_url) as db:
        db.execute(
            "CREATE TABLE chats (id int PRIMARY KEY, created_at timestamptz, author text, note text, messages jsonb, "
            "price numeric(10, 2))"
        )
        db.execute("CREATE SEQUENCE chats_seq")
        with db.cursor() as cur:
            cur.executemany(
                "INSERT INTO chats VALUES (%s, %s, %s, %s, %s, %s)",
                [(*r[:1], f"{r[1]}+00", *r[2:], orjson.dumps(MESSAGES).decode(), Decimal("3.10")) for r in ROWS],
            )
    return pg_url


def test_postgres_window(pg_chats: str, tmp_path: Path) -> None:
    query = WINDOW_QUERY.replace("messages FROM", "messages, price FROM")
    records = _read(pg_chats, _ctx(tmp_path), query)
    _assert_window(records, "127.0.0.1/shop")
    assert records[0].payload["created_at"] == "2026-11-02T00:00:00+00:00"
    assert records[0].payload["price"] == "3.10"
    # the postgres:// spelling and the explicit psycopg driver read the same rows
    for scheme in ("postgres://", "postgresql+psycopg://"):
        same = _read(pg_chats.replace("postgresql://", scheme), _ctx(tmp_path), query)
        assert [r.payload for r in same] == [r.payload for r in records]


def test_postgres_is_read_only(pg_chats: str, tmp_path: Path) -> None:
    # a server-side cursor cannot hold an INSERT, so a sequence is what a read could still change
    writing = WINDOW_QUERY.replace("messages FROM", "nextval('chats_seq') AS n FROM")
    (record,) = _read(pg_chats, _ctx(tmp_path), writing)
    assert record.error is not None and "read-only transaction" in record.error
    with psycopg.connect(pg_chats) as db:
        assert db.execute("SELECT last_value, is_called FROM chats_seq").fetchone() == (1, False)


def test_postgres_errors_hide_credentials(pg_chats: str, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    # the server names the unknown role in its answer; the reader must not repeat it
    url = pg_chats.replace("postgres@", "alice_secret:hunter2@")
    (record,) = _read(url, ctx)
    assert record.error is not None and record.error.startswith("sql_error: OperationalError: ")
    assert "***" in record.error
    for text in (record.error, record.source_uri, *ctx.notes):
        assert "alice_secret" not in text and "hunter2" not in text
    (bad,) = _read(pg_chats, ctx, WINDOW_QUERY.replace("FROM chats", "FROM no_such_table"))
    assert bad.error is not None and 'relation "no_such_table" does not exist' in bad.error
