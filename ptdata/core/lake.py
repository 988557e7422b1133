"""The lake: partition paths, staging, atomic publish and data versions, through fsspec.

A partition of a table is one file, `<lake>/<layer>/<table>/date=D[/regime=R]/part-0.parquet`. It is written
to `<lake>/_staging/<run>/...`, audited there, and published by replacing the one live file: a rename on a
local disk (atomic), a single-object PUT on an object store (atomic per object). So a reader sees the old
file or the new one, never a mix. A failed audit leaves the staged file for inspection; a published one leaves no empty folders behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

PART_FILE = "part-0.parquet"
# fixed writer options: byte-identical output for identical input
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "use_dictionary": True, "write_statistics": True}


@dataclass(frozen=True)
class TablePartition:
    layer: str
    table: str
    date: dt.date | None = None
    regime: str | None = None

    @property
    def relpath(self) -> str:
        parts = [self.layer, self.table]
        if self.date is not None:
            parts.append(f"date={self.date.isoformat()}")
        if self.regime is not None:
            parts.append(f"regime={self.regime}")
        return "/".join(parts)


class Lake:
    def __init__(self, root: str) -> None:
        self.fs, path = fsspec.core.url_to_fs(root)
        self.root = path.rstrip("/")
        self.url = root.rstrip("/")
        self.local = isinstance(self.fs, LocalFileSystem)
        # Arrow's own filesystem objects, not Python file handles: pyarrow's reader threads on a Python file
        # object abort the interpreter at exit ("terminate called without an active exception")
        self.arrow_fs = pafs.LocalFileSystem() if self.local else pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))

    def path(self, part: TablePartition, name: str = PART_FILE) -> str:
        """The live file `name` of a partition (its Parquet file unless named otherwise)."""
        return f"{self.root}/{part.relpath}/{name}"

    def staged_path(self, part: TablePartition, stage_id: str, name: str = PART_FILE) -> str:
        """Where a writer stages a partition. `stage_id` names the writer (run and asset): writers that run at
        once never share a staging folder, so one cleaning up cannot pull a folder from under another."""
        return f"{self.staging(stage_id)}/{part.relpath}/{name}"

    def staging(self, stage_id: str, url: bool = False) -> str:
        """The staging folder of one writer (see staged_path); as a URL for metadata with `url`."""
        return f"{self.url if url else self.root}/_staging/{stage_id}"

    def exists(self, part: TablePartition, name: str = PART_FILE) -> bool:
        return self.fs.exists(self.path(part, name))

    def write_bytes(self, path: str, data: bytes) -> None:
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(path, "wb") as f:
            f.write(data)

    def read_bytes(self, path: str) -> bytes:
        with self.open_read(path) as f:
            return f.read()

    def open_read(self, path: str):  # noqa: ANN201 - an fsspec file object
        return self.fs.open(path, "rb")

    def parquet_writer(self, path: str, schema: pa.Schema) -> pq.ParquetWriter:
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        return pq.ParquetWriter(path, schema, filesystem=self.arrow_fs, **PARQUET_OPTIONS)

    def parquet_file(self, path: str) -> pq.ParquetFile:
        return pq.ParquetFile(path, filesystem=self.arrow_fs)

    def read_table(self, path: str, columns: list[str] | None = None, filters: list | None = None) -> pa.Table:
        return pq.read_table(path, columns=columns, filters=filters, filesystem=self.arrow_fs)

    @contextlib.contextmanager
    def duckdb(self, memory_limit: str = "1GB", threads: int = 2) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection that reads this lake's files, under a memory limit above which it spills to a
        temporary folder: queries over every partition stay bounded in memory whatever the history's size."""
        with tempfile.TemporaryDirectory(prefix="ptdata-duckdb-") as spill, duckdb.connect() as con:
            con.execute(f"SET memory_limit = '{memory_limit}'; SET temp_directory = '{spill}'; SET threads = {threads}")
            if not self.local:
                con.register_filesystem(self.fs)
            yield con

    def publish(self, staged: str, part: TablePartition, name: str = PART_FILE) -> str:
        """Replace the live partition's file by the staged one, atomically; returns the live path."""
        final = self.path(part, name)
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        if self.local:
            os.replace(staged, final)
        else:
            self.fs.mv(staged, final)
        self.remove_empty_dirs(staged.rsplit("/", 1)[0])
        return final

    def publish_folder(self, staged: str, final: str) -> None:
        """Swap a staged folder (a release) in: the old one is moved aside first, then removed. A swap that was
        killed part-way is finished first: with the new folder in place, what was set aside is removed; with
        none in place (killed between the two moves), the one set aside is the live folder and goes back."""
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        aside = f"{final}.replaced"
        self._recover_swap(final, aside)
        if self.fs.exists(final):
            self.fs.mv(final, aside, recursive=True) if not self.local else os.replace(final, aside)
        if self.local:
            os.replace(staged, final)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            self.fs.mv(staged, final, recursive=True)
            if self.fs.exists(aside):
                self.fs.rm(aside, recursive=True)
        self.remove_empty_dirs(staged.rsplit("/", 1)[0])

    def _recover_swap(self, final: str, aside: str) -> None:
        if not self.fs.exists(aside):
            return
        if self.fs.exists(final):
            if self.local:
                shutil.rmtree(aside)
            else:
                self.fs.rm(aside, recursive=True)
        elif self.local:
            os.replace(aside, final)
        else:
            self.fs.mv(aside, final, recursive=True)

    def discard_staged(self, stage_id: str, dates: Sequence[dt.date] | None) -> list[str]:
        """Remove what earlier runs of the same writer left staged for `dates` (all of it when None): files of a
        run killed mid-way, or kept by a failed audit, which the writer holding `stage_id` now supersedes.
        Stage ids are `<run id>-<writer>`; the caller must hold the writer's partition locks. Returns the removed."""
        writer = stage_id.split("-", 5)[-1]
        staging = f"{self.root}/_staging"
        if not self.fs.exists(staging):
            return []
        names = {f"date={d.isoformat()}" for d in dates} if dates is not None else None
        removed = []
        for folder in self.fs.ls(staging, detail=False):
            name = folder.rstrip("/").rsplit("/", 1)[-1]
            if name == stage_id or name.split("-", 5)[-1] != writer:
                continue
            if names is None:
                targets = [folder]
            else:
                found = self.fs.find(folder, withdirs=True, detail=True)
                targets = [
                    p for p, info in found.items() if info["type"] == "directory" and p.rsplit("/", 1)[-1] in names
                ]
            for target in targets:
                self.fs.rm(target, recursive=True)
                removed.append(target)
                self.remove_empty_dirs(target.rsplit("/", 1)[0])
        return removed

    def remove_empty_dirs(self, folder: str) -> None:
        """Remove `folder` and its parents up to the staging root while they are empty."""
        stop = f"{self.root}/_staging"
        while folder.startswith(stop) and folder != stop:
            try:
                if self.fs.ls(folder):
                    return
                self.fs.rmdir(folder)
            except (FileNotFoundError, OSError):
                return
            folder = folder.rsplit("/", 1)[0]

    def data_version(self, path: str) -> str:
        """The data version of a partition: the SHA-256 of its file's bytes."""
        h = hashlib.sha256()
        with self.open_read(path) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()


def partition_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every daily partition from `start` to `end`, both included."""
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def parquet_list(paths: Sequence[str]) -> str:
    """A SQL list literal of file paths, for DuckDB's read_parquet."""
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"
