"""Raw records → bronze and quarantine Arrow batches. Pure: no I/O, no Dagster."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import xxhash

from ptdata.bronze.shapes import ShapeError, to_canonical
from ptdata.core.catalog import QUARANTINE_SCHEMA, RAW_LIMIT, bronze_schema
from ptdata.core.config import SourceConfig
from ptdata.core.regimes import regime as regime_spec
from ptdata.sources.base import RawRecord


def record_id(source: str, date: dt.date, source_uri: str) -> str:
    """Stable across runs: a hash of where the record came from (source, partition, location)."""
    return xxhash.xxh3_128_hexdigest(f"{source}\x1f{date.isoformat()}\x1f{source_uri}".encode())


def content_hash(columns: dict) -> str:
    return xxhash.xxh3_128_hexdigest(orjson.dumps(columns, option=orjson.OPT_SORT_KEYS))


def cut_raw(raw: bytes | str | None) -> str | None:
    """The first 4 KiB of an input, as text; bytes that are not UTF-8 stay visible as \\xNN escapes."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.encode("utf-8", errors="surrogateescape")
    return raw[:RAW_LIMIT].decode("utf-8", errors="backslashreplace")


@dataclass
class SourceStats:
    records: int = 0  # every record the source yielded, readable or not
    bronze: int = 0
    quarantined: int = 0
    input_bytes: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


class Chunk(NamedTuple):
    """Mapped records of one source: their bronze rows, their quarantine rows, and, in input order, whether each
    record went to bronze (True) or to quarantine (False)."""

    rows: pa.RecordBatch
    rejects: pa.RecordBatch
    to_bronze: np.ndarray


class BronzeBatcher:
    """Maps one source's raw records into bronze and quarantine columns; `flush` makes them a Chunk."""

    def __init__(self, regime: str, date: dt.date) -> None:
        self.regime = regime
        self.date = date
        self.schema = bronze_schema(regime)
        self.regime_columns = regime_spec(regime).column_names
        self._rows: dict[str, list] = {f.name: [] for f in self.schema}
        self._quarantine: dict[str, list] = {f.name: [] for f in QUARANTINE_SCHEMA}
        self._to_bronze: list[bool] = []

    def _quarantine_row(self, source: str, rec: RawRecord, error: str) -> None:
        q = self._quarantine
        q["record_id"].append(record_id(source, self.date, rec.source_uri))
        q["source"].append(source)
        q["source_uri"].append(rec.source_uri)
        q["regime"].append(self.regime)
        q["date"].append(self.date)
        q["reason"].append(error.split(":", 1)[0])
        q["error"].append(error)
        q["raw"].append(cut_raw(rec.raw))
        self._to_bronze.append(False)

    def add(self, source: SourceConfig, rec: RawRecord, stats: SourceStats) -> None:
        stats.records += 1
        stats.input_bytes += rec.nbytes
        error = rec.error
        if error is None:
            try:
                cols, key, meta = to_canonical(rec.payload, self.regime, source.shape, source.verifier)
            except ShapeError as e:
                error = str(e)
        if error is not None:
            stats.quarantined += 1
            stats.reasons[error.split(":", 1)[0]] += 1
            self._quarantine_row(source.name, rec, error)
            return
        stats.bronze += 1
        r = self._rows
        r["record_id"].append(record_id(source.name, self.date, rec.source_uri))
        r["source"].append(source.name)
        r["source_uri"].append(rec.source_uri)
        r["source_key"].append(key)
        r["license"].append(source.license)
        r["date"].append(self.date)
        r["content_hash"].append(content_hash(cols))
        for name in self.regime_columns:
            r[name].append(cols[name])
        r["meta"].append(orjson.dumps(meta, option=orjson.OPT_SORT_KEYS, default=str).decode() if meta else None)
        self._to_bronze.append(True)

    def __len__(self) -> int:
        return len(self._to_bronze)

    def flush(self) -> Chunk:
        batches = []
        for cols, schema in ((self._rows, self.schema), (self._quarantine, QUARANTINE_SCHEMA)):
            batches.append(pa.RecordBatch.from_arrays([pa.array(cols[f.name], f.type) for f in schema], schema=schema))
            for v in cols.values():
                v.clear()
        chunk = Chunk(*batches, np.array(self._to_bronze, dtype=bool))
        self._to_bronze.clear()
        return chunk


def map_records(
    source: SourceConfig, records: Iterable[RawRecord], regime: str, date: dt.date, stats: SourceStats, rows: int
) -> Iterator[Chunk]:
    """A source's records mapped, in chunks of `rows` records (and a last, smaller or empty one)."""
    batcher = BronzeBatcher(regime, date)
    for rec in records:
        batcher.add(source, rec, stats)
        if len(batcher) >= rows:
            yield batcher.flush()
    yield batcher.flush()


class RowGroups:
    """Cuts a source's chunks, however the records were split into them, into the batches bronze writes as row
    groups: a batch ends with the record that brings the bronze rows or the quarantined rows since the last cut
    to `batch_rows`, and at the source's end. So the files are the same for any number of workers and parts."""

    def __init__(self, batch_rows: int) -> None:
        self.batch_rows = batch_rows
        self._rows: list[pa.RecordBatch] = []
        self._rejects: list[pa.RecordBatch] = []
        self._bronze = self._quarantined = 0

    def add(self, chunk: Chunk) -> Iterator[tuple[pa.RecordBatch | None, pa.RecordBatch | None]]:
        flags, b, q = chunk.to_bronze, 0, 0  # b, q: the chunk's bronze and quarantine rows taken so far
        while b + q < len(flags):
            rest = flags[b + q :]
            bronze = np.cumsum(rest)
            quarantined = np.arange(1, len(rest) + 1) - bronze
            full = (bronze >= self.batch_rows - self._bronze) | (quarantined >= self.batch_rows - self._quarantined)
            ends = full.any()  # a batch ends inside this chunk, else the whole rest goes to the next cut
            cut = int(np.argmax(full)) if ends else len(rest) - 1
            nb, nq = int(bronze[cut]), int(quarantined[cut])
            self._rows.append(chunk.rows.slice(b, nb))
            self._rejects.append(chunk.rejects.slice(q, nq))
            self._bronze, self._quarantined, b, q = self._bronze + nb, self._quarantined + nq, b + nb, q + nq
            if ends:
                yield self.cut()

    def cut(self) -> tuple[pa.RecordBatch | None, pa.RecordBatch | None]:
        """The batches since the last cut (None for a side without rows), and start anew."""
        out = tuple(
            pa.concat_batches(parts) if n else None
            for parts, n in ((self._rows, self._bronze), (self._rejects, self._quarantined))
        )
        self._rows, self._rejects, self._bronze, self._quarantined = [], [], 0, 0
        return out  # type: ignore[return-value]
