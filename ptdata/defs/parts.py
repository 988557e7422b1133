"""Tables written by several assets, one `regime=` folder each (bronze_quarantine, silver_rejections,
gold_rejections): the asset of such a table writes nothing itself; it audits every regime's part of its partitions
and reports what the table holds."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import dagster as dg

from ptdata.core.catalog import Table
from ptdata.core.outcome import Outcome
from ptdata.core.regimes import regime_names
from ptdata.core.validate import validate_file
from ptdata.defs.factory import Gate, Staged, Step, table_asset


def _audit_parts(table: Table, step: Step, date: dt.date | None) -> Staged:
    problems, rows, versions = [], 0, {}
    counts: dict[str, Counter[str]] = {"reason": Counter(), "regime": Counter(), "source": Counter()}
    for regime in regime_names():
        part = table.part(date, regime)
        if not step.lake.exists(part):
            problems.append(f"no part for regime {regime} (is {table.layer}_{regime} materialized for {date}?)")
            continue
        path = step.lake.path(part)
        out = validate_file(step.lake, path, table.pandera)
        problems += out.metadata["failures"]
        rows += out.metadata["rows"]
        versions[f"{date}/{regime}"] = step.lake.data_version(path)
        t = step.lake.read_table(path, columns=["reason", "source"])
        counts["reason"].update(t.column("reason").to_pylist())
        counts["source"].update(t.column("source").to_pylist())
        counts["regime"][regime] += t.num_rows
    desc = f"{table.name} {date}: {problems[0]}" if problems else ""
    outcome = Outcome("schema", not problems, {"rows": rows, "problems": problems[:5]}, desc)
    return Staged(date, audits={"schema": outcome}, records_in=rows, info=counts, versions=versions)


def _metadata(_: Step, staged: list[Staged], __: dict[str, str], ___: dict[str, Any]) -> dict[str, Any]:
    total = {k: sum((st.info[k] for st in staged), Counter()) for k in ("reason", "regime", "source")}
    return {
        "dagster/row_count": sum(total["regime"].values()),
        **{f"by_{k}": dict(sorted(c.items())) for k, c in total.items()},
    }


def regime_parts_asset(table: Table, partitions: dg.PartitionsDefinition, code_version: str) -> dg.AssetsDefinition:
    """The asset of a table by regime, whose `regime=R` parts the `<layer>_<R>` assets write."""
    return table_asset(
        table,
        partitions,
        description=table.description,
        code_version=code_version,
        stage=lambda step, date, _: _audit_parts(table, step, date),
        metadata=_metadata,
        gates=(Gate("schema", "every regime's part present and valid"),),
        deps=[f"{table.layer}_{r}" for r in regime_names()],
    )
