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

import dagster as dg

from ptdata.core import catalog
from ptdata.core.lake import Lake
from ptdata.defs.factory import SINGLE_RUN, column_schema, combined_version, exclusive_write, partition_dates
from ptdata.defs.resources import PtdataResource

SQL_DIR = Path(__file__).resolve().parents[2] / "dbt_like_sql"
_REF = re.compile(r"\{\{\s*ref\(\s*['\"]([A-Za-z0-9_]+)['\"]\s*\)\s*\}\}")
_PARTITION_DATE = re.compile(r"\{\{\s*partition_date\s*\}\}")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _lake_tables() -> dict[str, catalog.Table]:
    """The Parquet tables of the catalog a model may ref (the tokenizer's files are not one)."""
    return {t.name: t for t in catalog.tables() if t.schema is not None}


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


def sql_model_asset(model: SqlModel, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=model.name,
        group_name="marts",
        partitions_def=partitions if model.partitioned else None,
        backfill_policy=SINGLE_RUN,
        code_version=model.code_version,
        deps=list(model.refs),
        kinds={"sql", "duckdb", "parquet"},
        description=f"dbt_like_sql/{model.name}.sql",
        metadata={"sql": dg.MetadataValue.md(f"```sql\n{model.sql}\n```")},
    )
    def _model(context: dg.AssetExecutionContext, ptdata: PtdataResource) -> dg.MaterializeResult:
        lake = ptdata.lake()
        mart = catalog.mart(model.name, model.partitioned)
        dates = [d.isoformat() for d in partition_dates(context)] if model.partitioned else [None]
        versions, rows, staged = {}, 0, []
        with exclusive_write(context, ptdata) as writer, lake.duckdb() as con:
            for date in dates:
                part = mart.part(None if date is None else dt.date.fromisoformat(date))
                try:
                    table = con.sql(render(model, lake, date)).to_arrow_table()
                except Exception as e:  # duckdb's errors name the line; say which model and date
                    raise dg.Failure(description=f"{model.name}.sql ({date or 'unpartitioned'}): {e}") from None
                path = lake.staged_path(part, writer.stage_id)
                with lake.parquet_writer(path, table.schema) as w:
                    w.write_table(table)
                staged.append((path, part, table))
                rows += table.num_rows
            for path, part, _ in staged:
                versions[str(part.date or "all")] = lake.data_version(lake.publish(path, part))
            # DuckDB does not say how many rows it read, so a model reports no records_in
            figures = writer.figures(0)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "dagster/column_schema": column_schema(staged[0][2].schema),
                **{k: figures[k] for k in ("seconds", "cpu_seconds", "usd")},
                "path": dg.MetadataValue.path(mart.url(lake)),
            },
            data_version=dg.DataVersion(combined_version(versions)),
        )

    return _model
