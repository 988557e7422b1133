"""What every source yields: raw records with their location, or an error in place of a record."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SourceUnavailable(RuntimeError):
    """A source could not be reached for long enough that reading on would publish a partial partition: the
    network, a timeout, HTTP 429 or 5xx once the reader's own retries are spent, a database server refusing
    connections. The bronze step fails and Dagster retries it later (automation.source_retries). Errors that
    the same request would meet again (a 404, a malformed record) are quarantined instead."""


@dataclass(slots=True)
class RawRecord:
    """One input record before shape mapping.

    `payload` is the parsed value (a dict when the input is well formed); `error` is set instead when the
    record could not be read, as "<reason>: <detail>" (reason in [a-z_]+). `raw` keeps the input text or bytes
    for the quarantine table. `nbytes` is the size the record occupied in its input.
    """

    source_uri: str
    payload: Any = None
    raw: bytes | str | None = None
    error: str | None = None
    nbytes: int = 0


@dataclass
class SourceContext:
    """What a reader needs besides its config: where the partition's files are and the window."""

    date: dt.date
    landing_dir: Path  # $PTDATA_HOME/landing/<source>/<date>/
    config_dir: Path  # relative paths in the config are relative to this folder
    max_record_bytes: int = 4 * 1024 * 1024
    lake_root: str = ""  # the lake, for the sources that read it (rollouts)
    notes: list[str] = field(default_factory=list)  # things worth a line in the run's metadata
    bytes_read: int = 0  # bytes taken from storage (compressed size for files); readers that know it add it

    @property
    def start(self) -> str:
        return self.date.isoformat()

    @property
    def end(self) -> str:
        return (self.date + dt.timedelta(days=1)).isoformat()


def error_record(source_uri: str, reason: str, detail: str, raw: bytes | str | None = None) -> RawRecord:
    return RawRecord(source_uri=source_uri, raw=raw, error=f"{reason}: {detail}", nbytes=len(raw or b""))
