"""Raw records → bronze and quarantine Arrow batches. Pure: no I/O, no Dagster."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

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


class BronzeBatcher:
    """Turns one source's raw records into bronze and quarantine batches of at most `batch_rows` rows."""

    def __init__(self, regime: str, date: dt.date, batch_rows: int) -> None:
        self.regime = regime
        self.date = date
        self.batch_rows = batch_rows
        self.schema = bronze_schema(regime)
        self.regime_columns = regime_spec(regime).column_names
        self._rows: dict[str, list] = {f.name: [] for f in self.schema}
        self._quarantine: dict[str, list] = {f.name: [] for f in QUARANTINE_SCHEMA}

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

    def full(self) -> bool:
        return len(self._rows["record_id"]) >= self.batch_rows or len(self._quarantine["record_id"]) >= self.batch_rows

    def flush(self) -> tuple[pa.RecordBatch | None, pa.RecordBatch | None]:
        out = []
        for cols, schema in ((self._rows, self.schema), (self._quarantine, QUARANTINE_SCHEMA)):
            if cols["record_id"]:
                out.append(pa.RecordBatch.from_arrays([pa.array(cols[f.name], f.type) for f in schema], schema=schema))
                for v in cols.values():
                    v.clear()
            else:
                out.append(None)
        return out[0], out[1]


def bronze_batches(
    source: SourceConfig, records: Iterable[RawRecord], batcher: BronzeBatcher, stats: SourceStats
) -> Iterator[tuple[pa.RecordBatch | None, pa.RecordBatch | None]]:
    """Map a source's records, yielding (bronze, quarantine) batches as they fill and a last partial one."""
    for rec in records:
        batcher.add(source, rec, stats)
        if batcher.full():
            yield batcher.flush()
    yield batcher.flush()
