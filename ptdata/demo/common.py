"""What every part of the demo generator shares: seeded draws, formatting, and writing the landing files."""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import json
import math
import random
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import zstandard

from ptdata.demo.fixtures import fixture

F = fixture("common")
DEMO_DAYS: list[dt.date] = [dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)]

Msg = dict[str, Any]


@dataclass
class Task:
    """One user request with its answer, and follow-up exchanges that make sense after it."""

    user: str
    answer: str
    followups: list[tuple[str, str]] = field(default_factory=list)
    kind: str = "general"  # picks a fitting system prompt: code, math, writing or general


# --------------------------------------------------------------------------------------------------- draws


def rng_for(seed: int, *parts: object) -> random.Random:
    """An independent, reproducible stream per (seed, source, day, ...); str seeds are hashed with SHA-512."""
    return random.Random(":".join([str(seed), *map(str, parts)]))


def pick(rng: random.Random, seq: Sequence[Any]) -> Any:
    return seq[rng.randrange(len(seq))]


def some(rng: random.Random, seq: Sequence[Any], lo: int, hi: int) -> list[Any]:
    return rng.sample(list(seq), rng.randint(lo, min(hi, len(seq))))


def fill(rng: random.Random, templates: Sequence[str], /, **slots: Any) -> str:
    return pick(rng, templates).format(**slots)


def wording(rng: random.Random, template: str | Sequence[str], /, **slots: Any) -> str:
    """A template filled in; of a list of alternative wordings one is drawn (a single template costs no draw)."""
    return template.format(**slots) if isinstance(template, str) else fill(rng, template, **slots)


def lognorm_int(rng: random.Random, median: float, sigma: float, lo: int, hi: int) -> int:
    return max(lo, min(hi, round(rng.lognormvariate(math.log(median), sigma))))


def vary(rng: random.Random, text: str, table: Sequence[tuple[str, Sequence[str]]]) -> str:
    """Small natural paraphrases (per hour / an hour, in total / altogether) so that texts made from the same
    template do not share long word sequences."""
    for pattern, options in table:
        text = re.sub(pattern, lambda _m, o=options: pick(rng, o), text)
    return text


def shuffled(rng: random.Random, seq: Sequence[Any]) -> list[Any]:
    out = list(seq)
    rng.shuffle(out)
    return out


# --------------------------------------------------------------------------------------------------- formatting


def with_article(noun: str) -> str:
    return f"{'an' if noun[0].lower() in 'aeiou' else 'a'} {noun}"


def cap(s: str) -> str:
    """The first letter upper-cased, the rest left alone (unlike str.capitalize)."""
    return s[0].upper() + s[1:]


def fence(lang: str, code: str) -> str:
    return f"```{lang}\n{code}\n```"


def money(x: float, sym: str = "$") -> str:
    return f"{sym}{x:,.2f}" if x != int(x) else f"{sym}{int(x):,}"


def num(x: float) -> str:
    """A number as a person writes it: no trailing .0, at most two decimals."""
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}".rstrip("0")


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def jsonl(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=10).compress(data)


def mojibake(text: str) -> str:
    """UTF-8 bytes decoded as Windows-1252, the classic double-encoding accident ("café" -> "cafÃ©")."""
    return text.encode("utf-8").decode("cp1252", errors="replace")


def chat(user: str, assistant: str, system: str | None = None) -> list[Msg]:
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


# --------------------------------------------------------------------------------------------------- files


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
