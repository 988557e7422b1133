"""Bronze materialized for real partitions in a temporary PTDATA_HOME, against inputs built to break it."""

import gzip
import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ptdata.bronze.records import BronzeBatcher
from ptdata_tests.conftest import Reply, landing, run

D = "2026-11-02"
CONFIG = {
    "start_date": "2026-11-01",
    "sources": [
        {"name": "chat", "regime": "sft", "kind": "files", "license": "cc-by-4.0"},
        {"name": "pairs", "regime": "preference", "kind": "files", "license": "mit"},
        {"name": "docs", "regime": "text", "kind": "files"},
    ],
}

# the bronze layer alone: these landing zones hold records silver would rightly reject as low quality
BRONZE = "group:bronze"


def chat(i: int, text: str = "hello") -> dict:
    return {
        "id": f"c{i}",
        "messages": [{"role": "user", "content": f"{text} {i}"}, {"role": "assistant", "content": "hi"}],
    }


def jl(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"


def write_hostile_landing(settings) -> dict[str, str]:
    """A landing zone nobody on the team wrote; returns {source_uri: expected quarantine reason}."""
    d = landing(settings, "chat", D)
    lines = [
        jl(chat(1)),
        b'{"messages": [{"role": "user", "content": "unterminated\n',
        b"[1, 2, 3]\n",
        b"42\n",
        jl({"messages": [{"role": "user", "content": 42}]}),
        jl({"messages": "hello"}),
        jl({"messages": [{"role": "wizard", "content": "abracadabra"}]}),
        jl({"messages": []}),
        b'{"messages": [{"role": "user", "content": "caf\xe9 \xff"}]}\n',
        b"\n",
        jl(chat(2, "Zürich 東京 🚀")),
        jl(
            {"messages": [{"role": "user", "content": "x" * (6 * 1024 * 1024)}, {"role": "assistant", "content": "ok"}]}
        ),
        jl(chat(3)),
    ]
    (d / "export.jsonl").write_bytes(b"".join(lines))
    expected = {
        "export.jsonl:2": "invalid_json",
        "export.jsonl:3": "not_an_object",
        "export.jsonl:4": "not_an_object",
        "export.jsonl:5": "wrong_type",
        "export.jsonl:6": "wrong_type",
        "export.jsonl:7": "unknown_role",
        "export.jsonl:8": "empty_messages",
        "export.jsonl:9": "invalid_utf8",
        "export.jsonl:12": "too_large",
    }
    crlf = b"\xef\xbb\xbf" + b"".join(jl(chat(i)).replace(b"\n", b"\r\n") for i in range(10, 13))
    (d / "windows.jsonl").write_bytes(crlf)
    full = gzip.compress(b"".join(jl(chat(i)) for i in range(100, 3000)), mtime=0)
    (d / "cut.jsonl.gz").write_bytes(full[: len(full) // 2])
    expected["cut.jsonl.gz"] = "truncated_file"
    p = landing(settings, "pairs", D)
    (p / "pairs.json").write_text(
        json.dumps({"data": [{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q"}]})
    )
    expected["pairs.json#1"] = "unknown_shape"
    t = landing(settings, "docs", D)
    (t / "a.txt").write_text("A plain document.\n")
    return expected


def table(settings, name: str):
    return duckdb.sql(
        f"select * from read_parquet('{settings.lake}/bronze/{name}/**/*.parquet', hive_partitioning=true)"
    )


def test_hostile_landing_zone_every_record_accounted(make_home, instance):
    settings = make_home(CONFIG)
    expected = write_hostile_landing(settings)
    result = run(settings, instance, D, select=BRONZE)
    assert result.success
    sft = {r[0]: r[1] for r in table(settings, "bronze_sft").select("source_uri, source_key").fetchall()}
    assert sft["export.jsonl:1"] == "c1" and sft["export.jsonl:11"] == "c2" and sft["export.jsonl:13"] == "c3"
    assert {"windows.jsonl:1", "windows.jsonl:2", "windows.jsonl:3"} <= set(sft)  # BOM and CRLF are readable
    msgs = table(settings, "bronze_sft").filter("source_uri = 'export.jsonl:11'").select("messages").fetchone()[0]
    assert msgs[0]["content"] == "Zürich 東京 🚀 2"
    quarantine = {r[0]: r[1] for r in table(settings, "bronze_quarantine").select("source_uri, reason").fetchall()}
    truncated_lines = {u for u in quarantine if u.startswith("cut.jsonl.gz:")}
    assert {u: quarantine[u] for u in expected} == expected
    assert all(quarantine[u] == "invalid_json" for u in truncated_lines)  # at most the cut line
    gz_ok = {u for u in sft if u.startswith("cut.jsonl.gz:")}
    assert len(gz_ok) > 100 and len(gz_ok) + len(truncated_lines) == max(
        int(u.split(":")[1]) for u in gz_ok | truncated_lines
    )
    assert set(sft).isdisjoint(quarantine)
    # accounting: every non-blank input line of the readable files is in exactly one table
    assert len([u for u in list(sft) + list(quarantine) if u.startswith("export.jsonl:")]) == 12
    pref = table(settings, "bronze_preference").select("source_uri, license").fetchall()
    assert pref == [("pairs.json#0", "mit")]
    assert table(settings, "bronze_text").select("source_uri, text").fetchall() == [("a.txt", "A plain document.\n")]
    checks = {(c.asset_key.path[0], c.check_name): c for c in result.get_asset_check_evaluations()}
    assert checks[("bronze_sft", "accounting")].passed and checks[("bronze_sft", "schema")].passed
    n_q = sum(1 for u in quarantine if not u.startswith(("pairs", "a.txt")))
    rate = checks[("bronze_sft", "quarantine_rate")].metadata["partitions"].value[D]["rate"]
    assert rate == round(n_q / (n_q + len(sft)), 6)
    mat = instance.get_latest_materialization_event(dg.AssetKey("bronze_sft")).asset_materialization
    assert mat.metadata["quarantined_by_reason"].value["too_large"] == 1
    assert mat.metadata["rows_per_source"].value == {"chat": len(sft)}


def _files(settings) -> dict[str, bytes]:
    lake = Path(settings.lake)
    return {
        str(p.relative_to(lake)): p.read_bytes() for p in sorted(lake.rglob("*.parquet")) if "_staging" not in p.parts
    }


def test_rematerializing_gives_byte_identical_parquet(make_home, instance):
    settings = make_home(CONFIG)
    write_hostile_landing(settings)
    assert run(settings, instance, D, select=BRONZE).success
    first = _files(settings)
    assert run(settings, instance, D, select=BRONZE).success
    assert _files(settings) == first  # bronze and everything downstream of it
    assert len([f for f in first if f.startswith("bronze/")]) == 4 + 4  # every regime and its quarantine part
    versions = [
        e.asset_materialization.tags["dagster/data_version"]
        for e in instance.fetch_materializations(dg.AssetKey("bronze_sft"), limit=2).records
    ]
    assert versions[0] == versions[1]


def test_failed_audit_keeps_the_published_partition(make_home, instance, monkeypatch):
    settings = make_home(CONFIG)
    d = landing(settings, "chat", D)
    (d / "a.jsonl").write_bytes(b"".join(jl(chat(i)) for i in range(20)))
    assert run(settings, instance, D, select="bronze_sft").success
    live = Path(settings.lake) / "bronze" / "bronze_sft" / f"date={D}" / "part-0.parquet"
    before = live.read_bytes()

    (d / "b.jsonl").write_bytes(b"".join(jl(chat(i)) for i in range(20, 40)))
    real_add = BronzeBatcher.add

    def lossy_add(self, source, rec, stats):  # a bug that drops a record after counting it
        if rec.source_uri.endswith(":7"):
            stats.records += 1
            return
        real_add(self, source, rec, stats)

    monkeypatch.setattr(BronzeBatcher, "add", lossy_add)
    result = run(settings, instance, D, select="bronze_sft")
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "accounting failed" in failure and "chat: 40 input records but 38 bronze" in failure
    assert live.read_bytes() == before  # the last good partition is still what readers see
    staged = list((Path(settings.lake) / "_staging").rglob("bronze_sft/*/part-0.parquet"))
    assert len(staged) == 1  # kept for inspection
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["accounting"] is False and checks["schema"] is True


def test_partition_range_is_one_run(make_home, instance):
    settings = make_home(CONFIG)
    for day in ("2026-11-01", "2026-11-02", "2026-11-03"):
        (landing(settings, "chat", day) / "a.jsonl").write_bytes(jl(chat(1, day)))
    result = run(settings, instance, "2026-11-01", "2026-11-03", select=BRONZE)
    assert result.success
    rows = table(settings, "bronze_sft").select("cast(date as varchar), messages[1].content").order("1").fetchall()
    assert rows == [(day, f"{day} 1") for day in ("2026-11-01", "2026-11-02", "2026-11-03")]
    assert len(instance.get_run_records()) == 1
    keys = {
        e.asset_materialization.partition
        for e in instance.fetch_materializations(dg.AssetKey("bronze_quarantine"), limit=10).records
    }
    assert keys == {"2026-11-01", "2026-11-02", "2026-11-03"}


def test_quarantine_asset_fails_without_its_bronze_parts(make_home, instance):
    settings = make_home(CONFIG)
    result = run(settings, instance, D, select="bronze_quarantine")
    assert not result.success
    msg = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "no part for regime" in msg


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_row_formats_end_to_end(make_home, instance, fmt):
    import pyarrow as pa
    import pyarrow.parquet as pq

    settings = make_home({"start_date": "2026-11-01", "sources": [{"name": "alp", "regime": "sft", "kind": "files"}]})
    d = landing(settings, "alp", D)
    t = pa.table({"instruction": ["Say hi", "Count"], "input": ["", "1 2"], "output": ["hi", "1, 2, 3"]})
    if fmt == "parquet":
        pq.write_table(t, d / "x.parquet")
    else:
        (d / "x.csv").write_text('instruction,input,output\n"Say hi",,hi\nCount,1 2,"1, 2, 3"\n')
    assert run(settings, instance, D, select=BRONZE).success
    rows = table(settings, "bronze_sft").select("source_uri, messages").order("1").fetchall()
    assert [r[0] for r in rows] == [f"x.{fmt}#0", f"x.{fmt}#1"]
    assert rows[1][1][0]["content"] == "Count\n\n1 2" and rows[1][1][1]["content"] == "1, 2, 3"


def test_http_and_sql_sources_end_to_end(make_home, instance, api, tmp_path):
    """Non-file sources through the whole asset: the window reaches the server and the query, URIs are kept."""
    import sqlite3

    api.route = lambda path, q: Reply(
        body={"data": [chat(1, q["since"]), [1, 2]] if q.get("page") == "1" else [], "page": q.get("page")}
    )
    db = tmp_path / "problems.db"
    with sqlite3.connect(db) as con:
        con.execute("create table p (id integer, question text, answer text, created_at text)")
        con.executemany(
            "insert into p values (?, ?, ?, ?)",
            [
                (1, "1+1?", "2", "2026-11-01 10:00:00"),
                (2, "2+2?", "4", "2026-11-02 09:00:00"),
                (3, "x?", "y", "2026-11-03"),
            ],
        )
    settings = make_home(
        {
            "start_date": "2026-11-01",
            "sources": [
                {
                    "name": "api",
                    "regime": "sft",
                    "kind": "http",
                    "url": f"{api.url}/v1/chats",
                    "params": {"since": "{start}"},
                    "pagination": {"type": "page"},
                },
                {
                    "name": "db",
                    "regime": "rlvr",
                    "kind": "sql",
                    "uri": f"sqlite:///{db}",
                    "query": "select id, question, answer from p where created_at >= :start and created_at < :end order by id",
                    "verifier": "math",
                },
            ],
        }
    )
    assert run(settings, instance, D, select=BRONZE).success
    sft = table(settings, "bronze_sft").select("source_uri, messages[1].content").fetchall()
    assert sft == [(f"{api.url}/v1/chats?since={D}&page=1#0", f"{D} 1")]
    q = table(settings, "bronze_quarantine").select("source_uri, reason").fetchall()
    assert q == [(f"{api.url}/v1/chats?since={D}&page=1#1", "not_an_object")]
    rlvr = table(settings, "bronze_rlvr").select("source_uri, source_key, answer, verifier").fetchall()
    assert rlvr == [("sql:problems.db#0", "2", "4", "math")]
