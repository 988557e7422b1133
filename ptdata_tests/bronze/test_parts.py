"""Bronze read and mapped in parts on the executor's workers: the staged files are those of one process reading
record by record, byte for byte, however the files are cut into parts and the records into row groups."""

import datetime as dt
import gzip
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ptdata.bronze.stage import stage_bronze
from ptdata.core.config import FilesSource
from ptdata.core.executor import INLINE, LocalExecutor
from ptdata.core.groups import by_size
from ptdata.core.lake import Lake
from ptdata.sources.base import SourceContext
from ptdata.sources.files import file_parts, read_files, read_part
from ptdata_tests.conftest import landing

D = "2026-11-01"


def _chat(i: int) -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"question {i} " * (i % 7 + 1)},
            {"role": "assistant", "content": f"answer {i}"},
        ]
    }


def _lines(rng: random.Random, n: int) -> bytes:
    """JSON lines with what bronze must get right at any cut: malformed JSON, records no shape fits, blank lines,
    CRLF, a line over max_record_bytes, invalid UTF-8, and no newline after the last line."""
    out = [b"\xef\xbb\xbf"]
    for i in range(n):
        kind = rng.random()
        if kind < 0.05:
            out.append(b'{"messages": [\n')
        elif kind < 0.10:
            out.append(json.dumps({"what": i}).encode() + b"\n")
        elif kind < 0.13:
            out.append(b"  \r\n")
        elif kind < 0.15:
            out.append(json.dumps({"text": "x" * 3000}).encode() + b"\n")
        elif kind < 0.17:
            out.append(b'{"text": "\xff\xfe"}\n')
        else:
            end = b"\r\n" if kind < 0.3 else b"\n"
            out.append(json.dumps(_chat(i)).encode() + end)
    return b"".join(out).rstrip(b"\n")


@pytest.fixture
def home(make_home):
    settings = make_home(
        {
            "start_date": D,
            "sources": [{"name": "chat", "regime": "sft", "kind": "files"}],
            "bronze": {"batch_rows": 16, "max_record_bytes": 2048},
        }
    )
    rng = random.Random(3)
    d = landing(settings, "chat", D)
    (d / "a.jsonl").write_bytes(_lines(rng, 700))
    (d / "b.jsonl").write_bytes(_lines(rng, 40))  # smaller than a part: one task, whole
    (d / "c.jsonl.gz").write_bytes(gzip.compress(_lines(rng, 90), mtime=0))  # compressed: read in the run's process
    pq.write_table(pa.table({"messages": [_chat(i)["messages"] for i in range(30)]}), d / "d.parquet")
    (d / "e.jsonl").write_bytes(_lines(rng, 300))
    (d / "f.json").write_bytes(b"{ not json")
    return settings


def _staged(settings, executor, part_bytes: int, stage_id: str) -> tuple[bytes, bytes, object]:
    cfg, lake = settings.load_config(), Lake(settings.lake)
    st = stage_bronze(cfg, lake, settings.landing, "sft", dt.date.fromisoformat(D), stage_id, executor, part_bytes)
    with open(st.bronze_staged, "rb") as b, open(st.quarantine_staged, "rb") as q:
        return b.read(), q.read(), st


@pytest.mark.parametrize("part_bytes", [1, 900, 4096, 40_000])
def test_bronze_in_parts_on_two_workers_is_bronze_read_in_one_process(home, part_bytes):
    bronze, quarantine, one = _staged(home, INLINE, part_bytes, "one")
    bronze2, quarantine2, two = _staged(home, LocalExecutor(2), part_bytes, f"two-{part_bytes}")
    assert bronze2 == bronze and quarantine2 == quarantine
    assert two.stats == one.stats and two.notes == one.notes and two.bytes_read == one.bytes_read
    groups = pq.ParquetFile(pa.BufferReader(bronze)).metadata.num_row_groups
    assert one.bronze_rows > 16 * 10 and one.quarantined > 16 and groups > 10  # many row groups, both sides


def test_parts_cut_at_line_ends_and_number_lines_in_the_file(home):
    source = FilesSource(name="chat", regime="sft", kind="files")
    folder = home.landing / "chat" / D

    def ctx() -> SourceContext:
        return SourceContext(
            date=dt.date.fromisoformat(D), landing_dir=folder, config_dir=folder, max_record_bytes=2048
        )

    whole = [(r.source_uri, r.error, r.raw) for r in read_files(source, ctx())]
    parts = file_parts(source, ctx(), 900)
    a = [p for p in parts if p.rel == "a.jsonl"]
    assert len(a) > 10 and a[0].start == 0 and all(x.end == y.start for x, y in zip(a, a[1:], strict=False))
    assert a[-1].end == (folder / "a.jsonl").stat().st_size
    # JSON lines are cut; a compressed file and a Parquet file larger than a part are one unbounded part each
    assert {p.rel: p.bounded for p in parts} == {
        "a.jsonl": True,
        "b.jsonl": True,
        "c.jsonl.gz": False,
        "d.parquet": False,
        "e.jsonl": True,
        "f.json": True,
    }
    assert [p.rel for p in parts if p.end is None] == ["c.jsonl.gz", "d.parquet", "f.json"]
    in_parts = [(r.source_uri, r.error, r.raw) for p in parts for r in read_part(p, ctx())]
    assert in_parts == whole
    # a task takes consecutive parts up to the part size: small files share one, a part is in exactly one
    tasks = list(by_size([p for p in parts if p.bounded], lambda p: p.size, 4000))
    assert [p for t in tasks for p in t] == [p for p in parts if p.bounded]
    assert len(tasks) < len(a) and all(sum(p.size for p in t) <= 4000 or len(t) == 1 for t in tasks)
