"""The history walk: what silver(D)'s dedup can reach among the signatures of every partition up to D, and the
shingles of those records, read back from their prepared text (ptdata/silver/signatures.py)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ptdata.core import catalog
from ptdata.core.config import LoadedConfig
from ptdata.core.lake import Lake, parquet_list, partition_days
from ptdata.silver.dedup.lsh import NO_BUCKET
from ptdata.silver.dedup.ngrams import dedup_keys, key_ngram_hashes
from ptdata.silver.signatures import VERSION_META, SilverInputError, signatures_version


def signature_inputs(lake: Lake, cfg: LoadedConfig, regime: str, date: dt.date) -> tuple[list[str], list[dt.date]]:
    """The signatures files of the partitions from start_date to `date` (the last is `date`'s own), and the
    earlier dates that have none yet.

    Dagster lets any partition be materialized alone, so silver(D) runs with the history there is: an earlier
    partition materialized later makes silver(D) stale (its partition mapping covers every earlier date), and
    the asset's `complete_history` check warns until it is re-materialized; the result is then the same as in
    date order. Signatures built with another config are never mixed in: that fails, naming the dates."""
    want = signatures_version(cfg, regime)
    paths, missing, other = [], [], []
    for day in partition_days(cfg.pipeline.start_date, date):
        part = catalog.DEDUP_SIGNATURES.part(day, regime)
        if not lake.exists(part):
            missing.append(day)
            continue
        meta = lake.parquet_file(lake.path(part)).schema_arrow.metadata or {}
        if meta.get(VERSION_META, b"").decode() != want:
            other.append(day.isoformat())
        paths.append(lake.path(part))
    if date in missing:
        raise SilverInputError(f"silver_{regime} {date}: dedup_signatures is not materialized for {date}")
    if other:
        raise SilverInputError(
            f"silver_{regime} {date}: dedup_signatures of {_dates(other)} were built with another config or code "
            "version: re-materialize dedup_signatures for those dates first"
        )
    return paths, missing


def _dates(days: list[str]) -> str:
    return ", ".join(days) if len(days) <= 4 else f"{', '.join(days[:3])} and {len(days) - 3} more"


def dedup_inputs(lake: Lake, paths: list[str], day_path: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """From the signatures up to D (`day_path` is D's): D's eligible records (record_id, exact_key), the
    representative of each of their exact keys (exact_key, rep_id), and the band keys that two or more eligible
    exact representatives share (record_id, date, band, key), restricted to what D's dedup can reach.

    What D's records can reach is found breadth-first: the records sharing a band key with D's, then those
    sharing one with them, until no new key turns up. Each step is one DuckDB scan of the history's band keys
    with a small filter, so memory stays bounded by what is reached (near-dup clusters and their buckets), not
    by the history or by D; the number of steps is the longest chain of buckets, usually two or three. A key no
    two records share reaches nothing, so the walk starts from D's shared keys only, and D's records that share
    none are not in `reached` at all.
    """
    files = parquet_list(paths)
    eligible = f"(select record_id, date, exact_key, band_keys from read_parquet({files}) where reject is null)"
    long_schema = {"record_id": pl.String, "date": pl.Date, "exact_key": pl.String, "band": pl.Int16, "key": pl.UInt64}
    with lake.duckdb() as con:
        day = con.sql(
            f"select record_id, exact_key from read_parquet('{day_path}') where reject is null order by record_id"
        ).pl()
        # the first step starts from D's band keys that two or more eligible records share: most keys are one
        # record's own and can never make a candidate, and at a million records they would be most of the memory
        frontier = con.sql(
            f"select key from (select unnest(band_keys) as key from {eligible}) where key != {NO_BUCKET} and key in "
            f"(select unnest(band_keys) from read_parquet('{day_path}') where reject is null) "
            "group by key having count(*) >= 2"
        ).pl()
        seen_keys = frontier
        reached = pl.DataFrame(schema=long_schema)
        while frontier.height:
            con.register("frontier", frontier.filter(pl.col("key") != NO_BUCKET).to_arrow())
            found = con.sql(
                f"select distinct record_id, date, exact_key, band_keys from (select *, unnest(band_keys) as key "
                f"from {eligible}) where key in (select key from frontier)"
            ).pl()
            con.unregister("frontier")
            found = found.join(reached.select("record_id").unique(), on="record_id", how="anti")
            rows = found.with_columns(band=pl.int_ranges(pl.col("band_keys").list.len(), dtype=pl.Int16)).explode(
                ["band_keys", "band"]
            )
            rows = rows.select("record_id", "date", "exact_key", "band", key="band_keys")
            reached = pl.concat([reached, rows.cast(long_schema)])
            frontier = rows.select("key").unique().join(seen_keys, on="key", how="anti")
            seen_keys = pl.concat([seen_keys, frontier])
        needed = pl.concat([day.select("exact_key"), reached.select("exact_key")]).unique()
        con.register("needed", needed.to_arrow())
        reps_all = con.sql(
            f"select exact_key, arg_min(record_id, strftime(date, '%Y-%m-%d') || record_id) as rep_id from {eligible} "
            "where exact_key in (select exact_key from needed) group by exact_key"
        ).pl()
    reps = reps_all.join(day.select("exact_key").unique(), on="exact_key", how="semi").sort("exact_key")
    rep_rows = reached.join(reps_all, left_on=["record_id", "exact_key"], right_on=["rep_id", "exact_key"], how="semi")
    shared = rep_rows.filter((pl.col("key") != NO_BUCKET) & pl.col("key").is_duplicated())
    return day, reps, shared.select("record_id", "date", "band", "key").sort("record_id", "band")


def shingle_reader(
    lake: Lake, cfg: LoadedConfig, regime: str, dates: Mapping[str, dt.date]
) -> Callable[[list[str]], dict[str, np.ndarray]]:
    """A function giving the shingles of records by id, from their partitions' prepared records: exactly the text
    the band keys came from, without preparing it again."""
    dedup = cfg.pipeline.dedup

    def shingles_of(ids: list[str]) -> dict[str, np.ndarray]:
        by_date: dict[dt.date, list[str]] = defaultdict(list)
        for rid in ids:
            by_date[dates[rid]].append(rid)
        out: dict[str, np.ndarray] = {}
        for day, wanted in sorted(by_date.items()):
            # row group by row group: a filtered read of the whole file would hold all its text at once
            pf = lake.parquet_file(prepared_path(lake, regime, day))
            wanted_ids = pa.array(wanted, pa.string())
            for i in range(pf.num_row_groups):
                group = pf.read_row_group(i)
                records = group.filter(pc.is_in(group["record_id"], value_set=wanted_ids)).to_pylist()
                if not records:
                    continue
                keys = dedup_keys(regime, records, dedup.fields.get(regime))
                for r, h in zip(records, key_ngram_hashes(keys, dedup.ngram), strict=True):
                    out[r["record_id"]] = np.unique(h)
        lost = set(ids) - set(out)
        if lost:
            raise SilverInputError(f"records {sorted(lost)[:3]} of dedup_signatures have no prepared record")
        return out

    return shingles_of


def prepared_path(lake: Lake, regime: str, day: dt.date) -> str:
    """The prepared records of a partition, which dedup_signatures writes with its signatures."""
    part = catalog.prepared(regime).part(day)
    if not lake.exists(part):
        raise SilverInputError(
            f"prepared_{regime} {day} is missing (signatures built before prepared records were kept): "
            f"re-materialize dedup_signatures for {day}"
        )
    return lake.path(part)
