"""Clusters of verified pairs with a deterministic survivor, exact duplicates, and the resolution of one
partition's duplicates against everything it can reach (step 7)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import polars as pl

from ptdata.silver.dedup.candidates import BUCKET_LINKS, candidate_pairs, order_columns, verify_pairs


def clusters(pairs: pl.DataFrame, order_key: pl.DataFrame) -> pl.DataFrame:
    """Connected components of the pairs (columns a, b): every record in a pair, with `survivor`, the minimal
    (date, record_id) of its component (`order_key` has record_id and, when ordering by date, date).

    Union-find, vectorized: records are numbered in survivor order, every union hooks the larger root under the
    smaller one, and paths are compressed by pointer jumping until each edge joins two equal roots. Roots are
    therefore component minima, and the result depends only on the sets of records and pairs."""
    order = order_columns(order_key)
    nodes = (
        pl.concat([pairs.select(record_id="a"), pairs.select(record_id="b")])
        .unique()
        .join(order_key.select(order), on="record_id", how="left")
    )
    if "date" in order and nodes["date"].null_count():
        missing = nodes.filter(pl.col("date").is_null())["record_id"].head(3).to_list()
        raise ValueError(f"order_key has no date for records {missing}")
    nodes = nodes.sort(order).with_row_index("i")
    index = nodes.select("record_id", pl.col("i").cast(pl.Int64))
    ia, ib = (
        pairs.select(record_id=side).join(index, on="record_id", how="left", maintain_order="left")["i"].to_numpy()
        for side in ("a", "b")
    )
    parent = np.arange(nodes.height)
    while True:
        ra, rb = parent[ia], parent[ib]
        differ = ra != rb
        if not differ.any():
            break
        np.minimum.at(parent, np.maximum(ra[differ], rb[differ]), np.minimum(ra[differ], rb[differ]))
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    ids = nodes["record_id"]
    return pl.DataFrame({"record_id": ids, "survivor": ids.gather(parent)}).sort("record_id")


def exact_duplicates(records: pl.DataFrame, hash_col: str = "content_hash") -> pl.DataFrame:
    """Records whose `hash_col` equals an earlier record's, as record_id → dup_of (the earliest (date, record_id)
    with that hash). Records with a null hash are never duplicates."""
    order = order_columns(records)
    return (
        records.filter(pl.col(hash_col).is_not_null())
        .sort([hash_col, *order])
        .with_columns(dup_of=pl.col("record_id").first().over(hash_col))
        .filter(pl.col("record_id") != pl.col("dup_of"))
        .select("record_id", "dup_of")
        .sort("record_id")
    )


def resolve_duplicates(
    day: pl.DataFrame,
    reps: pl.DataFrame,
    shared_keys: pl.DataFrame,
    shingles_of: Callable[[list[str]], Mapping[str, np.ndarray]],
    threshold: float,
    links: int = BUCKET_LINKS,
) -> tuple[pl.DataFrame, int, int]:
    """Which of a partition's records are duplicates, and of which kept record, over every partition up to it.

    Only eligible records take part (they passed the quality rules and are not contaminated); the caller
    rejects the others first.
    - `day`: record_id, exact_key of the partition's eligible records.
    - `reps`: exact_key, rep_id: the earliest eligible (date, record_id) with each of the day's exact keys, over
      every partition up to the day's (the day's own records included).
    - `shared_keys`: record_id, date, band, key: the band keys that two or more eligible exact representatives
      up to the day share (a key nobody shares gives no candidate).
    - `shingles_of(ids)`: the distinct shingle hashes of each record asked for.

    A representative's near-dup cluster is its connected component in the graph of verified pairs (exact
    Jaccard ≥ threshold) over every representative up to the day, and its survivor the component's minimal
    (date, record_id). Only the candidate components that hold one of the day's representatives are verified,
    which is exact: a verified component lies inside a candidate component. Candidate pairs among records up to
    a date are the same whether computed then or later (buckets are ordered by (date, record_id) and later
    members only link back), so a survivor stays the minimum of its component in its own partition: it is
    kept there, and `dup_of` always names a kept record.

    Returns record_id, reason (exact_dup or near_dup), dup_of, detail for every duplicate among `day` (a record
    not in it is kept), sorted by record_id; and the number of candidate and verified pairs in the components
    looked at.
    """
    day = day.join(reps, on="exact_key", how="left")
    if day["rep_id"].null_count():
        missing = day.filter(pl.col("rep_id").is_null())["record_id"].head(3).to_list()
        raise ValueError(f"no exact-key representative for records {missing}")
    survivors = pl.DataFrame(schema={"record_id": pl.String, "survivor": pl.String})
    partner = pl.DataFrame(schema={"record_id": pl.String, "partner": pl.String, "jaccard": pl.Float64})
    candidates = verified_count = 0
    pairs = candidate_pairs(shared_keys, links)
    if pairs.height:
        order_key = shared_keys.select("record_id", "date").unique()
        component = clusters(pairs, order_key)
        wanted = component.join(day.select(record_id="rep_id").unique(), on="record_id", how="semi")
        members = component.join(wanted.select("survivor").unique(), on="survivor", how="semi")["record_id"]
        edges = pairs.filter(pl.col("a").is_in(members.implode()))
        candidates = edges.height
        verified = verify_pairs(edges, shingles_of(members.to_list()), threshold)
        verified_count = verified.height
        if verified.height:
            survivors = clusters(verified, order_key)
            both = pl.concat(
                [
                    verified.select(record_id="b", partner="a", jaccard="jaccard"),
                    verified.select(record_id="a", partner="b", jaccard="jaccard"),
                ]
            )
            partner = both.sort(["record_id", "jaccard", "partner"], descending=[False, True, False]).unique(
                "record_id", keep="first"
            )
    # only the duplicates go on: a copy of another exact key's representative, or a record whose representative
    # lost its cluster (most of a partition is neither, and at a million records its strings would be most of
    # the memory)
    lost = survivors.filter(pl.col("record_id") != pl.col("survivor")).rename({"record_id": "rep_id"})
    dups = day.filter((pl.col("record_id") != pl.col("rep_id")) | pl.col("rep_id").is_in(lost["rep_id"].implode()))
    rep_survivor = (
        dups.select("rep_id")
        .unique()
        .join(lost, on="rep_id", how="left")
        .with_columns(survivor=pl.coalesce("survivor", "rep_id"))
    )
    out = dups.join(rep_survivor, on="rep_id", how="left").join(partner, on="record_id", how="left")
    is_exact = pl.col("record_id") != pl.col("rep_id")
    is_near = pl.col("record_id") != pl.col("survivor")
    return (
        out.select(
            "record_id",
            reason=pl.when(is_exact).then(pl.lit("exact_dup")).when(is_near).then(pl.lit("near_dup")),
            dup_of=pl.when(is_exact | is_near).then(pl.col("survivor")),
            detail=pl.when(is_exact)
            .then(pl.format("same normalized content as {}", "rep_id"))
            .when(is_near)
            .then(pl.format("jaccard {} with {}", pl.col("jaccard").round(3), "partner")),
        ).sort("record_id"),
        candidates,
        verified_count,
    )
