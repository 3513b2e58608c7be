"""A perceptual hash of an image, for telling near-duplicates apart from new views.

dHash: a 9x8 greyscale thumbnail, one bit per horizontal neighbour comparison, 64 bits. It
survives re-encoding, resizing and brightness shifts, not crops or shears; two images are
near-duplicates when few bits differ (Hamming distance). Used by the dataset leak check and by
the review queue's diversity rule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

DHASH_METHOD = "dHash 64-bit (9x8 greyscale), Hamming distance"


def dhash64(path: Path) -> int:
    with Image.open(path) as im:
        # JPEG draft mode decodes at 1/2..1/8 scale: ~10x faster for a thumbnail this small.
        im.draft("L", (72, 64))
        grey = im.convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    pixels = np.asarray(grey, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()
