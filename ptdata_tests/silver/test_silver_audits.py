"""Silver's residual PII audit: it finds what redaction left, row group by row group, on any number of workers."""

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq

from ptdata.core.catalog import silver_schema
from ptdata.core.executor import INLINE, LocalExecutor
from ptdata.core.lake import Lake
from ptdata.silver.audits import pii_free
from ptdata.silver.stage import StagedSilver

DATE = dt.date(2026, 11, 1)


def _silver(path: str, leaks: dict[int, str]) -> None:
    rows = [
        {
            "record_id": f"r{i:03d}",
            "source": "chat",
            "date": DATE,
            "messages": [
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": leaks.get(i, f"an answer without personal data, number {i}.")},
            ],
        }
        for i in range(60)
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=silver_schema("sft")), path, row_group_size=16)


def test_pii_left_in_kept_records_fails_the_gate_the_same_on_one_or_two_workers(make_home, tmp_path):
    settings = make_home(
        {
            "start_date": DATE.isoformat(),
            "sources": [{"name": "chat", "regime": "sft", "kind": "files", "format": "jsonl", "license": "mit"}],
        }
    )
    path = str(tmp_path / "silver.parquet")
    leaks = {
        3: "Mail me at jane.doe@gmail.com today.",
        40: "Write to bob.smith@protonmail.com.",
        41: "Or carol.jones@outlook.com.",
    }
    _silver(path, leaks)
    assert pq.ParquetFile(path).num_row_groups == 4  # the leaks are in two row groups
    st = StagedSilver("sft", DATE, None, None, path, "")
    cfg = settings.load_config()
    inline = pii_free(Lake(settings.lake), cfg, st, INLINE)
    pooled = pii_free(Lake(settings.lake), cfg, st, LocalExecutor(2))
    assert not inline.passed and inline.metadata == pooled.metadata and inline.description == pooled.description
    assert inline.metadata["first"] == ["r003: EMAIL", "r040: EMAIL", "r041: EMAIL"]
    assert sum(inline.metadata["found"].values()) == 3
    _silver(path, {})
    assert pii_free(Lake(settings.lake), cfg, st, LocalExecutor(2)).passed
