"""Releases: a named, pinned set of gold partitions, exported for trainers (as curate.py is for silver).

`<lake>/releases/<name>/`:
- `manifest.json`: every gold partition in it with its data version (SHA-256 of the file), rows and tokens; the
  config hash, tokenizer hash and code versions. No wall-clock time, so rebuilding a release from the same
  partitions gives the same manifest byte for byte.
- `README.md`: the dataset card: sources and licenses, the funnel from input records to gold, token and length
  statistics, with histograms (SVG, next to it).
- `shards/<table>-NNNNN.parquet`: the gold rows in (date, row) order, cut into shards of at most
  `release.shard_tokens` tokens; `datasets.load_dataset("parquet", data_files=...)` reads them as they are.
- `megatron/<table>.bin` and `.idx`: packed rows (sft, text) as Megatron-LM's indexed dataset (MMIDIDX version 1),
  one sequence per packed row, for trainers that read that format.
- `tokenizer.json`: the tokenizer the rows were built with.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pyarrow.parquet as pq

from ptdata.core import catalog
from ptdata.core.catalog import token_column
from ptdata.core.config import LoadedConfig, stable_hash
from ptdata.core.executor import INLINE, Executor
from ptdata.core.lake import PARQUET_OPTIONS, Lake, parquet_list, partition_days
from ptdata.core.regimes import regime as regime_spec
from ptdata.core.regimes import regime_names, regimes
from ptdata.gold.lake_tokenizer import TOKENIZER, TOKENIZER_FILE, TOKENIZER_META, load_lake_tokenizer
from ptdata.gold.tokenize import LoadedTokenizer

RELEASE_CODE_VERSION = "1"
# Megatron-LM's MMIDIDX header and dtype codes (megatron/core/datasets/indexed_dataset.py)
_MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
_MEGATRON_DTYPES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4}


class ReleaseError(RuntimeError):
    """A release that cannot be built as asked; the message says why."""


@dataclass
class PlannedPartition:
    table: str
    date: dt.date
    path: str
    data_version: str
    rows: int
    # each row's tokens, a row group at a time: the partition's total and the shard plan read them
    row_tokens: list[np.ndarray]

    @property
    def tokens(self) -> int:
        return sum(int(n.sum()) for n in self.row_tokens)


@dataclass
class Release:
    name: str
    partitions: list[PlannedPartition] = field(default_factory=list)
    tokenizer_sha256: str = ""
    tokenizer: LoadedTokenizer | None = None


def _row_tokens(pf: pq.ParquetFile, group: int, regime: str) -> np.ndarray:
    """Each row's tokens in a row group of a gold partition (packed rows carry their count)."""
    if regime_spec(regime).packs:
        return pf.read_row_group(group, columns=["tokens"]).column(0).to_numpy().astype(np.int64)
    column = pf.read_row_group(group, columns=[token_column(regime)]).column(0)
    return pa.compute.list_value_length(column).to_numpy().astype(np.int64)


def plan_release(lake: Lake, cfg: LoadedConfig, name: str, dates: list[dt.date] | None) -> Release:
    """Every materialized gold partition of `dates` (all dates from start_date to today when None)."""
    if not name or "/" in name or name.startswith("."):
        raise ReleaseError(f"release name {name!r}: use letters, digits, '-', '_' or '.'")
    days = dates or partition_days(cfg.pipeline.start_date, dt.date.today() + dt.timedelta(days=1))
    release = Release(name)
    shas = set()
    for regime in regime_names():
        for day in days:
            part = catalog.gold(regime).part(day)
            if not lake.exists(part):
                continue
            path = lake.path(part)
            pf = lake.parquet_file(path)
            shas.add((pf.schema_arrow.metadata or {}).get(TOKENIZER_META, b"").decode())
            tokens = [_row_tokens(pf, g, regime) for g in range(pf.num_row_groups)]
            release.partitions.append(
                PlannedPartition(f"gold_{regime}", day, path, lake.data_version(path), pf.metadata.num_rows, tokens)
            )
    if not release.partitions:
        raise ReleaseError(f"release {name}: no gold partition is materialized for the dates asked")
    release.tokenizer = load_lake_tokenizer(lake)
    release.tokenizer_sha256 = release.tokenizer.sha256()
    if shas != {release.tokenizer_sha256}:
        raise ReleaseError(
            f"release {name}: its gold partitions were built with {len(shas)} tokenizer(s), not all the current "
            "one: re-materialize the stale gold partitions first"
        )
    return release


# a shard's rows: (partition file, row group, first row, rows) pieces, written in order
Shard = list[tuple[str, int, int, int]]


def shard_plan(lengths: list[tuple[str, int, np.ndarray]], budget: int) -> list[Shard]:
    """Where a table's rows go: given each row group's (file, index, row token counts) in (date, row) order, the
    shards of at most `budget` tokens each, filled in order (a row longer than the budget is a shard of its own),
    as pieces of row groups."""
    shards: list[Shard] = []
    tokens = 0
    for path, group, counts in lengths:
        start = 0
        while start < len(counts):
            if not shards or (shards[-1] and tokens + counts[start] > budget):
                shards.append([])
                tokens = 0
            cum = np.cumsum(counts[start:])
            # as many rows as fit the budget, and at least one
            take = max(1, int(np.searchsorted(cum, budget - tokens, side="right")))
            shards[-1].append((path, group, start, take))
            tokens += int(cum[take - 1])
            start += take
    return shards


@dataclass(frozen=True)
class _ShardWork:
    lake: Lake
    out: str
    table: str


def _write_shard(work: _ShardWork, task: tuple[int, Shard]) -> None:
    """One shard file (a task of the executor): its pieces, each one row group of the file."""
    number, pieces = task
    writer = None
    for path, group, start, rows in pieces:
        batch = work.lake.parquet_file(path).read_row_group(group).replace_schema_metadata(None).slice(start, rows)
        if writer is None:
            name = f"{work.out}/shards/{work.table}-{number:05d}.parquet"
            writer = pq.ParquetWriter(name, batch.schema, filesystem=work.lake.arrow_fs, **PARQUET_OPTIONS)
        writer.write_table(batch)
    if writer is not None:
        writer.close()


def _shards(
    lake: Lake, release: Release, out: str, shard_tokens: int, executor: Executor
) -> dict[str, list[dict[str, Any]]]:
    """Each table's rows, in (date, row) order, into shards of at most `shard_tokens` tokens, a shard a task on
    the executor's workers (the plan needs only the rows' token counts); returns per table the shards' files,
    rows and tokens."""
    shards = {}
    for table in dict.fromkeys(p.table for p in release.partitions):
        counts = {(p.path, g): n for p in release.partitions if p.table == table for g, n in enumerate(p.row_tokens)}
        plan = shard_plan([(path, g, n) for (path, g), n in counts.items()], shard_tokens)
        if plan:
            lake.fs.makedirs(f"{out}/shards", exist_ok=True)
        list(executor.map(_write_shard, _ShardWork(lake, out, table), list(enumerate(plan))))
        shards[table] = [
            {
                "file": f"shards/{table}-{i:05d}.parquet",
                "rows": sum(rows for _, _, _, rows in pieces),
                "tokens": sum(int(counts[(p, g)][a : a + r].sum()) for p, g, a, r in pieces),
            }
            for i, pieces in enumerate(plan)
        ]
    return shards


def _megatron(lake: Lake, release: Release, out: str, vocab_size: int) -> dict[str, dict[str, Any]]:
    """Packed rows as Megatron-LM's MMIDIDX indexed dataset: one sequence per row, one document per sequence."""
    written = {}
    for table in (f"gold_{r.name}" for r in regimes() if r.packs):
        parts = [p for p in release.partitions if p.table == table]
        if not parts:
            continue
        sizes: list[np.ndarray] = []
        # uint16 when every id fits (Megatron's choice for vocabularies under 65,500), else int32
        dtype = np.dtype(np.uint16 if vocab_size < 65_500 else np.int32)
        lake.fs.makedirs(f"{out}/megatron", exist_ok=True)
        with lake.fs.open(f"{out}/megatron/{table}.bin", "wb") as f:
            for part in parts:
                pf = lake.parquet_file(part.path)
                for g in range(pf.num_row_groups):
                    # the rows' ids end to end are the file's bytes: one write a row group, no Python ints
                    for rows in pf.read_row_group(g, columns=["input_ids"]).column(0).chunks:
                        f.write(rows.flatten().to_numpy().astype(dtype).tobytes())
                        sizes.append(pa.compute.list_value_length(rows).to_numpy())
        size = np.concatenate([np.zeros(0, dtype=np.int32), *sizes]).astype(np.int32)
        pointers = np.concatenate([[0], np.cumsum(size.astype(np.int64) * dtype.itemsize)[:-1]]).astype(np.int64)
        doc_idx = np.arange(len(size) + 1, dtype=np.int64)
        with lake.fs.open(f"{out}/megatron/{table}.idx", "wb") as f:
            f.write(_MEGATRON_MAGIC)
            f.write(struct.pack("<Q", 1))
            f.write(struct.pack("<B", _MEGATRON_DTYPES[dtype]))
            f.write(struct.pack("<Q", len(size)))
            f.write(struct.pack("<Q", len(doc_idx)))
            f.write(size.tobytes())
            f.write(pointers.tobytes())
            f.write(doc_idx.tobytes())
        written[table] = {"sequences": len(size), "dtype": dtype.name, "tokens": int(size.sum())}
    return written


def read_megatron_index(data: bytes) -> tuple[np.dtype, np.ndarray, np.ndarray]:
    """(dtype, sizes, pointers) of a Megatron .idx file: what a reader needs to slice the .bin."""
    if data[:9] != _MEGATRON_MAGIC:
        raise ValueError("not a Megatron MMIDIDX index")
    (version,) = struct.unpack("<Q", data[9:17])
    (code,) = struct.unpack("<B", data[17:18])
    n, _ = struct.unpack("<QQ", data[18:34])
    dtype = next(d for d, c in _MEGATRON_DTYPES.items() if c == code)
    sizes = np.frombuffer(data, dtype=np.int32, count=n, offset=34)
    pointers = np.frombuffer(data, dtype=np.int64, count=n, offset=34 + 4 * n)
    return dtype, sizes, pointers


def _svg_histogram(values: np.ndarray, title: str, bins: int = 30) -> str:
    """A histogram as a small, deterministic SVG image (no plotting library needed)."""
    width, height, pad = 480, 200, 30
    counts, edges = np.histogram(values, bins=bins) if len(values) else (np.zeros(bins, int), np.arange(bins + 1))
    top = max(int(counts.max()), 1)
    bar = (width - 2 * pad) / bins
    rects = "".join(
        f'<rect x="{pad + k * bar:.1f}" y="{height - pad - (height - 2 * pad) * c / top:.1f}" width="{bar - 1:.1f}" '
        f'height="{(height - 2 * pad) * c / top:.1f}" fill="#4a78b0"/>'
        for k, c in enumerate(counts.tolist())
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f'<text x="{pad}" y="18" font-family="sans-serif" font-size="13">{title}</text>{rects}'
        f'<text x="{pad}" y="{height - 8}" font-family="sans-serif" font-size="11">{int(edges[0])}</text>'
        f'<text x="{width - pad}" y="{height - 8}" font-family="sans-serif" font-size="11" text-anchor="end">'
        f"{int(edges[-1])} tokens</text>"
        f'<text x="{pad - 4}" y="{pad + 4}" font-family="sans-serif" font-size="11" text-anchor="end">{top}</text></svg>'
    )


def _lengths(lake: Lake, release: Release, table: str) -> np.ndarray:
    """Tokens per sequence: each packed sequence (seq_lens) of sft and text, each row of the others."""
    out = []
    regime = table.removeprefix("gold_")
    for part in (p for p in release.partitions if p.table == table):
        if regime_spec(regime).packs:
            col = lake.parquet_file(part.path).read(columns=["seq_lens"]).column(0)
            out.append(pa.compute.list_flatten(col).to_numpy())
        else:
            col = lake.parquet_file(part.path).read(columns=[token_column(regime)]).column(0)
            out.append(pa.compute.list_value_length(col).to_numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _card(lake: Lake, cfg: LoadedConfig, release: Release, out: str) -> dict[str, Any]:
    """Write README.md and the histograms; returns the card's figures (they go in the manifest too)."""
    days = sorted({p.date for p in release.partitions})
    tables = sorted({p.table for p in release.partitions})
    licenses: Counter[tuple[str, str, str]] = Counter()
    funnel = {}
    with lake.duckdb() as con:
        for table in tables:
            regime = table.removeprefix("gold_")
            gold = [p.path for p in release.partitions if p.table == table]
            silver = [lake.path(catalog.silver(regime).part(d)) for d in days]
            silver = [p for p in silver if lake.fs.exists(p)]
            rows = con.sql(
                f"select s.source, s.license, count(*) from (select unnest(record_ids) as record_id from "
                f"read_parquet({parquet_list(gold)})) g join read_parquet({parquet_list(silver)}) s using (record_id) group by all"
            ).fetchall()
            for source, license_, n in rows:
                licenses[(regime, source, license_)] += n
            counts = {}
            for layer, records in (("bronze", catalog.bronze(regime)), ("silver", catalog.silver(regime))):
                paths = [lake.path(records.part(d)) for d in days]
                paths = [p for p in paths if lake.fs.exists(p)]
                counts[layer] = (
                    con.sql(f"select count(*) from read_parquet({parquet_list(paths)})").fetchone()[0] if paths else 0
                )
            counts["gold"] = sum(n for (r, _, _), n in licenses.items() if r == regime)
            funnel[regime] = counts
    stats, images = {}, []
    for table in tables:
        lengths = _lengths(lake, release, table)
        parts = [p for p in release.partitions if p.table == table]
        q = np.percentile(lengths, [50, 90, 99]).round().astype(int).tolist() if len(lengths) else [0, 0, 0]
        stats[table] = {
            "rows": sum(p.rows for p in parts),
            "tokens": sum(p.tokens for p in parts),
            "sequences": len(lengths),
            "p50": q[0],
            "p90": q[1],
            "p99": q[2],
            "max": int(lengths.max()) if len(lengths) else 0,
        }
        image = f"{table}-lengths.svg"
        lake.write_bytes(f"{out}/{image}", _svg_histogram(lengths, f"{table}: tokens per sequence").encode())
        images.append((table, image))
    lines = [
        f"# {release.name}",
        "",
        f"A ptdata release of {len(release.partitions)} gold partitions, {days[0]} to {days[-1]}. Tokenizer SHA-256 "
        f"`{release.tokenizer_sha256}`, chat template `{cfg.pipeline.tokenizer.chat_template}`, loss on "
        f"`{cfg.pipeline.tokenizer.loss_on}`, rows of {cfg.pipeline.packing.seq_len} tokens. `manifest.json` pins every "
        "partition's data version; `shards/` holds the rows as Parquet, `megatron/` the packed rows as .bin/.idx.",
        "",
        "## Sources and licenses",
        "",
        "| regime | source | license | records |",
        "|---|---|---|---:|",
        *(f"| {r} | {s} | {lic} | {n:,} |" for (r, s, lic), n in sorted(licenses.items())),
        "",
        "## Funnel (records)",
        "",
        "| regime | bronze | silver | gold |",
        "|---|---:|---:|---:|",
        *(f"| {r} | {c['bronze']:,} | {c['silver']:,} | {c['gold']:,} |" for r, c in sorted(funnel.items())),
        "",
        "## Tokens",
        "",
        "| table | rows | tokens | sequences | p50 | p90 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {t} | {s['rows']:,} | {s['tokens']:,} | {s['sequences']:,} | {s['p50']} | {s['p90']} | {s['p99']} | {s['max']} |"
            for t, s in stats.items()
        ),
        "",
        *(f"![{t}]({image})" for t, image in images),
        "",
    ]
    lake.write_bytes(f"{out}/README.md", "\n".join(lines).encode())
    return {
        "licenses": [
            {"regime": r, "source": s, "license": lic, "records": n} for (r, s, lic), n in sorted(licenses.items())
        ],
        "funnel": funnel,
        "tokens": stats,
    }


def build_release(
    lake: Lake,
    cfg: LoadedConfig,
    release: Release,
    out: str,
    code_versions: dict[str, str],
    executor: Executor = INLINE,
) -> dict[str, Any]:
    """Write the whole release folder (see the module docstring) under `out`; returns the manifest."""
    shards = _shards(lake, release, out, cfg.pipeline.release.shard_tokens, executor)
    megatron = _megatron(lake, release, out, release.tokenizer.vocab_size)
    card = _card(lake, cfg, release, out)
    lake.write_bytes(f"{out}/tokenizer.json", lake.read_bytes(lake.path(TOKENIZER, TOKENIZER_FILE)))
    manifest = {
        "name": release.name,
        "format": 1,
        "config_sha": stable_hash(cfg.pipeline),
        "tokenizer_sha256": release.tokenizer_sha256,
        "code_versions": dict(sorted(code_versions.items())),
        "partitions": [
            {
                "table": p.table,
                "date": p.date.isoformat(),
                "data_version": p.data_version,
                "rows": p.rows,
                "tokens": p.tokens,
            }
            for p in release.partitions
        ],
        "shards": shards,
        "megatron": megatron,
        **card,
    }
    lake.write_bytes(f"{out}/manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode())
    return manifest
