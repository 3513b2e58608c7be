"""Count visually near-identical image pairs that sit in different splits (a leak check).

Each image gets a 64-bit difference hash (dHash: 9x8 greyscale thumbnail, one bit per
horizontal neighbour comparison); it survives re-encoding, resizing and brightness shifts,
not crops or shears. Pairs within `max_hamming` bits are counted per split pair. This is
a measurement for the dataset card, not a split rule: grouping by visual similarity would
make an image's split depend on the other images in the set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np

from vision.image_hash import DHASH_METHOD, dhash64

__all__ = ["DHASH_METHOD", "cross_split_pairs", "dhash64", "near_duplicate_report"]


def _close_matrix_counts(a: np.ndarray, b: np.ndarray, max_hamming: int, chunk: int = 1024
                         ) -> tuple[int, int]:
    """(close pairs, rows of `a` with at least one close row in `b`)."""
    pairs = rows = 0
    for start in range(0, len(a), chunk):
        close = np.bitwise_count(np.bitwise_xor(a[start:start + chunk, None], b[None, :])) <= max_hamming
        pairs += int(close.sum())
        rows += int(close.any(axis=1).sum())
    return pairs, rows


def cross_split_pairs(paths_by_split: Mapping[str, Sequence[Path]], max_hamming: int = 4) -> dict[str, int]:
    """Close pairs for every pair of splits ("test~train": n, ...), and how many test and val
    images have a close image in train ("test_with_train_duplicate": n, ...)."""
    hashes = {split: np.array([dhash64(p) for p in paths], dtype=np.uint64)
              for split, paths in paths_by_split.items()}
    empty = np.empty(0, np.uint64)
    counts: dict[str, int] = {}
    for first, second in combinations(("test", "train", "val"), 2):
        pairs, _ = _close_matrix_counts(hashes.get(first, empty), hashes.get(second, empty), max_hamming)
        counts[f"{first}~{second}"] = pairs
    for split in ("test", "val"):
        _, rows = _close_matrix_counts(hashes.get(split, empty), hashes.get("train", empty), max_hamming)
        counts[f"{split}_with_train_duplicate"] = rows
        counts[f"{split}_images"] = len(hashes.get(split, empty))
    return counts


def near_duplicate_report(paths: Mapping[str, Mapping[str, Sequence[Path]]], max_hamming: int = 4
                          ) -> dict[str, object]:
    """Per source (pairs across sources are not looked for): cross-split close pairs."""
    return {"method": f"{DHASH_METHOD} <= {max_hamming}", "max_hamming": max_hamming,
            "pairs": {source: cross_split_pairs(by_split, max_hamming)
                      for source, by_split in sorted(paths.items())}}
