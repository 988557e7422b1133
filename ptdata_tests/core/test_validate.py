"""The bronze audits catch what they exist for, on files written to look like staged partitions."""

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq

from ptdata.core.catalog import QUARANTINE_PANDERA, QUARANTINE_SCHEMA, bronze_schema, record_pandera
from ptdata.core.lake import Lake
from ptdata.core.validate import duplicate_ids, validate_file

D = dt.date(2026, 11, 2)


def _row(i: int, role: str = "user", rid: str | None = None) -> dict:
    return {
        "record_id": rid or f"{i:032x}",
        "source": "chat",
        "source_uri": f"a.jsonl:{i}",
        "source_key": None,
        "license": "mit",
        "date": D,
        "content_hash": f"{i:032x}",
        "messages": [{"role": role, "content": "hi"}, {"role": "assistant", "content": "yo"}],
        "meta": None,
    }


def _write(tmp_path, rows, schema=None):
    path = tmp_path / "part-0.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema or bronze_schema("sft")), path, row_group_size=2)
    return str(path)


def test_valid_partition_passes(tmp_path):
    out = validate_file(
        Lake(str(tmp_path)), _write(tmp_path, [_row(i) for i in range(5)]), record_pandera("bronze", "sft", ["chat"], D)
    )
    assert out.passed and out.metadata["rows"] == 5


def test_bad_role_wrong_date_and_unknown_source_fail(tmp_path):
    schema = record_pandera("bronze", "sft", ["other"], D)
    out = validate_file(Lake(str(tmp_path)), _write(tmp_path, [_row(1, role="wizard")]), schema)
    assert not out.passed and out.description.startswith("bronze_sft:")
    bad_date = {**_row(2), "date": dt.date(2026, 11, 3)}
    out = validate_file(Lake(str(tmp_path)), _write(tmp_path, [bad_date]), record_pandera("bronze", "sft", ["chat"], D))
    assert not out.passed


def test_duplicate_record_ids_across_row_groups(tmp_path):
    rows = [_row(1), _row(2), _row(3, rid=f"{1:032x}"), _row(4, rid=f"{1:032x}")]
    path = _write(tmp_path, rows)
    assert duplicate_ids(Lake(str(tmp_path)), path) == 2
    out = validate_file(Lake(str(tmp_path)), path, record_pandera("bronze", "sft", ["chat"], D))
    assert not out.passed and "2 duplicate record_id values" in out.metadata["failures"]


def test_quarantine_reason_must_be_a_code(tmp_path):
    row = {
        "record_id": "0" * 32,
        "source": "s",
        "source_uri": "a:1",
        "regime": "sft",
        "date": D,
        "reason": "Bad Reason",
        "error": "x",
        "raw": None,
    }
    out = validate_file(Lake(str(tmp_path)), _write(tmp_path, [row], QUARANTINE_SCHEMA), QUARANTINE_PANDERA)
    assert not out.passed
