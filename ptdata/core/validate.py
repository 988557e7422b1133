"""Schema gates on staged Parquet files, whatever the layer: pandera row group by row group, and unique record ids.
Both stay bounded in memory whatever the partition's size."""

from __future__ import annotations

from collections.abc import Iterator

import pandera.polars as pdp
import polars as pl
import pyarrow.parquet as pq

from ptdata.core.groups import by_size
from ptdata.core.lake import Lake
from ptdata.core.outcome import Outcome

# row groups are validated together up to this many bytes (uncompressed): pandera costs ~40 ms a call whatever
# the rows, and a bronze row group of 4,096 chat records is ~4 MB
VALIDATE_BYTES = 32 << 20


def duplicate_ids(lake: Lake, path: str) -> int:
    """How many rows repeat a record_id of another row in a Parquet file.

    A grouped aggregate under a memory limit, which DuckDB spills to disk: memory stays bounded whatever the
    partition's size (a Python set of ids would grow with it)."""
    with lake.duckdb(memory_limit="256MB", threads=1) as con:
        n = con.sql(
            f"select coalesce(sum(n - 1), 0) from (select count(*) as n from read_parquet('{path}') "
            "group by record_id having count(*) > 1)"
        ).fetchone()
    return int(n[0])


def validate_file(lake: Lake, path: str, schema: pdp.DataFrameSchema, max_failures: int = 5) -> Outcome:
    """Validate a Parquet file with pandera, row groups of up to VALIDATE_BYTES at a time (bounded memory), and
    record_id uniqueness."""
    failures: list[str] = []
    rows = 0
    for frame in _frames(lake.parquet_file(path)):
        rows += frame.height
        try:
            schema.validate(frame, lazy=True)
        except (pdp.errors.SchemaErrors, pdp.errors.SchemaError) as e:
            failures.append(
                str(e).strip().splitlines()[0][:300] if isinstance(e, pdp.errors.SchemaError) else _summary(e)
            )
        if len(failures) >= max_failures:
            break
    dup_ids = duplicate_ids(lake, path)
    if dup_ids:
        failures.append(f"{dup_ids} duplicate record_id values")
    meta = {"rows": rows, "failures": failures[:max_failures]}
    desc = "" if not failures else f"{schema.name}: {failures[0]}"
    return Outcome("schema", not failures, meta, desc)


def _frames(pf: pq.ParquetFile) -> Iterator[pl.DataFrame]:
    """The file's consecutive row groups, read together up to VALIDATE_BYTES."""
    size = pf.metadata.row_group
    for groups in by_size(range(pf.num_row_groups), lambda i: size(i).total_byte_size, VALIDATE_BYTES):
        yield pl.from_arrow(pf.read_row_groups(groups), rechunk=False)


def _summary(e: Exception) -> str:
    cases = getattr(e, "failure_cases", None)
    if cases is not None and len(cases):
        first = cases.head(3).to_dicts() if hasattr(cases, "to_dicts") else str(cases)[:300]
        return f"{len(cases)} failure cases, first: {str(first)[:300]}"
    return str(e)[:300]
