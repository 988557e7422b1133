"""Bronze audits, run on staged files before publish (DESIGN principle 3). Plain functions; the asset
reports each outcome as an AssetCheckResult and publishes only when every blocking one passed."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from ptdata.bronze.stage import StagedBronze
from ptdata.core.config import LoadedConfig
from ptdata.core.lake import Lake
from ptdata.core.outcome import Outcome

CANONICAL_ROLES = ["system", "user", "assistant", "tool"]
HEX32 = r"^[0-9a-f]{32}$"
_MESSAGES_DTYPE = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))


def _valid_messages(data: PolarsData) -> pl.LazyFrame:
    col = pl.col(data.key)
    return data.lazyframe.select(
        (col.list.len() > 0)
        & col.list.eval(pl.element().struct.field("role").is_in(CANONICAL_ROLES)).list.all()
        & col.list.eval(pl.element().struct.field("content").is_not_null()).list.all()
    )


def _messages_column() -> pa.Column:
    return pa.Column(
        _MESSAGES_DTYPE,
        checks=pa.Check(_valid_messages, error="messages must be non-empty with roles system/user/assistant/tool"),
        nullable=False,
    )


def bronze_pandera_schema(regime: str, sources: list[str], date: dt.date, layer: str = "bronze") -> pa.DataFrameSchema:
    """The schema of a bronze_<regime> partition, or with layer="silver" of a silver_<regime> one: no `meta`
    (unused input fields, never redacted), and the language and quality score silver measured."""
    columns: dict[str, pa.Column] = {
        "record_id": pa.Column(pl.String, pa.Check.str_matches(HEX32), nullable=False),
        "source": pa.Column(pl.String, pa.Check.isin(sources), nullable=False),
        "source_uri": pa.Column(pl.String, pa.Check.str_length(min_value=1), nullable=False),
        "source_key": pa.Column(pl.String, nullable=True),
        "license": pa.Column(pl.String, pa.Check.str_length(min_value=1), nullable=False),
        "date": pa.Column(pl.Date, pa.Check.eq(date), nullable=False),
        "content_hash": pa.Column(pl.String, pa.Check.str_matches(HEX32), nullable=False),
    }
    if regime == "sft":
        columns["messages"] = _messages_column()
    elif regime == "preference":
        columns |= {k: _messages_column() for k in ("prompt", "chosen", "rejected")}
    elif regime == "rlvr":
        columns |= {
            "prompt": _messages_column(),
            "answer": pa.Column(pl.String, nullable=False),
            "verifier": pa.Column(pl.String, pa.Check.str_length(min_value=1), nullable=False),
            "verifier_args": pa.Column(pl.String, pa.Check.str_startswith("{"), nullable=False),
        }
    else:
        columns["text"] = pa.Column(pl.String, nullable=False)
    if layer == "silver":
        columns["lang"] = pa.Column(pl.String, pa.Check.str_matches(r"^([a-z]{2,3}|und)$"), nullable=False)
        columns["quality_score"] = pa.Column(pl.Float64, pa.Check.in_range(0.0, 1.0), nullable=False)
    else:
        columns["meta"] = pa.Column(pl.String, pa.Check.str_startswith("{"), nullable=True)
    return pa.DataFrameSchema(columns, strict=True, ordered=True, name=f"{layer}_{regime}")


QUARANTINE_PANDERA = pa.DataFrameSchema(
    {
        "record_id": pa.Column(pl.String, pa.Check.str_matches(HEX32), nullable=False),
        "source": pa.Column(pl.String, nullable=False),
        "source_uri": pa.Column(pl.String, nullable=False),
        "regime": pa.Column(pl.String, nullable=False),
        "date": pa.Column(pl.Date, nullable=False),
        "reason": pa.Column(pl.String, pa.Check.str_matches(r"^[a-z0-9_]+$"), nullable=False),
        "error": pa.Column(pl.String, nullable=False),
        "raw": pa.Column(pl.String, pa.Check.str_length(max_value=4 * 4096), nullable=True),
    },
    strict=True,
    ordered=True,
    name="bronze_quarantine",
)


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


def validate_file(lake: Lake, path: str, schema: pa.DataFrameSchema, max_failures: int = 5) -> Outcome:
    """Validate a Parquet file with pandera row group by row group (bounded memory), and record_id uniqueness."""
    failures: list[str] = []
    rows = 0
    pf = lake.parquet_file(path)
    for i in range(pf.num_row_groups):
        frame = pl.from_arrow(pf.read_row_group(i))
        rows += frame.height
        try:
            schema.validate(frame, lazy=True)
        except (pa.errors.SchemaErrors, pa.errors.SchemaError) as e:
            failures.append(
                str(e).strip().splitlines()[0][:300] if isinstance(e, pa.errors.SchemaError) else _summary(e)
            )
        if len(failures) >= max_failures:
            break
    dup_ids = duplicate_ids(lake, path)
    if dup_ids:
        failures.append(f"{dup_ids} duplicate record_id values")
    meta = {"rows": rows, "failures": failures[:max_failures]}
    desc = "" if not failures else f"{schema.name}: {failures[0]}"
    return Outcome("schema", not failures, meta, desc)


def _summary(e: Exception) -> str:
    cases = getattr(e, "failure_cases", None)
    if cases is not None and len(cases):
        first = cases.head(3).to_dicts() if hasattr(cases, "to_dicts") else str(cases)[:300]
        return f"{len(cases)} failure cases, first: {str(first)[:300]}"
    return str(e)[:300]


def source_counts(lake: Lake, path: str) -> Counter[str]:
    table = lake.read_table(path, columns=["source"])
    return Counter(table.column("source").to_pylist())


def accounting(lake: Lake, staged: StagedBronze) -> Outcome:
    """Each input record is in exactly one of bronze or quarantine: counted per source from the staged files."""
    bronze = source_counts(lake, staged.bronze_staged)
    quarantine = source_counts(lake, staged.quarantine_staged)
    per_source = {}
    bad = []
    for name, st in staged.stats.items():
        got = bronze[name] + quarantine[name]
        per_source[name] = {"input": st.records, "bronze": bronze[name], "quarantine": quarantine[name]}
        if got != st.records:
            bad.append(f"{name}: {st.records} input records but {bronze[name]} bronze + {quarantine[name]} quarantined")
    unknown = (set(bronze) | set(quarantine)) - set(staged.stats)
    if unknown:
        bad.append(f"rows from sources that were not read: {sorted(unknown)}")
    desc = f"accounting failed on {staged.date}: {bad[0]}" if bad else ""
    return Outcome("accounting", not bad, {"per_source": per_source, "problems": bad}, desc)


def quarantine_rate(staged: StagedBronze, bound: float) -> Outcome:
    rate = staged.quarantined / staged.records if staged.records else 0.0
    ok = rate <= bound
    desc = "" if ok else f"{staged.date}: {rate:.1%} of records quarantined, above the bound {bound:.1%}"
    return Outcome("quarantine_rate", ok, {"rate": round(rate, 6), "bound": bound}, desc)


def audit_staged(lake: Lake, cfg: LoadedConfig, st: StagedBronze) -> dict[str, Outcome]:
    """Every bronze audit of one staged partition, by check name."""
    sources = [s.name for s in cfg.pipeline.sources_of(st.regime)]
    schema = validate_file(lake, st.bronze_staged, bronze_pandera_schema(st.regime, sources, st.date))
    q_schema = validate_file(lake, st.quarantine_staged, QUARANTINE_PANDERA)
    if not q_schema.passed:
        schema = Outcome("schema", False, {**schema.metadata, "quarantine": q_schema.metadata}, q_schema.description)
    return {
        "schema": schema,
        "accounting": accounting(lake, st),
        "quarantine_rate": quarantine_rate(st, cfg.pipeline.bronze.max_quarantine_rate),
    }
