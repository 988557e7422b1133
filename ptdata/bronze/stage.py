"""Bronze ingestion of one (regime, partition): read every source of the regime, map shapes, stage Parquet.

Plain functions: the bronze assets call them, and so can a script or a test. Memory is bounded by the
batch size and the part size: records stream from the readers through the batcher into Parquet row groups.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from pyarrow import RecordBatch
from pyarrow.parquet import ParquetWriter

from ptdata.bronze.records import Chunk, RowGroups, SourceStats, map_records
from ptdata.core import catalog
from ptdata.core.catalog import QUARANTINE_SCHEMA, bronze_schema
from ptdata.core.config import LoadedConfig, SourceConfig
from ptdata.core.executor import INLINE, Executor
from ptdata.core.groups import by_size
from ptdata.core.lake import Lake, TablePartition
from ptdata.sources import SourceContext, read_source
from ptdata.sources.files import FilePart, file_parts, read_part

# a files source larger than this is read by the executor's workers, a part of about this many bytes per task
PART_BYTES = 8 << 20


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
    cfg: LoadedConfig,
    lake: Lake,
    landing: Path,
    regime: str,
    date: dt.date,
    stage_id: str,
    executor: Executor = INLINE,
    part_bytes: int = PART_BYTES,
) -> StagedBronze:
    """Read all sources of `regime` for `date` into staged bronze and quarantine files.

    A files source larger than `part_bytes` is read and mapped on the executor's workers, a part of about that
    many bytes per task (JSON-lines files are cut at line ends); a file whose input is not bounded so (compressed,
    or not JSON lines) and every other source kind is read in this process, record by record. The chunks are cut
    into row groups by RowGroups, so the staged files do not depend on the workers or the parts."""
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
    batch_rows = cfg.pipeline.bronze.batch_rows
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
                lake_root=lake.root,
            )
            stats = staged.stats.setdefault(source.name, SourceStats())
            row_groups = RowGroups(batch_rows)
            for chunk in _chunks(source, ctx, regime, date, stats, batch_rows, executor, part_bytes):
                for rows, rejects in row_groups.add(chunk):
                    _write(bronze_writer, quarantine_writer, rows, rejects)
            _write(bronze_writer, quarantine_writer, *row_groups.cut())
            staged.bytes_read += ctx.bytes_read or stats.input_bytes
            staged.notes.extend(f"{source.name}: {n}" for n in ctx.notes)
    return staged


def _write(
    bronze: ParquetWriter, quarantine: ParquetWriter, rows: RecordBatch | None, rejects: RecordBatch | None
) -> None:
    if rows is not None:
        bronze.write_batch(rows)
    if rejects is not None:
        quarantine.write_batch(rejects)


def _chunks(
    source: SourceConfig,
    ctx: SourceContext,
    regime: str,
    date: dt.date,
    stats: SourceStats,
    batch_rows: int,
    executor: Executor,
    part_bytes: int,
) -> Iterator[Chunk]:
    """A source's records mapped, in input order."""
    if source.kind != "files" or executor.workers < 2:
        yield from map_records(source, read_source(source, ctx), regime, date, stats, batch_rows)
        return
    parts = file_parts(source, ctx, part_bytes)  # counts the files' bytes into ctx.bytes_read
    pooled = ctx.bytes_read > part_bytes  # less input is not worth shipping to the workers
    work = _PartWork(source, replace(ctx, notes=[]), regime, date, batch_rows)
    for bounded, run in itertools.groupby(parts, key=lambda p: pooled and p.bounded):
        if not bounded:
            for part in run:
                yield from map_records(source, read_part(part, ctx), regime, date, stats, batch_rows)
            continue
        # consecutive parts share a task up to the part size: many small files are not a task each (a task costs
        # its shipping, whatever its size)
        tasks = [tuple(t) for t in by_size(run, lambda p: p.size, part_bytes)]
        for chunks, part_stats, notes in executor.map(_map_parts, work, tasks):
            _add_stats(stats, part_stats)
            ctx.notes.extend(notes)
            yield from chunks


@dataclass(frozen=True)
class _PartWork:
    """What each part's task needs (the executor ships it once to every worker)."""

    source: SourceConfig
    ctx: SourceContext
    regime: str
    date: dt.date
    batch_rows: int


def _map_parts(work: _PartWork, parts: tuple[FilePart, ...]) -> tuple[list[Chunk], SourceStats, list[str]]:
    """Read and map consecutive parts of landing files (a task of the executor): their chunks, in order, and what
    they counted and noted."""
    stats, ctx = SourceStats(), replace(work.ctx, notes=[])
    records = itertools.chain.from_iterable(read_part(part, ctx) for part in parts)
    chunks = list(map_records(work.source, records, work.regime, work.date, stats, work.batch_rows))
    return chunks, stats, ctx.notes


def _add_stats(stats: SourceStats, part: SourceStats) -> None:
    stats.records += part.records
    stats.bronze += part.bronze
    stats.quarantined += part.quarantined
    stats.input_bytes += part.input_bytes
    stats.reasons.update(part.reasons)
