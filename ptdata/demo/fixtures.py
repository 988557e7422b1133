"""The demo's fixture files: zstd-compressed JSON under fixtures/, one per generator module."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import zstandard

FIXTURES = Path(__file__).parent / "fixtures"
# "<fixture>/<bank>" of every bank the generator has read; the fixture test checks that none is left unread
READ: set[str] = set()

Msg = dict[str, Any]


class Bank(Mapping[str, Any]):
    """The banks of a fixture file by name (a bank that is a JSON object is a Bank too); reads are recorded in READ."""

    def __init__(self, path: str, data: dict[str, Any]) -> None:
        self.path, self._data = path, data

    def __getitem__(self, key: str) -> Any:
        path = f"{self.path}/{key}"
        READ.add(path)
        value = self._data[key]
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
