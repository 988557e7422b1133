"""Tables written by several assets, one `regime=` folder each (bronze_quarantine, silver_rejections): the
asset of such a table writes nothing itself; it audits every regime's part of its partitions and reports
what the table holds."""

from collections import Counter

import dagster as dg

from ptdata.core.catalog import Table
from ptdata.core.outcome import Outcome
from ptdata.core.regimes import regime_names
from ptdata.core.validate import validate_file
from ptdata.defs.factory import SINGLE_RUN, check_result, column_schema, combined_version, partition_dates
from ptdata.defs.resources import PtdataResource


def regime_parts_asset(
    table: Table, partitions: dg.PartitionsDefinition, code_version: str, description: str
) -> dg.AssetsDefinition:
    """The asset of a table by regime, whose `regime=R` parts the `<layer>_<R>` assets write."""
    writers = [f"{table.layer}_{r}" for r in regime_names()]

    @dg.asset(
        name=table.name,
        group_name=table.layer,
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        code_version=code_version,
        deps=writers,
        kinds={"parquet"},
        description=description,
        check_specs=[
            dg.AssetCheckSpec(
                "schema", asset=table.name, blocking=True, description="every regime's part present and valid"
            )
        ],
    )
    def _parts(context: dg.AssetExecutionContext, ptdata: PtdataResource):  # noqa: ANN202 - events
        lake = ptdata.lake()
        audits, versions = [], {}
        by_reason: Counter[str] = Counter()
        by_regime: Counter[str] = Counter()
        by_source: Counter[str] = Counter()
        for date in partition_dates(context):
            problems, rows = [], 0
            for regime in regime_names():
                part = table.part(date, regime)
                if not lake.exists(part):
                    problems.append(f"no part for regime {regime} (is {table.layer}_{regime} materialized for {date}?)")
                    continue
                out = validate_file(lake, lake.path(part), table.pandera)
                problems += out.metadata["failures"]
                rows += out.metadata["rows"]
                versions[f"{date}/{regime}"] = lake.data_version(lake.path(part))
                t = lake.read_table(lake.path(part), columns=["reason", "source"])
                by_reason.update(t.column("reason").to_pylist())
                by_source.update(t.column("source").to_pylist())
                by_regime[regime] += t.num_rows
            desc = f"{table.name} {date}: {problems[0]}" if problems else ""
            audits.append((date, Outcome("schema", not problems, {"rows": rows, "problems": problems[:5]}, desc)))
        result = check_result(table.name, "schema", audits)
        yield result
        if not result.passed:
            raise dg.Failure(description=result.description)
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": sum(by_regime.values()),
                "dagster/column_schema": column_schema(table.schema),
                "by_reason": dict(sorted(by_reason.items())),
                "by_regime": dict(sorted(by_regime.items())),
                "by_source": dict(sorted(by_source.items())),
                "path": dg.MetadataValue.path(table.url(lake)),
            },
            data_version=dg.DataVersion(combined_version(versions)),
        )

    return _parts
