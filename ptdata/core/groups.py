"""Consecutive items grouped by size: parts of landing files into executor tasks, spilled sequences into packing's
writes, row groups into one validation call. Each group costs a fixed amount whatever its size, and its size
bounds the memory it takes (ARCHITECTURE.md, principle 2)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def by_size(items: Iterable[T], size: Callable[[T], int], limit: int) -> Iterator[list[T]]:
    """The items in order, in groups whose sizes add up to at most `limit`; an item larger than that is a group
    of its own."""
    group: list[T] = []
    total = 0
    for item in items:
        n = size(item)
        if group and total + n > limit:
            yield group
            group, total = [], 0
        group.append(item)
        total += n
    if group:
        yield group
