"""`ptdata demo` end to end in a fresh PTDATA_HOME: what a new user runs first."""

import gzip

import duckdb

from ptdata.demo.generate import DEMO_DAYS


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


def _silver(home, table: str) -> str:
    return f"read_parquet('{home}/lake/silver/{table}/**/*.parquet', hive_partitioning=true)"


# Every record silver rejects on the demo, by (source, date, source_uri): the defects generate.py plants (see its
# docstring). Punctuation-and-spacing variants of a near duplicate are exact duplicates once case, punctuation and
# spacing are folded, and the survivor of a group is its earliest (date, record_id), not its earliest line.
PLANTED_REJECTIONS = {
    ("chat_openai", "2026-11-01", "conversations-000.jsonl:40"): "contaminated",
    ("qa_pairs", "2026-11-02", "qa-000.jsonl.zst:7"): "contaminated",
    ("math_rlvr", "2026-11-02", "sql:problems.sqlite#29"): "contaminated",
    ("chat_openai", "2026-11-01", "conversations-000.jsonl:3"): "exact_dup",
    ("chat_openai", "2026-11-01", "conversations-000.jsonl:9"): "exact_dup",
    ("chat_openai", "2026-11-02", "conversations-000.jsonl:3"): "exact_dup",
    ("chat_openai", "2026-11-03", "conversations-000.jsonl:4"): "exact_dup",
    ("chat_openai", "2026-11-02", "conversations-000.jsonl:22"): "exact_dup",
    ("sharegpt_export", "2026-11-01", "export.json#10"): "exact_dup",
    ("sharegpt_export", "2026-11-02", "export.json#5"): "exact_dup",
    ("sharegpt_export", "2026-11-03", "export.json.zst#7"): "exact_dup",
    ("forum_dump", "2026-11-01", "posts-000.jsonl:2"): "exact_dup",
    ("forum_dump", "2026-11-02", "posts-000.jsonl:3"): "exact_dup",
    ("forum_dump", "2026-11-03", "posts-000.jsonl:5"): "exact_dup",
    ("forum_dump", "2026-11-02", "posts-000.jsonl:9"): "exact_dup",
    ("web_docs", "2026-11-02", "mwangi-study-patients-who-received-follow-up-calls-from-a-pharmacist-w.html"): (
        "exact_dup"
    ),
    ("chat_openai", "2026-11-01", "conversations-000.jsonl:25"): "near_dup",
    ("chat_openai", "2026-11-03", "conversations-000.jsonl:10"): "near_dup",
    ("forum_dump", "2026-11-01", "posts-000.jsonl:8"): "near_dup",
    ("forum_dump", "2026-11-03", "posts-000.jsonl:11"): "near_dup",
    ("web_docs", "2026-11-01", "mwangi-study-patients-who-received-follow-up-calls-from-a-pharmacist-w-2.html"): (
        "near_dup"
    ),
    ("web_docs", "2026-11-03", "mwangi-study-patients-who-received-follow-up-calls-from-a-pharmacist-w.html"): (
        "near_dup"
    ),
    ("chat_openai", "2026-11-01", "conversations-000.jsonl:66"): "quality:empty_turn",
    ("chat_openai", "2026-11-02", "conversations-001.jsonl:9"): "quality:empty_turn",
    ("chat_openai", "2026-11-03", "conversations-002.jsonl.gz:3"): "quality:empty_turn",
    ("chat_openai", "2026-11-01", "conversations-000.jsonl:70"): "quality:refusal",
    ("chat_openai", "2026-11-02", "conversations-000.jsonl:41"): "quality:refusal",
    ("chat_openai", "2026-11-03", "conversations-000.jsonl:33"): "quality:refusal",
    ("chat_openai", "2026-11-01", "conversations-001.jsonl:15"): "quality:truncated",
    ("chat_openai", "2026-11-02", "conversations-001.jsonl:12"): "quality:truncated",
    ("chat_openai", "2026-11-01", "conversations-001.jsonl:18"): "quality:truncated",
    ("chat_openai", "2026-11-03", "conversations-000.jsonl:21"): "quality:truncated",
    ("prefs_pairs", "2026-11-01", "pairs.parquet#13"): "quality:identical_pair",
    ("prefs_pairs", "2026-11-02", "pairs-msgs.jsonl:5"): "quality:identical_pair",
    ("prefs_pairs", "2026-11-03", "pairs.parquet#40"): "quality:identical_pair",
    ("math_rlvr", "2026-11-01", "sql:problems.sqlite#16"): "quality:unparseable_answer",
}


def test_silver_rejects_exactly_the_planted_records(demo_home):
    rows = duckdb.sql(
        f"select source, cast(date as varchar), source_uri, reason, eval_set from {_silver(demo_home, 'silver_rejections')}"
    ).fetchall()
    assert {(s, d, u): r for s, d, u, r, _ in rows} == PLANTED_REJECTIONS
    assert {e for *_, r, e in rows if r == "contaminated"} == {"demo_eval"}


def test_silver_duplicates_name_a_kept_record_and_accounting_holds(demo_home):
    con = duckdb.connect()
    kept = " union all ".join(
        f"select record_id, cast(date as varchar) as d from {_silver(demo_home, f'silver_{r}')}"
        for r in ("sft", "preference", "rlvr", "text")
    )
    bronze = " union all ".join(
        f"select record_id, cast(date as varchar) as d from {_rel(demo_home, f'bronze_{r}')}"
        for r in ("sft", "preference", "rlvr", "text")
    )
    con.sql(f"create view kept as {kept}")
    con.sql(f"create view rejected as select record_id, dup_of from {_silver(demo_home, 'silver_rejections')}")
    orphans = con.sql(
        "select count(*) from rejected where dup_of is not null and dup_of not in (select record_id from kept)"
    )
    assert orphans.fetchone()[0] == 0
    counts = con.sql(
        f"select (select count(*) from ({bronze})), (select count(*) from kept), (select count(*) from rejected), "
        "(select count(distinct record_id) from (select record_id from kept union all select record_id from rejected))"
    ).fetchone()
    assert counts[0] == counts[1] + counts[2] == counts[3]


def test_silver_holds_redacted_text_and_no_raw_pii(demo_home):
    text = duckdb.sql(
        f"select list_aggr(list_transform(messages, m -> m.content), 'string_agg', ' ') from "
        f"{_silver(demo_home, 'silver_sft')} where source = 'chat_openai'"
    ).fetchall()
    joined = " ".join(t for (t,) in text)
    assert "<EMAIL>" in joined and "<PHONE>" in joined and "<SECRET:" in joined
    assert "ghp_" not in joined and "AKIA" not in joined


def test_demo_days_newest_first_then_oldest_first_give_the_same_silver(demo_home, tmp_path):
    """ARCHITECTURE.md, principle 5. Newest first, each day's silver sees only what is there (and warns); re-materializing
    oldest first, as the staleness asks, gives byte for byte the silver of one run in date order."""
    import dagster as dg

    from ptdata.core.config import BUNDLED_DEMO_CONFIG, Settings
    from ptdata.demo.generate import write_demo_landing
    from ptdata_tests.conftest import run

    settings = Settings(home=tmp_path, config_path=BUNDLED_DEMO_CONFIG, lake=str(tmp_path / "lake"), engine="local")
    write_demo_landing(tmp_path)
    with dg.DagsterInstance.ephemeral() as instance:
        for day in reversed(DEMO_DAYS):
            result = run(settings, instance, day.isoformat())
            assert result.success
            warned = {
                c.asset_key.path[0] for c in result.get_asset_check_evaluations() if c.check_name == "complete_history"
            }
            history = [c.passed for c in result.get_asset_check_evaluations() if c.check_name == "complete_history"]
            assert warned == {f"silver_{r}" for r in ("sft", "preference", "rlvr", "text")}
            assert all(history) == (day == DEMO_DAYS[0])
        for day in DEMO_DAYS:
            assert run(settings, instance, day.isoformat(), select="group:silver").success
    for table in ("silver_sft", "silver_preference", "silver_rlvr", "silver_text", "silver_rejections"):
        ours = sorted((tmp_path / "lake" / "silver" / table).rglob("*.parquet"))
        theirs = sorted((demo_home / "lake" / "silver" / table).rglob("*.parquet"))
        assert [p.relative_to(tmp_path) for p in ours] == [p.relative_to(demo_home) for p in theirs]
        for a, b in zip(ours, theirs, strict=True):
            assert a.read_bytes() == b.read_bytes(), a


def test_demo_gold_is_packed_tightly_and_released(demo_home):
    import json

    lake = demo_home / "lake"
    tokens, rows = duckdb.sql(
        f"select sum(tokens), count(*) from read_parquet('{lake}/gold/gold_sft/**/*.parquet')"
    ).fetchone()
    assert tokens / (rows * 4096) >= 0.99
    manifest = json.loads((lake / "releases" / "demo" / "manifest.json").read_text())
    assert {p["table"] for p in manifest["partitions"]} == {"gold_sft", "gold_preference", "gold_rlvr", "gold_text"}
    assert {p["date"] for p in manifest["partitions"]} == {d.isoformat() for d in DEMO_DAYS}
    card = (lake / "releases" / "demo" / "README.md").read_text()
    assert "| sft | chat_openai | cc-by-4.0 |" in card and "gold_sft-lengths.svg" in card
