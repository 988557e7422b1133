"""`ptdata demo` end to end in a fresh PTDATA_HOME: what a new user runs first."""

import gzip

import duckdb
import pytest

from ptdata.cli import main
from ptdata.demo.generate import DEMO_DAYS


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo")
    mp = pytest.MonkeyPatch()
    for var in ("PTDATA_CONFIG", "PTDATA_LAKE", "DAGSTER_HOME"):
        mp.delenv(var, raising=False)
    mp.setenv("PTDATA_HOME", str(home))
    try:
        assert main(["demo"]) == 0
        yield home
    finally:
        mp.undo()


def _rel(home, table: str) -> str:
    return f"read_parquet('{home}/lake/bronze/{table}/**/*.parquet', hive_partitioning=true)"


def test_every_regime_and_day_has_bronze_rows(demo_home):
    for regime in ("sft", "preference", "rlvr", "text"):
        days = duckdb.sql(
            f"select distinct cast(date as varchar) from {_rel(demo_home, f'bronze_{regime}')}"
        ).fetchall()
        assert sorted(d for (d,) in days) == [d.isoformat() for d in DEMO_DAYS], regime


def test_planted_defects_are_quarantined_with_their_reasons(demo_home):
    reasons = {
        r for (r,) in duckdb.sql(f"select distinct reason from {_rel(demo_home, 'bronze_quarantine')}").fetchall()
    }
    for expected in (
        "invalid_json",
        "invalid_utf8",
        "not_an_object",
        "wrong_type",
        "unknown_role",
        "empty_messages",
        "truncated_file",
    ):
        assert expected in reasons


def test_every_jsonl_line_is_in_bronze_or_quarantine(demo_home):
    """The contract's accounting, counted from the landing files themselves."""
    con = duckdb.connect()
    tables = [f"bronze_{r}" for r in ("sft", "preference", "rlvr", "text")] + ["bronze_quarantine"]
    union = " union all ".join(
        f"select source, cast(date as varchar) as d, source_uri from {_rel(demo_home, t)}" for t in tables
    )
    rows = con.sql(union).fetchall()
    checked = 0
    for path in sorted((demo_home / "landing").glob("*/*/*.jsonl*")):
        source, day = path.parts[-3], path.parts[-2]
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rb") as f:
                lines = sum(1 for line in f if line.strip())
        except (OSError, EOFError):
            continue  # the truncated file: its quarantine row is asserted above
        if path.suffix not in (".jsonl", ".gz"):
            continue
        got = sum(1 for s, d, u in rows if s == source and d == day and u.startswith(path.name + ":"))
        assert got == lines, f"{path}: {lines} lines, {got} rows"
        checked += 1
    assert checked >= 6
