"""Tiled inference for images much larger than the network input (drone photos, orthomosaics).

`tile_windows` cuts an image into overlapping windows that cover it exactly: the last row
and column are snapped to the image edge, so no window reaches outside the image and no
padding is needed. `TileWindow.crop` returns a view; pixels are copied only by letterbox.

`merge_tile_detections` shifts each tile's boxes into image coordinates and removes the
duplicates that overlapping tiles produce:

1. Seam merge. An object cut by a seam shows up as two (or more) partial boxes, one per
   tile, each truncated at its tile's inner edge. Plain NMS keeps both because their IoU is
   small. Like SAHI's GREEDYNMM we merge such boxes into their union, but we compare them
   only where both tiles saw the same pixels: each box is clipped to the two tiles' shared
   strip and the clipped parts must overlap (IoU >= match_threshold). Two views of one
   object agree there; two different objects rarely do, so a small object beside a big one
   is not swallowed (as IoS-over-whole-boxes would). At least one of the pair must touch
   an inner tile edge, so untruncated duplicates are left to step 2. Matches are joined
   transitively, so an object larger than a tile, cut by several seams, comes out whole.
2. NMS (class-aware unless class_agnostic) removes objects seen whole in two tiles.

Whether to tile at all depends on what the image is (`SourceKind`): a citizen's phone
photo shows a garbage pile close up, and tiles would cut it into pieces; a drone photo
shows small things from far away, which shrink to nothing in one network input. The rule
per kind is a factor: tile when the longer side exceeds factor x the model input
(`exceeds_input`); no factor means never. The kind comes with the image from the source
reader (`vision.image_io.LoadedImage.kind`: DJI XMP makes a drone photo). The factors
themselves are configuration (vision.pipeline.TilingConfig).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vision.detections import Detections
from vision.postprocess import nms


@dataclass(frozen=True)
class TileWindow:
    """A window of the source image in pixels: columns x..x+width, rows y..y+height."""

    x: int
    y: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.x < 0 or self.y < 0:
            raise ValueError(f"expected a window inside the image (x, y >= 0), got ({self.x}, {self.y})")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"expected a window of at least 1x1 pixels, got {self.width}x{self.height}")

    @property
    def x2(self) -> int:
        return self.x + self.width

    @property
    def y2(self) -> int:
        return self.y + self.height

    @property
    def xyxy(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.x2, self.y2)

    def crop(self, image: np.ndarray) -> np.ndarray:
        """This window of an HxW(xC) image, as a view (no copy)."""
        height, width = image.shape[:2]
        if self.x2 > width or self.y2 > height:
            raise ValueError(f"expected an image of at least {self.x2}x{self.y2} for window "
                             f"{self.xyxy}, got {width}x{height}")
        return image[self.y:self.y2, self.x:self.x2]


def _axis_starts(length: int, tile: int, overlap_px: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - overlap_px
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)  # snap the last tile to the edge instead of padding
    return starts


def tile_windows(resolution_wh: tuple[int, int], tile_size: int | tuple[int, int],
                 overlap: float = 0.2) -> list[TileWindow]:
    """Windows of `tile_size` (w, h) covering an image of `resolution_wh`, row by row.

    `overlap` is the fraction of the tile shared with its neighbour (0 <= overlap < 1);
    the last row and column overlap more so that they end at the image edge. An image
    smaller than a tile along an axis gets one window spanning that axis.
    """
    width, height = (int(v) for v in resolution_wh)
    if width < 1 or height < 1:
        raise ValueError(f"expected a resolution of at least 1x1, got {resolution_wh}")
    tile_w, tile_h = (tile_size, tile_size) if isinstance(tile_size, int) else tile_size
    if tile_w < 1 or tile_h < 1:
        raise ValueError(f"expected a tile size of at least 1 pixel, got {tile_size}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"expected overlap as a fraction in [0, 1), got {overlap}")
    overlap_w = min(round(tile_w * overlap), tile_w - 1)
    overlap_h = min(round(tile_h * overlap), tile_h - 1)
    xs = _axis_starts(width, tile_w, overlap_w)
    ys = _axis_starts(height, tile_h, overlap_h)
    win_w, win_h = min(tile_w, width), min(tile_h, height)
    return [TileWindow(x, y, win_w, win_h) for y in ys for x in xs]


# -- when to tile -------------------------------------------------------------------------

def exceeds_input(resolution_wh: tuple[int, int], input_size: int, factor: float | None) -> bool:
    """The tiling rule: the longer side is more than `factor` x the model input (None: never)."""
    if factor is None:
        return False
    if factor < 1.0:
        raise ValueError(f"expected a tiling factor >= 1 (or None for never), got {factor}")
    return max(resolution_wh) > factor * input_size


# -- merging ------------------------------------------------------------------------------

def touches_inner_edge(xyxy: np.ndarray, tile: TileWindow, image_wh: tuple[int, int],
                        margin: float) -> np.ndarray:
    """Per box (tile coordinates): does it end within `margin` px of an edge that is a seam?"""
    width, height = image_wh
    touches = np.zeros(len(xyxy), dtype=bool)
    if tile.x > 0:
        touches |= xyxy[:, 0] <= margin
    if tile.y > 0:
        touches |= xyxy[:, 1] <= margin
    if tile.x2 < width:
        touches |= xyxy[:, 2] >= tile.width - margin
    if tile.y2 < height:
        touches |= xyxy[:, 3] >= tile.height - margin
    return touches


def _seam_pairs(
    bounds: np.ndarray, counts: np.ndarray, cut: np.ndarray, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """Window pairs (a < b, in row-major order) that both have boxes, one of them cut by a seam,
    and that overlap or abut within `margin`, from (T, 4) window bounds, (T,) box counts and
    (T,) whether any box of the window is cut.

    Only neighbours share pixels: one array pass over the T x T pairs instead of a Python loop
    (a 20 MP photo's 247 tiles are 30 k pairs, of which about 600 are neighbours with boxes).
    """
    x1 = np.maximum(bounds[:, None, 0], bounds[None, :, 0])
    y1 = np.maximum(bounds[:, None, 1], bounds[None, :, 1])
    x2 = np.minimum(bounds[:, None, 2], bounds[None, :, 2])
    y2 = np.minimum(bounds[:, None, 3], bounds[None, :, 3])
    near = (x2 + margin > x1 - margin) & (y2 + margin > y1 - margin)
    has = counts > 0
    wanted = np.triu(near & has[:, None] & has[None, :] & (cut[:, None] | cut[None, :]), k=1)
    a, b = np.nonzero(wanted)
    return a, b


def _seam_matches(
    bounds: np.ndarray,
    counts: np.ndarray,
    xyxy: np.ndarray,
    on_seam: np.ndarray,
    class_id: np.ndarray | None,
    margin: float,
    match_threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Box index pairs (i, j) that are one object cut by the seam between their windows.

    Windows' boxes are contiguous in `xyxy`, in window order, `counts[t]` of window t's.
    Each pair of neighbouring windows shares a strip: the pixels both saw, widened by `margin`
    so that abutting windows share a thin one. Two boxes match when at least one is cut by a
    seam, their classes agree (unless `class_id` is None) and their parts inside the strip
    overlap with IoU >= `match_threshold`. Where the windows only abut, the two parts lie on
    either side of the seam line and cannot overlap; along that axis every part that reaches
    the strip is stretched to its full width, so the IoU measures how well they line up along
    the seam. All box pairs of all window pairs in one array pass.
    """
    starts = np.cumsum(counts) - counts
    cut = np.array([bool(on_seam[s : s + n].any()) for s, n in zip(starts, counts, strict=True)], bool)
    a, b = _seam_pairs(bounds, counts, cut, margin)
    # The shared strip of each window pair, and whether the windows only abut along x / y.
    x1, y1 = np.maximum(bounds[a, 0], bounds[b, 0]), np.maximum(bounds[a, 1], bounds[b, 1])
    x2, y2 = np.minimum(bounds[a, 2], bounds[b, 2]), np.minimum(bounds[a, 3], bounds[b, 3])
    lo = np.stack((x1 - margin, y1 - margin), axis=1).astype(np.float32)
    hi = np.stack((x2 + margin, y2 + margin), axis=1).astype(np.float32)
    abut = np.stack((x2 <= x1, y2 <= y1), axis=1)
    # Every box of window a against every box of window b, for each pair.
    per_pair = counts[a] * counts[b]
    pair = np.repeat(np.arange(len(a)), per_pair)
    k = np.arange(int(per_pair.sum())) - np.repeat(np.cumsum(per_pair) - per_pair, per_pair)
    i = starts[a][pair] + k // counts[b][pair]
    j = starts[b][pair] + k % counts[b][pair]
    lo4, hi4 = np.tile(lo[pair], 2), np.tile(hi[pair], 2)
    parts = []
    for index in (i, j):
        part = np.clip(xyxy[index], lo4, hi4)
        for axis in (0, 1):
            stretch = abut[pair, axis] & (part[:, axis + 2] > part[:, axis])
            part[stretch, axis] = lo4[stretch, axis]
            part[stretch, axis + 2] = hi4[stretch, axis]
        parts.append(part)
    pa, pb = parts
    area_a = np.prod(np.clip(pa[:, 2:] - pa[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(pb[:, 2:] - pb[:, :2], 0, None), axis=1)
    overlap = np.minimum(pa[:, 2:], pb[:, 2:]) - np.maximum(pa[:, :2], pb[:, :2])
    inter = np.prod(np.clip(overlap, 0, None), axis=1)
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    match = (iou >= match_threshold) & (on_seam[i] | on_seam[j])
    if class_id is not None:
        match &= class_id[i] == class_id[j]
    return i[match], j[match]


class _DisjointSet:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def merge_tile_detections(
    per_tile: Sequence[tuple[TileWindow, Detections]],
    *,
    iou_threshold: float = 0.5,
    match_threshold: float = 0.5,
    edge_margin_px: float = 4.0,
    class_agnostic: bool = False,
    resolution_wh: tuple[int, int] | None = None,
) -> Detections:
    """One Detections in image pixels from per-tile detections in tile pixels.

    - `iou_threshold`: NMS across tiles for objects seen whole twice.
    - `match_threshold`: IoU, inside the shared strip, above which a box truncated at a
      seam is merged with its counterpart from the neighbouring tile (union box, max score,
      class and extras of the higher-scoring part).
    - `edge_margin_px`: how close to a tile's inner edge a box must end to count as cut.
    - `resolution_wh`: the image size; by default the extent of the windows (they cover it).
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"expected iou_threshold in (0, 1], got {iou_threshold}")
    if not 0.0 < match_threshold <= 1.0:
        raise ValueError(f"expected match_threshold in (0, 1], got {match_threshold}")
    if edge_margin_px < 0:
        raise ValueError(f"expected edge_margin_px >= 0, got {edge_margin_px}")
    if not per_tile:
        return Detections.empty()
    image_wh = resolution_wh or (max(t.x2 for t, _ in per_tile), max(t.y2 for t, _ in per_tile))

    shifted: list[Detections] = []
    seam_flags: list[np.ndarray] = []
    for tile, dets in per_tile:
        seam_flags.append(touches_inner_edge(dets.xyxy, tile, image_wh, edge_margin_px))
        shifted.append(dets.with_offset(tile.x, tile.y))
    merged = Detections.merge(shifted, metadata={"tiles": len(per_tile)})
    if len(merged) == 0:
        return merged
    on_seam = np.concatenate(seam_flags)
    xyxy = merged.xyxy

    groups = _DisjointSet(len(merged))
    if on_seam.any():
        counts = np.array([len(d) for _, d in per_tile], np.int64)
        bounds = np.array([t.xyxy for t, _ in per_tile], np.float64)
        classes = None if class_agnostic else merged.class_id
        cut_i, cut_j = _seam_matches(bounds, counts, xyxy, on_seam, classes, edge_margin_px, match_threshold)
        for i, j in zip(cut_i.tolist(), cut_j.tolist(), strict=True):
            groups.union(i, j)

    # Each group becomes its best-scoring member, stretched to the union of the group's boxes.
    roots = np.array([groups.find(i) for i in range(len(merged))])
    order = np.lexsort((-merged.confidence, roots))  # by group, best score first
    firsts = np.flatnonzero(np.r_[True, roots[order][1:] != roots[order][:-1]])
    best = order[firsts]
    union = np.stack([np.minimum.reduceat(xyxy[order, 0], firsts),
                      np.minimum.reduceat(xyxy[order, 1], firsts),
                      np.maximum.reduceat(xyxy[order, 2], firsts),
                      np.maximum.reduceat(xyxy[order, 3], firsts)], axis=1)
    by_index = np.argsort(best)
    combined = merged[best[by_index]]
    combined.xyxy = union[by_index]
    width, height = image_wh
    combined.xyxy = np.clip(combined.xyxy, 0, np.array([width, height, width, height], np.float32))

    kept = nms(combined.xyxy, combined.confidence, iou_threshold,
               None if class_agnostic else combined.class_id)
    kept = np.asarray(kept, dtype=np.int64)
    kept = kept[np.argsort(-combined.confidence[kept], kind="stable")]
    return combined[kept]
