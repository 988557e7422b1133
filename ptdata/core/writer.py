"""Parquet writes whose encoding overlaps the work that makes the next rows: row groups of a bounded size, each
encoded on a thread while the next is made (gold's rows, silver's)."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq


class RowGroupWriter:
    """Tables appended to a Parquet writer in row groups of about `limit` Arrow bytes. A file under the limit is
    one row group, written by one call as a table built whole would be, so small partitions keep their bytes.

    A row group is encoded and compressed on a thread of its own (pyarrow lets go of the GIL) while the caller
    makes the next; one write at a time, in order, so the bytes are those of writing in line. Used as a context
    inside the writer's, so no write is left running when the file closes."""

    def __init__(self, writer: pq.ParquetWriter, schema: pa.Schema, limit: int) -> None:
        self.writer, self.schema, self.limit = writer, schema, limit
        self.pending: list[pa.Table] = []
        self.pending_bytes = 0
        self.written = False
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ptdata-write")
        self._writing: Future | None = None

    def __enter__(self) -> RowGroupWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.shutdown(wait=True)

    def add(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self.pending.append(table)
        self.pending_bytes += table.nbytes
        if self.pending_bytes >= self.limit:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            table = pa.concat_tables(self.pending).combine_chunks()
            self._wait()
            self._writing = self._thread.submit(self.writer.write_table, table)
            self.pending, self.pending_bytes, self.written = [], 0, True

    def _wait(self) -> None:
        if self._writing is not None:
            self._writing.result()
            self._writing = None

    def close(self) -> None:
        self.flush()
        self._wait()
        if not self.written:  # an empty partition is still one (empty) row group with the table's schema
            self.writer.write_table(self.schema.empty_table())
