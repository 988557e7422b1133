"""Bronze ingestion of one (regime, partition): read every source of the regime, map shapes, stage Parquet.

Plain functions: the bronze assets call them, and so can a script or a test. Memory is bounded by the
batch size: records stream from the readers through the batcher into Parquet row groups.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from ptdata.bronze.records import BronzeBatcher, SourceStats, bronze_batches
from ptdata.core import catalog
from ptdata.core.catalog import QUARANTINE_SCHEMA, bronze_schema
from ptdata.core.config import LoadedConfig
from ptdata.core.lake import Lake, TablePartition
from ptdata.sources import SourceContext, read_source


@dataclass
class StagedBronze:
    regime: str
    date: dt.date
    bronze: TablePartition
    quarantine: TablePartition
    bronze_staged: str
    quarantine_staged: str
    stats: dict[str, SourceStats]
    notes: list[str] = field(default_factory=list)
    bytes_read: int = 0

    @property
    def records(self) -> int:
        return sum(s.records for s in self.stats.values())

    @property
    def bronze_rows(self) -> int:
        return sum(s.bronze for s in self.stats.values())

    @property
    def quarantined(self) -> int:
        return sum(s.quarantined for s in self.stats.values())


def stage_bronze(
    cfg: LoadedConfig, lake: Lake, landing: Path, regime: str, date: dt.date, stage_id: str
) -> StagedBronze:
    """Read all sources of `regime` for `date` into staged bronze and quarantine files."""
    bronze = catalog.bronze(regime).part(date)
    quarantine = catalog.BRONZE_QUARANTINE.part(date, regime)
    staged = StagedBronze(
        regime=regime,
        date=date,
        bronze=bronze,
        quarantine=quarantine,
        bronze_staged=lake.staged_path(bronze, stage_id),
        quarantine_staged=lake.staged_path(quarantine, stage_id),
        stats={},
    )
    batcher = BronzeBatcher(regime, date, cfg.pipeline.bronze.batch_rows)
    # a writer closed without a batch still leaves a valid, empty file with the table's schema
    with (
        lake.parquet_writer(staged.bronze_staged, bronze_schema(regime)) as bronze_writer,
        lake.parquet_writer(staged.quarantine_staged, QUARANTINE_SCHEMA) as quarantine_writer,
    ):
        for source in cfg.pipeline.sources_of(regime):
            ctx = SourceContext(
                date=date,
                landing_dir=landing / source.name / date.isoformat(),
                config_dir=cfg.folder,
                max_record_bytes=cfg.pipeline.bronze.max_record_bytes,
            )
            stats = staged.stats.setdefault(source.name, SourceStats())
            for rows, rejects in bronze_batches(source, read_source(source, ctx), batcher, stats):
                if rows is not None:
                    bronze_writer.write_batch(rows)
                if rejects is not None:
                    quarantine_writer.write_batch(rejects)
            staged.bytes_read += ctx.bytes_read or stats.input_bytes
            staged.notes.extend(f"{source.name}: {n}" for n in ctx.notes)
    return staged
