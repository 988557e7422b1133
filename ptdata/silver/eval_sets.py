"""Reading an eval set into (item_id, text) pairs for `decontam.EvalIndex`.

An eval set is a small local file named by the config; its parsing lives next to the index (decontam.py) so that
the `eval_index` asset stays thin. Formats: jsonl (.jsonl, .ndjson), json (a
list of objects, or an object of objects keyed by id) and parquet, each optionally compressed (.gz, .zst).
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import zstandard

# the fields an item's id is taken from, first present wins (HumanEval: task_id; MATH-500: unique_id); else its row
ID_FIELDS = ("id", "task_id", "item_id", "unique_id", "question_id", "problem_id", "uid")


def _read_bytes(path: Path) -> tuple[bytes, str]:
    """The file's bytes, decompressed, and the suffix naming its format (".jsonl" for "x.jsonl.gz")."""
    data = path.read_bytes()
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        data, suffixes = gzip.decompress(data), suffixes[:-1]
    elif suffixes and suffixes[-1] == ".zst":
        data, suffixes = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read(), suffixes[:-1]
    return data, suffixes[-1] if suffixes else ""


def _records(path: Path) -> list[tuple[str | None, dict[str, Any]]]:
    """(key, record) pairs; key is the object key of a json object-of-objects, else None."""
    data, fmt = _read_bytes(path)
    if fmt in (".jsonl", ".ndjson"):
        return [(None, orjson.loads(line)) for line in data.splitlines() if line.strip()]
    if fmt == ".json":
        doc = orjson.loads(data)
        if isinstance(doc, list):
            return [(None, rec) for rec in doc]
        if isinstance(doc, dict) and all(isinstance(v, dict) for v in doc.values()):
            return [(str(k), v) for k, v in doc.items()]
        raise ValueError(f"{path}: a json eval set must be a list of objects or an object of objects")
    if fmt == ".parquet":
        return [(None, rec) for rec in pq.read_table(io.BytesIO(data)).to_pylist()]
    raise ValueError(f"{path}: unknown eval set format {fmt!r}; expected .jsonl, .json or .parquet (.gz/.zst)")


def _field_text(value: Any) -> str:
    """A field's text: a string as is; a message list's contents, or a list of strings, one per line."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_field_text(v["content"] if isinstance(v, dict) and "content" in v else v) for v in value)
    return str(value)


def load_eval_items(path: str | Path, fields: Sequence[str]) -> list[tuple[str, str]]:
    """(item_id, text) for every record of an eval set; text is the record's `fields` joined by newlines. A record
    with none of the fields is an error: an index silently missing items would find nothing."""
    path = Path(path)
    items = []
    for row, (key, rec) in enumerate(_records(path)):
        if not isinstance(rec, dict):
            raise ValueError(f"{path}: record {row} is not an object")
        present = [f for f in fields if f in rec]
        if not present:
            raise ValueError(f"{path}: record {row} has none of the fields {list(fields)}")
        item_id = key if key is not None else next((str(rec[f]) for f in ID_FIELDS if rec.get(f) is not None), str(row))
        items.append((item_id, "\n".join(_field_text(rec[f]) for f in present)))
    return items
