"""Writing the landing zone: the demo days, record files with planted lines, compression, day folders."""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import json
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import zstandard

DEMO_DAYS: list[dt.date] = [dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)]


def jsonl(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=10).compress(data)


class Copy(NamedTuple):
    """A planted exact duplicate: the content of the record at (day index, file, 1-based line), with a new id."""

    day: int
    file: str
    line: int


def place(normal: list[Any], planted: Mapping[int, Any]) -> list[Any]:
    """The file's lines: planted[k] lands on 1-based line k, the normal records fill the other lines in order."""
    it = iter(normal)
    return [planted[i] if i in planted else next(it) for i in range(1, len(normal) + len(planted) + 1)]


def resolve(files: dict[tuple[int, str], list[Any]]) -> None:
    """Replace every Copy by a deep copy of the record it points at."""
    for lines in files.values():
        for i, slot in enumerate(lines):
            if isinstance(slot, Copy):
                ref = files[(slot.day, slot.file)][slot.line - 1]
                assert isinstance(ref, dict), f"planted copy points at a non-record: {slot}"
                lines[i] = json.loads(json.dumps(ref))


def ids(prefix: str) -> Iterator[str]:
    """prefix00001, prefix00002, ...: record ids, numbered across all files of a source's day."""
    return (f"{prefix}{n:05d}" for n in itertools.count(1))


def serialize(lines: list[Any], ids: Iterator[str]) -> tuple[bytes, int]:
    """JSON lines with fresh ids; bytes slots are written as they are (malformed input). Returns (data, records)."""
    out = [slot if isinstance(slot, bytes) else jsonl({"id": next(ids), **slot}) for slot in lines]
    return b"".join(line + b"\n" for line in out), sum(1 for line in out if line.strip())


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def day_dirs(home: Path, source: str) -> list[Path]:
    """The source's day folders under home/landing, emptied (a rerun replaces them and nothing else)."""
    dirs = [home / "landing" / source / d.isoformat() for d in DEMO_DAYS]
    for d in dirs:
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    return dirs
