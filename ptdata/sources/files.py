"""The `files` source: every file under landing/<source>/<date>/, format by extension, then by content.

Line formats (jsonl) give `source_uri` = `<relative path>:<1-based line>`; row formats (json arrays, parquet,
csv) `<relative path>#<0-based row>`; document formats (txt, html) the relative path. Compression (.gz, .zst)
is recognised by extension or magic bytes. A file that breaks part-way (a truncated gzip) keeps the records
read before the break and adds one `truncated_file` error for the rest.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from ptdata.core.config import FilesSource
from ptdata.sources.base import RawRecord, SourceContext, error_record
from ptdata.sources.html import extract_main_text

_EXT_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "txt",
    ".md": "txt",
    ".html": "html",
    ".htm": "html",
}
_COMPRESSED = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_GZIP_MAGIC, _ZSTD_MAGIC, _PARQUET_MAGIC = b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"PAR1"
_LIST_KEYS = ("data", "records", "rows", "items", "examples", "instances")
_BROKEN_STREAM = (EOFError, zlib.error, gzip.BadGzipFile, zstandard.ZstdError, OSError)


def list_files(folder: Path) -> list[Path]:
    """Every regular file below `folder`, in a total order (relative path), hidden files left out."""
    if not folder.is_dir():
        return []
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _compression(path: Path) -> str | None:
    comp = _COMPRESSED.get(path.suffix.lower())
    if comp:
        return comp
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head == _ZSTD_MAGIC:
        return "zstd"
    return None


def open_decompressed(path: Path) -> IO[bytes]:
    """A buffered binary stream of the file's decompressed bytes."""
    comp = _compression(path)
    if comp == "gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if comp == "zstd":
        raw = zstandard.ZstdDecompressor().stream_reader(path.open("rb"), read_across_frames=True, closefd=True)
        return io.BufferedReader(raw, buffer_size=1 << 20)  # type: ignore[arg-type]
    return path.open("rb", buffering=1 << 20)


def _sniff(head: bytes) -> str:
    s = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    if s[:1] == b"[":
        return "json"
    if s[:1] == b"{":
        first = s.split(b"\n", 1)[0]
        try:
            orjson.loads(first)
            return "jsonl"
        except orjson.JSONDecodeError:
            return "json"
    low = s[:512].lower()
    if low.startswith(b"<!doctype html") or b"<html" in low:
        return "html"
    return "txt"


def file_format(path: Path, configured: str = "auto") -> str:
    if configured != "auto":
        return configured
    name = path.name.lower()
    stem = Path(name[: -len(path.suffix)]) if path.suffix.lower() in _COMPRESSED else Path(name)
    fmt = _EXT_FORMATS.get(stem.suffix)
    if fmt:
        return fmt
    with open_decompressed(path) as f:
        return _sniff(f.read(4096))


def _json_error(line: bytes, uri: str, err: Exception) -> RawRecord:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as u:
        return error_record(uri, "invalid_utf8", f"byte {u.start}: {u.reason}", line)
    return error_record(uri, "invalid_json", str(err), line)


def _skip_rest_of_line(f: IO[bytes], chunk: int) -> int:
    skipped = 0
    while True:
        part = f.readline(chunk)
        skipped += len(part)
        if not part or part.endswith(b"\n"):
            return skipped


def read_jsonl(
    path: Path, rel: str, ctx: SourceContext, start: int = 0, end: int | None = None, first_line: int = 1
) -> Iterator[RawRecord]:
    """The records of a JSON-lines file, or of its whole lines in bytes [start, end) (an uncompressed file, see
    FilePart), the first of them line `first_line`."""
    cap = ctx.max_record_bytes
    with open_decompressed(path) as f:
        if start:
            f.seek(start)
        lineno, pos = first_line - 1, start
        try:
            while end is None or pos < end:
                line = f.readline(cap + 1)
                if not line:
                    break
                pos += len(line)
                lineno += 1
                uri = f"{rel}:{lineno}"
                if len(line) > cap and not line.endswith(b"\n"):
                    rest = _skip_rest_of_line(f, cap)
                    pos += rest
                    size = len(line) + rest
                    yield error_record(uri, "too_large", f"line of {size} bytes > max_record_bytes {cap}", line[:4096])
                    continue
                if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                if not line.strip():
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError as e:
                    yield _json_error(line.rstrip(b"\r\n"), uri, e)
                    continue
                yield RawRecord(source_uri=uri, payload=obj, raw=line, nbytes=len(line))
        except _BROKEN_STREAM as e:
            yield error_record(rel, "truncated_file", f"after line {lineno}: {e}")


def _line_ranges(path: Path, part_bytes: int) -> list[tuple[int, int, int]]:
    """(start, end, first line) of consecutive byte ranges of whole lines of an uncompressed file, each the first
    `part_bytes` after the last one and on to the end of the line they cut."""
    ranges, start, line = [], 0, 1
    with path.open("rb") as f:
        while chunk := f.read(part_bytes):
            end, lines = start + len(chunk), chunk.count(b"\n")
            while not chunk.endswith(b"\n") and (chunk := f.readline(1 << 20)):
                end += len(chunk)
                lines += chunk.endswith(b"\n")
            ranges.append((start, end, line))
            start, line = end, line + lines
    return ranges


def _records_of_json(value: Any) -> tuple[list[Any], bool]:
    """The records a whole-file JSON value holds, and whether they are rows (#i) of it."""
    if isinstance(value, list):
        return value, True
    if isinstance(value, dict):
        # only well-known envelope keys: a record's own lists (messages, conversations) must stay inside it
        for k in _LIST_KEYS:
            if isinstance(value.get(k), list):
                return value[k], True
    return [value], False


def read_json(path: Path, rel: str, ctx: SourceContext) -> Iterator[RawRecord]:
    with open_decompressed(path) as f:
        try:
            data = f.read()
        except _BROKEN_STREAM as e:
            yield error_record(rel, "truncated_file", str(e))
            return
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        if _sniff(data[:4096]) == "jsonl":  # JSON lines saved as .json
            yield from read_jsonl(path, rel, ctx)
        else:
            yield _json_error(data[:4096], rel, e)
        return
    records, rows = _records_of_json(value)
    for i, rec in enumerate(records):
        raw = orjson.dumps(rec)
        uri = f"{rel}#{i}" if rows else rel
        if len(raw) > ctx.max_record_bytes:
            yield error_record(uri, "too_large", f"record of {len(raw)} bytes", raw[:4096])
        else:
            yield RawRecord(source_uri=uri, payload=rec, raw=raw, nbytes=len(raw))


def _jsonish(v: Any) -> Any:
    """Cells holding JSON text (e.g. a messages column in a CSV) are parsed, so shapes see lists and objects."""
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return orjson.loads(v)
        except orjson.JSONDecodeError:
            return v
    return v


def read_parquet(path: Path, rel: str, ctx: SourceContext) -> Iterator[RawRecord]:
    row = 0
    try:
        if _compression(path) is None:
            pf = pq.ParquetFile(str(path))
        else:  # Parquet needs random access: a compressed file is read into memory whole
            with open_decompressed(path) as f:
                pf = pq.ParquetFile(pa.BufferReader(f.read()))
        for batch in pf.iter_batches(batch_size=1024):
            for rec in batch.to_pylist():
                rec = {k: _jsonish(v) for k, v in rec.items()}
                raw = orjson.dumps(rec, default=str)
                uri = f"{rel}#{row}"
                row += 1
                if len(raw) > ctx.max_record_bytes:
                    yield error_record(uri, "too_large", f"row of {len(raw)} bytes", raw[:4096])
                else:
                    yield RawRecord(source_uri=uri, payload=rec, raw=raw, nbytes=len(raw))
    except (pa.ArrowException, *_BROKEN_STREAM) as e:
        yield error_record(rel, "unreadable_file", f"parquet after row {row}: {e}")


def read_csv(path: Path, rel: str, ctx: SourceContext) -> Iterator[RawRecord]:
    delimiter = "\t" if ".tsv" in path.name.lower() else ","
    row = 0
    csv.field_size_limit(ctx.max_record_bytes)
    with open_decompressed(path) as f:
        text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")  # utf-8-sig drops a BOM
        reader = csv.reader(text, delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None:
                return
            for cells in reader:
                if not any(c.strip() for c in cells):
                    continue
                uri = f"{rel}#{row}"
                row += 1
                if len(cells) != len(header):
                    raw = delimiter.join(cells)
                    yield error_record(uri, "csv_row", f"{len(cells)} fields, the header has {len(header)}", raw)
                    continue
                rec = {k: _jsonish(v) for k, v in zip(header, cells, strict=True)}
                raw = orjson.dumps(rec)
                yield RawRecord(source_uri=uri, payload=rec, raw=raw, nbytes=len(raw))
        except UnicodeDecodeError as e:
            yield error_record(f"{rel}#{row}", "invalid_utf8", f"{e.reason} (the rest of the file is unreadable)")
        except csv.Error as e:
            yield error_record(f"{rel}#{row}", "csv_row", f"{e} (the rest of the file is unreadable)")
        except _BROKEN_STREAM as e:
            yield error_record(rel, "truncated_file", f"after row {row}: {e}")


def _read_document(path: Path, rel: str, ctx: SourceContext) -> bytes | RawRecord:
    """A whole-file document's bytes, or the error record that stands for it."""
    with open_decompressed(path) as f:
        try:
            data = f.read(ctx.max_record_bytes + 1)
        except _BROKEN_STREAM as e:
            return error_record(rel, "truncated_file", str(e))
    if len(data) > ctx.max_record_bytes:
        return error_record(rel, "too_large", f"document larger than max_record_bytes {ctx.max_record_bytes}")
    return data


def read_txt(path: Path, rel: str, ctx: SourceContext) -> Iterator[RawRecord]:
    data = _read_document(path, rel, ctx)
    if isinstance(data, RawRecord):
        yield data
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as u:
        yield error_record(rel, "invalid_utf8", f"byte {u.start}: {u.reason}", data[:4096])
        return
    yield RawRecord(source_uri=rel, payload={"text": text}, raw=data, nbytes=len(data))


def read_html(path: Path, rel: str, ctx: SourceContext) -> Iterator[RawRecord]:
    data = _read_document(path, rel, ctx)
    if isinstance(data, RawRecord):
        yield data
        return
    page = extract_main_text(data)
    if not page["text"]:
        yield error_record(rel, "no_text", "no main text extracted from the page", data[:4096])
        return
    yield RawRecord(source_uri=rel, payload={"text": page["text"], "title": page["title"]}, raw=data, nbytes=len(data))


_READERS = {
    "jsonl": read_jsonl,
    "json": read_json,
    "parquet": read_parquet,
    "csv": read_csv,
    "txt": read_txt,
    "html": read_html,
}


@dataclass(frozen=True)
class FilePart:
    """What one task reads of a landing file: all of it, or (an uncompressed JSON-lines file larger than a part)
    the whole lines in bytes [start, end), the first of them line `first_line`, so that `source_uri` numbers
    lines in the file whichever task reads them. `bounded`: its input is at most about a part's bytes."""

    path: Path
    rel: str
    size: int  # bytes of the file (a range: of the range)
    fmt: str | None  # None: the format could not be told, for the reason in `error`
    error: str | None = None
    start: int = 0
    end: int | None = None
    first_line: int = 1
    bounded: bool = False


def file_parts(source: FilesSource, ctx: SourceContext, part_bytes: int | None = None) -> list[FilePart]:
    """The partition's landing files in order, as whole files or, given `part_bytes`, JSON-lines files cut into
    parts of about that many bytes. Counts every file's size into ctx.bytes_read and notes the empty ones."""
    parts = []
    for path in list_files(ctx.landing_dir):
        rel = path.relative_to(ctx.landing_dir).as_posix()
        size = path.stat().st_size
        ctx.bytes_read += size
        if size == 0:
            ctx.notes.append(f"{rel}: empty file, no records")
            continue
        try:
            fmt = file_format(path, source.format)
        except _BROKEN_STREAM as e:
            parts.append(FilePart(path, rel, size, None, str(e)))
            continue
        plain = part_bytes is not None and _compression(path) is None
        if plain and fmt == "jsonl" and size > part_bytes:
            parts += [
                FilePart(path, rel, end - start, fmt, None, start, end, line, bounded=True)
                for start, end, line in _line_ranges(path, part_bytes)
            ]
        else:
            parts.append(FilePart(path, rel, size, fmt, bounded=plain and size <= part_bytes))
    return parts


def read_part(part: FilePart, ctx: SourceContext) -> Iterator[RawRecord]:
    if part.fmt is None:
        yield error_record(part.rel, "unreadable_file", part.error or "")
    elif part.end is not None:
        yield from read_jsonl(part.path, part.rel, ctx, part.start, part.end, part.first_line)
    else:
        yield from _READERS[part.fmt](part.path, part.rel, ctx)


def read_files(source: FilesSource, ctx: SourceContext) -> Iterator[RawRecord]:
    for part in file_parts(source, ctx):
        yield from read_part(part, ctx)
