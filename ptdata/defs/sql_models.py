"""SQL models: each `dbt_like_sql/<name>.sql` is an asset `<name>` in the `marts` group.

- `{{ ref('table') }}` reads a lake table (`bronze_sft`, `silver_rejections`, `gold_text`, `stage_runs`, ...), another
  model, or `release` (every release's manifest, a row per released gold partition: release, table, date,
  data_version, rows, tokens), and makes it a dependency.
- A model that uses `{{ partition_date }}` (replaced by a DATE literal) is daily partitioned and written to
  `<lake>/marts/<name>/date=D/part-0.parquet`; any other is written to `<lake>/marts/<name>/part-0.parquet`.
- Its code version is a hash of its text, so an edited model shows as changed in the UI.
DuckDB runs the query under the lake's memory limit; the result is written with the lake's fixed Parquet
options, staged and published like every other table.
"""

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from ptdata.core import catalog
from ptdata.core.lake import Lake
from ptdata.defs.factory import Staged, StagedAssetSpec, StagedFile, Step, column_schema, staged_asset

SQL_DIR = Path(__file__).resolve().parents[2] / "dbt_like_sql"
_REF = re.compile(r"\{\{\s*ref\(\s*['\"]([A-Za-z0-9_]+)['\"]\s*\)\s*\}\}")
_PARTITION_DATE = re.compile(r"\{\{\s*partition_date\s*\}\}")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _lake_tables() -> dict[str, catalog.Table]:
    """The Parquet tables of the catalog a model may ref (the tokenizer's files are not one)."""
    return {t.name: t for t in catalog.tables() if t.schema is not None}


class SqlModelError(RuntimeError):
    """A model's query failed; the message names the model and the date."""


@dataclass(frozen=True)
class SqlModel:
    name: str
    sql: str
    refs: tuple[str, ...]

    @property
    def partitioned(self) -> bool:
        return bool(_PARTITION_DATE.search(self.sql))

    @property
    def code_version(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:12]


def load_models(folder: Path = SQL_DIR) -> list[SqlModel]:
    """Every model of `folder`, checked: names, and refs that name a lake table or another model."""
    files = sorted(folder.glob("*.sql")) if folder.is_dir() else []
    models = [SqlModel(f.stem, f.read_text(), tuple(dict.fromkeys(_REF.findall(f.read_text())))) for f in files]
    names = {m.name for m in models}
    tables = _lake_tables()
    for m in models:
        if not _NAME.match(m.name):
            raise ValueError(f"{m.name}.sql: a model name is lower case letters, digits and _")
        if m.name in tables or m.name == "release":
            raise ValueError(f"{m.name}.sql: the name of a lake table; choose another")
        unknown = [r for r in m.refs if r not in tables and r not in names and r != "release"]
        if unknown:
            raise ValueError(f"{m.name}.sql: ref to {unknown}, which is neither a lake table nor a model")
    return models


def models_reading(models: Sequence[SqlModel], table: str) -> set[str]:
    """The names of the models that read `table`, directly or through other models."""
    found: set[str] = set()
    reads = {table}
    while reads:
        reads = {m.name for m in models if reads.intersection(m.refs)} - found
        found |= reads
    return found


def render(model: SqlModel, lake: Lake, date: str | None) -> str:
    """The model's SQL with each ref replaced by a read of its files and partition_date by a DATE literal."""

    tables = _lake_tables()

    def table(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "release":
            # the manifests, one row per (release, gold partition): a fixed schema whatever the tables released
            return (
                f"(select name as release, unnest(partitions, recursive := true) "
                f"from read_json('{catalog.release_folder(lake, '*')}/manifest.json', format = 'auto'))"
            )
        relpath = tables[name].relpath if name in tables else catalog.mart(name, False).relpath
        return f"read_parquet('{lake.root}/{relpath}/**/*.parquet', hive_partitioning=true, union_by_name=true)"

    sql = _REF.sub(table, model.sql)
    if date is not None:
        sql = _PARTITION_DATE.sub(f"DATE '{date}'", sql)
    return sql


def _stage(model: SqlModel, step: Step, date: dt.date | None) -> Staged:
    part = catalog.mart(model.name, model.partitioned).part(date)
    with step.lake.duckdb() as con:
        try:
            table = con.sql(render(model, step.lake, None if date is None else date.isoformat())).to_arrow_table()
        except Exception as e:  # duckdb's errors name the line; say which model and date
            raise SqlModelError(f"{model.name}.sql ({date or 'unpartitioned'}): {e}") from None
    path = step.lake.staged_path(part, step.stage_id)
    with step.lake.parquet_writer(path, table.schema) as w:
        w.write_table(table)
    # DuckDB does not say how many rows it read, so a model reports no records_in
    return Staged(date, files=[StagedFile(path, part, str(date or "all"))], records_in=None, info=table)


def _metadata(model: SqlModel, step: Step, staged: list[Staged]) -> dict[str, Any]:
    return {
        "dagster/row_count": sum(st.info.num_rows for st in staged),
        "dagster/column_schema": column_schema(staged[0].info.schema),
        "path": dg.MetadataValue.path(catalog.mart(model.name, model.partitioned).url(step.lake)),
    }


def sql_model_asset(model: SqlModel, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    return staged_asset(
        StagedAssetSpec(
            name=model.name,
            group="marts",
            description=f"dbt_like_sql/{model.name}.sql",
            code_version=model.code_version,
            stage=lambda step, date, _: _stage(model, step, date),
            metadata=lambda step, staged, versions, figures: _metadata(model, step, staged),
            partitions=partitions if model.partitioned else None,
            deps=list(model.refs),
            kinds=frozenset({"sql", "duckdb", "parquet"}),
            input_errors=(SqlModelError,),
            definition_metadata={"sql": dg.MetadataValue.md(f"```sql\n{model.sql}\n```")},
        )
    )
