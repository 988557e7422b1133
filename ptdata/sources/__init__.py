"""Source readers, one module per kind; `read_source` picks the reader of a source's kind."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import import_module

from ptdata.core.config import SourceConfig
from ptdata.sources.base import RawRecord, SourceContext, SourceUnavailable

_READERS = {
    "files": ("ptdata.sources.files", "read_files"),
    "http": ("ptdata.sources.http", "read_http"),
    "web": ("ptdata.sources.web", "read_web"),
    "sql": ("ptdata.sources.sql", "read_sql"),
    "rollouts": ("ptdata.sources.rollouts", "read_rollouts"),
}


def read_source(source: SourceConfig, ctx: SourceContext) -> Iterator[RawRecord]:
    """The raw records of one source for one partition, in a deterministic order."""
    module, name = _READERS[source.kind]
    # imported on use: a files-only pipeline need not load the HTTP and SQL client stacks
    reader = getattr(import_module(module), name)
    return reader(source, ctx)


__all__ = ["RawRecord", "SourceContext", "SourceUnavailable", "read_source"]
