"""Drift: each partition's statistics against those of the partitions before it.

Every bronze and silver partition leaves its statistics in `<lake>/_stats/<table>/date=D.json` when it is
published. The drift check (WARN) of a partition compares each statistic with the trailing window's: it drifts
when it is further from the window's median than `drift_sigmas` robust deviations (1.4826 x the median absolute
deviation) and than `drift_min_relative` of the median and than the statistic's own floor; the language mix
drifts when its total variation distance from the window's pooled mix is above `lang_mix_max_shift`. Robust
statistics, because one earlier bad day must not widen the band enough to hide the next.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ptdata.core.config import MonitoringConfig
from ptdata.core.lake import Lake
from ptdata.core.outcome import Outcome
from ptdata.core.regimes import regime as regime_spec

# the smallest change of each statistic worth a warning, whatever the window: without it a window of identical
# days (a rate of exactly 0, say) would flag the first record that differs
FLOORS: dict[str, float] = {
    "volume": 0.0,
    "mean_chars": 0.0,
    "quarantine_rate": 0.02,
    "dup_rate": 0.02,
    "pii_per_record": 0.05,
    "contaminated": 3.0,
}


def stats_path(lake: Lake, table: str, date: dt.date) -> str:
    return f"{lake.root}/_stats/{table}/date={date.isoformat()}.json"


def write_stats(lake: Lake, table: str, date: dt.date, stats: Mapping[str, Any]) -> None:
    lake.write_bytes(stats_path(lake, table, date), json.dumps(stats, sort_keys=True).encode())


def read_stats(lake: Lake, table: str, date: dt.date) -> dict[str, Any] | None:
    """A partition's recorded statistics; None when it has none (not materialized, or before monitoring)."""
    path = stats_path(lake, table, date)
    if not lake.fs.exists(path):
        return None
    try:
        return json.loads(lake.read_bytes(path))
    except ValueError:  # a writer killed mid-write: as good as missing
        return None


def mean_chars(lake: Lake, path: str, regime: str) -> float:
    """Mean characters of text per record of a bronze or silver file (all turns of a conversation)."""
    pf = lake.parquet_file(path)
    total, rows = 0, pf.metadata.num_rows
    for g in range(pf.num_row_groups):
        batch = pf.read_row_group(g, columns=list(regime_spec(regime).text_fields))
        for column in batch.columns:
            total += _chars(column)
    return total / rows if rows else 0.0


def _chars(column: pa.ChunkedArray) -> int:
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        column = pc.struct_field(pc.list_flatten(column), "content")
    return int(pc.sum(pc.utf8_length(column)).as_py() or 0)


def drift_outcomes(
    lake: Lake, table: str, stats: Mapping[dt.date, Mapping[str, Any]], cfg: MonitoringConfig
) -> dict[dt.date, Outcome]:
    """The drift check of each partition of a run (date -> its statistics); the window of each is made of the
    recorded statistics of earlier partitions and of this run's own earlier dates."""
    out = {}
    for date, today in stats.items():
        history = {}
        for k in range(1, cfg.drift_window_days + 1):
            d = date - dt.timedelta(days=k)
            earlier = stats.get(d) or read_stats(lake, table, d)
            if earlier is not None:
                history[d] = earlier
        out[date] = drift(table, date, today, history, cfg)
    return out


def drift(
    table: str,
    date: dt.date,
    today: Mapping[str, Any],
    history: Mapping[dt.date, Mapping[str, Any]],
    cfg: MonitoringConfig,
) -> Outcome:
    """The drift check of one partition: `today`'s statistics against `history` (date -> statistics) of the
    trailing window. Scalars are compared as the module says; `lang_mix` (language -> records) by distance."""
    window = [history[d] for d in sorted(history) if date - dt.timedelta(days=cfg.drift_window_days) <= d < date]
    meta: dict[str, Any] = {"window_days": len(window), "today": dict(today)}
    if len(window) < cfg.drift_min_history:
        meta["verdict"] = f"no verdict: {len(window)} of the {cfg.drift_min_history} earlier partitions needed"
        return Outcome("drift", True, meta)
    drifted: list[str] = []
    bands: dict[str, Any] = {}
    for name, value in today.items():
        if name == "lang_mix":
            continue
        past = [float(w[name]) for w in window if w.get(name) is not None]
        if len(past) < cfg.drift_min_history or value is None:
            continue
        median = statistics.median(past)
        spread = 1.4826 * statistics.median(abs(x - median) for x in past)
        tolerance = max(cfg.drift_sigmas * spread, cfg.drift_min_relative * abs(median), FLOORS.get(name, 0.0))
        bands[name] = {
            "median": round(median, 6),
            "low": round(median - tolerance, 6),
            "high": round(median + tolerance, 6),
        }
        if abs(float(value) - median) > tolerance:
            drifted.append(f"{name} {_fmt(value)} vs a {len(past)}-day median of {_fmt(median)}")
    if "lang_mix" in today:
        shift = _mix_shift(today["lang_mix"], [w["lang_mix"] for w in window if w.get("lang_mix")])
        if shift is not None:
            bands["lang_mix_shift"] = {"value": round(shift, 4), "max": cfg.lang_mix_max_shift}
            if shift > cfg.lang_mix_max_shift:
                drifted.append(f"language mix moved by {shift:.2f} (total variation) from the window's")
    meta["bands"] = bands
    meta["drifted"] = drifted
    description = f"{table} {date}: " + "; ".join(drifted) if drifted else ""
    return Outcome("drift", not drifted, meta, description)


def _mix_shift(today: Mapping[str, int], window: list[Mapping[str, int]]) -> float | None:
    """Total variation distance between today's language shares and the window's pooled shares."""
    pooled: dict[str, float] = {}
    for mix in window:
        for lang, n in mix.items():
            pooled[lang] = pooled.get(lang, 0) + n
    total_today, total_past = sum(today.values()), sum(pooled.values())
    if not total_today or not total_past:
        return None
    langs = set(today) | set(pooled)
    return 0.5 * sum(abs(today.get(k, 0) / total_today - pooled.get(k, 0) / total_past) for k in langs)


def _fmt(x: float) -> str:
    x = float(x)
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
