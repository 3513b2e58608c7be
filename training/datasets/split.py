"""Train/val/test by a hash, so an image's split never depends on what else is in the set.

An image's position in [0, 1) is the top 53 bits of a sha256 read as a fraction: of the
image's bytes, or, when the source has a group rule and the file name matches it, of
"<source>/<group key>", so that a whole group of near-duplicates moves together. Test
takes the lowest positions, then val, then train: adding images never moves an existing
one, and changing the train/val fractions never moves a test image.
"""

from __future__ import annotations

import hashlib

from training.datasets.spec import SplitFractions, SplitName


def hash_position(digest_hex: str) -> float:
    """A sha256 hex digest -> a number in [0, 1)."""
    # 53 bits: exactly representable in a float, so the top value stays below 1.0.
    return (int(digest_hex[:16], 16) >> 11) / float(1 << 53)


def group_digest(source: str, group_key: str) -> str:
    return hashlib.sha256(f"{source}/{group_key}".encode()).hexdigest()


def split_for_position(position: float, fractions: SplitFractions) -> SplitName:
    if not 0.0 <= position < 1.0:
        raise ValueError(f"expected a position in [0, 1), got {position}")
    if position < fractions.test:
        return "test"
    if position < fractions.test + fractions.val:
        return "val"
    return "train"


def assign_split(content_sha256: str, fractions: SplitFractions, *, source: str,
                 group_key: str | None = None) -> SplitName:
    """The split of one image from its content hash, or from its group when it has one."""
    digest = group_digest(source, group_key) if group_key is not None else content_sha256
    return split_for_position(hash_position(digest), fractions)
