"""What every part of the demo generator shares: the fixture files, seeded draws and formatting."""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import zstandard

FIXTURES = Path(__file__).parent / "fixtures"
# "<fixture>/<bank>" of every bank the generator has read; the fixture test checks that none is left unread
READ: set[str] = set()


class Bank(Mapping[str, Any]):
    """The banks of a fixture file by name (a bank that is a JSON object is a Bank too); reads are recorded in READ."""

    def __init__(self, path: str, data: dict[str, Any]) -> None:
        self.path, self._data = path, data

    def __getitem__(self, key: str) -> Any:
        value, path = self._data[key], f"{self.path}/{key}"
        READ.add(path)  # only banks that exist: a lookup that falls through to another bank records nothing
        return Bank(path, value) if isinstance(value, dict) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@cache
def fixture(name: str) -> Bank:
    """fixtures/<name>.json.zst, zstd-compressed JSON (edit it with `zstd -d` and recompress with `zstd -19`)."""
    data = zstandard.ZstdDecompressor().decompressobj().decompress((FIXTURES / f"{name}.json.zst").read_bytes())
    return Bank(name, json.loads(data))


F = fixture("common")  # the banks several generator modules use

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


def mojibake(text: str) -> str:
    """UTF-8 bytes decoded as Windows-1252, the classic double-encoding accident ("café" -> "cafÃ©")."""
    return text.encode("utf-8").decode("cp1252", errors="replace")


def chat(user: str, assistant: str) -> list[Msg]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
