import datetime as dt
import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from ptdata.core.config import FilesSource
from ptdata.sources.base import SourceContext
from ptdata.sources.files import read_files

SRC = FilesSource(name="s", regime="sft", kind="files")
CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}


@pytest.fixture
def landing(tmp_path):
    d = tmp_path / "landing" / "s" / "2026-11-01"
    d.mkdir(parents=True)
    return d


def read(landing, cap=4 * 1024 * 1024, source=SRC):
    ctx = SourceContext(date=dt.date(2026, 11, 1), landing_dir=landing, config_dir=landing, max_record_bytes=cap)
    return list(read_files(source, ctx)), ctx


def line(obj) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def test_jsonl_lines_blank_lines_bom_crlf(landing):
    (landing / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + line(CHAT).replace(b"\n", b"\r\n") + b"\r\n  \n" + line(CHAT))
    recs, ctx = read(landing)
    assert [r.source_uri for r in recs] == ["a.jsonl:1", "a.jsonl:4"]
    assert all(r.payload == CHAT and r.error is None for r in recs)
    assert ctx.bytes_read == (landing / "a.jsonl").stat().st_size


def test_gzip_zstd_and_sniffed_formats(landing):
    with gzip.open(landing / "b.jsonl.gz", "wb") as f:
        f.write(line(CHAT) * 2)
    (landing / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(line(CHAT) * 3))
    (landing / "d.dat").write_bytes(line(CHAT))  # no known extension: sniffed as JSON lines
    recs, _ = read(landing)
    assert [r.source_uri for r in recs] == [
        "b.jsonl.gz:1",
        "b.jsonl.gz:2",
        "c.jsonl.zst:1",
        "c.jsonl.zst:2",
        "c.jsonl.zst:3",
        "d.dat:1",
    ]


def test_truncated_gzip_keeps_records_before_the_break(landing):
    data = gzip.compress(b"".join(line({**CHAT, "i": i}) for i in range(2000)), mtime=0)
    (landing / "t.jsonl.gz").write_bytes(data[: len(data) * 2 // 3])
    recs, _ = read(landing)
    good = [r for r in recs if r.error is None]
    bad = [r for r in recs if r.error]
    assert len(good) > 0 and bad[-1].error.startswith("truncated_file") and bad[-1].source_uri == "t.jsonl.gz"
    assert all(r.error.startswith(("truncated_file", "invalid_json")) for r in bad)


def test_too_large_line_is_quarantined_and_reading_continues(landing):
    big = line({"messages": [{"role": "user", "content": "x" * 6_000_000}]})
    (landing / "a.jsonl").write_bytes(line(CHAT) + big + line(CHAT))
    recs, _ = read(landing, cap=1_000_000)
    assert [r.source_uri for r in recs] == ["a.jsonl:1", "a.jsonl:2", "a.jsonl:3"]
    assert recs[1].error.startswith("too_large") and recs[2].payload == CHAT
    recs, _ = read(landing, cap=8_000_000)  # under the cap the same line is a normal record
    assert recs[1].error is None


def test_invalid_json_and_invalid_utf8_reasons(landing):
    (landing / "a.jsonl").write_bytes(b'{"broken\n{"messages": "\xff\xfe"}\n')
    recs, _ = read(landing)
    assert [r.error.split(":")[0] for r in recs] == ["invalid_json", "invalid_utf8"]


def test_json_array_object_and_rows(landing):
    (landing / "arr.json").write_text(json.dumps([CHAT, CHAT]))
    (landing / "obj.json").write_text(json.dumps({"version": 1, "data": [CHAT]}))
    (landing / "one.json").write_text(json.dumps(CHAT))
    recs, _ = read(landing)
    assert [r.source_uri for r in recs] == ["arr.json#0", "arr.json#1", "obj.json#0", "one.json"]


def test_parquet_rows_and_json_cells(landing):
    t = pa.table({"prompt": ["p0", "p1"], "response": ["r0", "r1"], "messages": [json.dumps(CHAT["messages"])] * 2})
    pq.write_table(t, landing / "x.parquet")
    recs, _ = read(landing)
    assert [r.source_uri for r in recs] == ["x.parquet#0", "x.parquet#1"]
    assert recs[1].payload["messages"] == CHAT["messages"] and recs[1].payload["prompt"] == "p1"


def test_csv_with_bom_crlf_multiline_and_bad_row(landing):
    body = 'instruction,input,output\r\n"Say hi","","Hi,\r\nthere"\r\n\r\nonly-one-field\r\n"x","y","z"\r\n'
    (landing / "a.csv").write_bytes(b"\xef\xbb\xbf" + body.encode())
    recs, _ = read(landing)
    assert recs[0].payload == {"instruction": "Say hi", "input": "", "output": "Hi,\r\nthere"}
    assert recs[1].error.startswith("csv_row") and recs[2].payload["output"] == "z"
    assert [r.source_uri for r in recs] == ["a.csv#0", "a.csv#1", "a.csv#2"]


def test_txt_html_nested_paths_hidden_and_empty_files(landing):
    (landing / "notes" / "a").mkdir(parents=True)
    (landing / "notes" / "a" / "n.txt").write_text("A note about packing sequences.\n")
    (landing / ".hidden.jsonl").write_bytes(line(CHAT))
    (landing / "empty.jsonl").write_bytes(b"")
    para = "Best-fit decreasing packing keeps nearly every token slot of a training batch busy. " * 4
    html = f"<html><body><nav>Home | Blog | About</nav><article><h1>Packing</h1><p>{para}</p><p>{para}</p></article><footer>(c) 2026</footer></body></html>"
    (landing / "page.html").write_text(html)
    recs, ctx = read(landing)
    uris = [r.source_uri for r in recs]
    assert uris == ["notes/a/n.txt", "page.html"]
    assert recs[0].payload == {"text": "A note about packing sequences.\n"}
    assert "Best-fit decreasing" in recs[1].payload["text"] and "Home | Blog" not in recs[1].payload["text"]
    assert any("empty.jsonl" in n for n in ctx.notes)


def test_configured_format_overrides_extension(landing):
    (landing / "dump.txt").write_bytes(line(CHAT) * 2)
    recs, _ = read(landing, source=FilesSource(name="s", regime="sft", kind="files", format="jsonl"))
    assert [r.source_uri for r in recs] == ["dump.txt:1", "dump.txt:2"]


def test_documents_too_large_or_cut_are_error_records(landing):
    (landing / "big.txt").write_text("x" * 5000)
    (landing / "cut.txt.gz").write_bytes(gzip.compress(b"some text " * 500, mtime=0)[:-20])
    (landing / "bad.txt").write_bytes(b"caf\xe9")
    recs, _ = read(landing, cap=4096)
    assert [(r.source_uri, r.error.split(":")[0]) for r in recs] == [
        ("bad.txt", "invalid_utf8"),
        ("big.txt", "too_large"),
        ("cut.txt.gz", "truncated_file"),
    ]
