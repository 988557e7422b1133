"""Packing sequences into fixed-length rows. Pure.

`pack_best_fit`: best-fit decreasing. Sequences in decreasing length (ties: their key, so the result is a
function of the set of sequences), each into the open row with the least room that still fits it, else a new
row. The rows with room r are kept per r, and a sorted list of the r that have rows finds the least r ≥ a
length by bisection, so a million sequences pack in seconds. Best-fit decreasing fills rows to ≥ 99% on realistic
length distributions where padding each sequence to the row length wastes about half.

A packed row keeps its sequences apart for the trainer: `position_ids` restart at 0 where each sequence
starts, `seq_lens` gives the boundaries (cumulative sums are flash-attention's cu_seqlens).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Sequence

import numpy as np


def best_fit_plan(
    lengths: Sequence[int] | np.ndarray, keys: Sequence[str] | np.ndarray, capacity: int
) -> tuple[np.ndarray, np.ndarray]:
    """Where best-fit decreasing (see the module docstring) puts each sequence: its row, rows numbered in the
    order they were opened, and its position in that row, in the order sequences were placed. Every length must
    be in [1, capacity]. `keys` break ties between equal lengths: strings, or any array numpy sorts in the same
    order (fixed-width bytes, as UTF-8 keeps the order of code points, cost a quarter of numpy's str)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    keys = np.asarray(keys)
    if len(keys) != len(lengths):
        raise ValueError(f"{len(lengths)} lengths but {len(keys)} keys")
    if len(lengths) and (lengths.min() < 1 or lengths.max() > capacity):
        raise ValueError(f"sequence lengths must be in [1, {capacity}]")
    # a stable sort on fixed-width arrays: a few bytes a sequence where sorted() on (length, key) tuples takes
    # hundreds, and the same order (ties on both fall back to the input order in either)
    order = np.lexsort((keys, -lengths)) if len(lengths) else np.zeros(0, dtype=np.int64)
    # the rows with room r, per r, and the sorted distinct r that have any: bisect finds the least r >= a length
    # in C, and the list changes only when a room value gains its first row or loses its last (at most
    # capacity values, so an insert or a removal moves a few KiB)
    rows_with_room: list[list[int]] = [[] for _ in range(capacity + 1)]
    rooms: list[int] = []
    room: list[int] = []
    placed: list[int] = []
    row_of = np.empty(len(lengths), dtype=np.int32)
    pos_of = np.empty(len(lengths), dtype=np.int32)
    for i, n in zip(order.tolist(), lengths[order].tolist(), strict=True):
        k = bisect_left(rooms, n)
        if k == len(rooms):
            row = len(room)
            room.append(capacity)
            placed.append(0)
        else:
            bucket = rows_with_room[rooms[k]]
            row = bucket.pop()
            if not bucket:
                del rooms[k]
        row_of[i] = row
        pos_of[i] = placed[row]
        placed[row] += 1
        left = room[row] = room[row] - n
        if left:
            bucket = rows_with_room[left]
            if not bucket:
                insort(rooms, left)
            bucket.append(row)
    return row_of, pos_of


def pack_best_fit(
    lengths: Sequence[int] | np.ndarray, keys: Sequence[str] | np.ndarray, capacity: int
) -> list[list[int]]:
    """Rows of sequence indices, by best-fit decreasing (see `best_fit_plan`); rows are listed in the order they
    were opened, sequences in the order they were placed."""
    row_of, pos_of = best_fit_plan(lengths, keys, capacity)
    order = np.lexsort((pos_of, row_of))
    if not len(order):
        return []
    return [part.tolist() for part in np.split(order, np.flatnonzero(np.diff(row_of[order])) + 1)]


def pack_first_fit(lengths: Sequence[int] | np.ndarray, capacity: int) -> list[list[int]]:
    """First-fit in arrival order, each sequence into the first open row it fits: the benchmark's comparison.
    A max segment tree over the rows' room finds that row in O(log rows)."""
    lengths = np.asarray(lengths, dtype=np.int64).tolist()
    size = 1
    while size < max(len(lengths), 1):
        size *= 2
    tree = [0] * (2 * size)  # leaves: room of row k (0 for rows not opened yet, which come after the open ones)
    rows: list[list[int]] = []
    for i, n in enumerate(lengths):
        if tree[1] >= n:
            node = 1
            while node < size:
                node = 2 * node if tree[2 * node] >= n else 2 * node + 1
            row = node - size
        else:
            row = len(rows)
            rows.append([])
            node = size + row
            tree[node] = capacity
        rows[row].append(i)
        tree[node] -= n
        node //= 2
        while node:
            tree[node] = max(tree[2 * node], tree[2 * node + 1])
            node //= 2
    return rows


def position_ids(seq_lens: Sequence[int]) -> np.ndarray:
    """0, 1, ... restarting at each sequence of a packed row."""
    lens = np.asarray(seq_lens, dtype=np.int64)
    starts = np.repeat(np.cumsum(lens) - lens, lens)
    return (np.arange(int(lens.sum())) - starts).astype(np.int32)


def truncate_sequence(
    ids: np.ndarray, mask: np.ndarray, capacity: int, keep: str, end_id: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """An over-long sequence cut to `capacity` tokens so that what it trains survives, or None when nothing
    trained would be left. keep="last" (conversations): the last `capacity` tokens, so the final assistant turn
    and its end-of-turn token stay and only the oldest context goes. keep="first" (documents): the first
    `capacity - 1` tokens and the end token `end_id`, all trained."""
    if keep == "first":
        return (
            np.concatenate([ids[: capacity - 1], np.asarray([end_id], dtype=ids.dtype)]),
            np.ones(capacity, dtype=mask.dtype),
        )
    ids, mask = ids[-capacity:], mask[-capacity:]
    return (ids, mask) if mask.any() else None
