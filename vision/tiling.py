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


@dataclass(frozen=True)
class _Strip:
    """The pixels two windows both saw, widened by a margin so that abutting windows share
    a thin strip; `abut_x`/`abut_y` say the windows only touch along that axis."""

    xyxy: tuple[float, float, float, float]
    abut_x: bool
    abut_y: bool


def _shared_strip(a: TileWindow, b: TileWindow, margin: float) -> _Strip | None:
    x1, y1 = max(a.x, b.x), max(a.y, b.y)
    x2, y2 = min(a.x2, b.x2), min(a.y2, b.y2)
    if x2 + margin <= x1 - margin or y2 + margin <= y1 - margin:
        return None
    return _Strip((x1 - margin, y1 - margin, x2 + margin, y2 + margin), x2 <= x1, y2 <= y1)


def _clipped_iou(boxes_a: np.ndarray, boxes_b: np.ndarray, strip: _Strip) -> np.ndarray:
    """Pairwise IoU (len(a), len(b)) of the boxes' parts that lie inside the shared strip.

    Where the windows only abut, the two parts lie on either side of the seam line and
    cannot overlap; along that axis every part that reaches the strip is stretched to the
    strip's full width, so the IoU measures how well the parts line up along the seam.
    """
    lo = np.array(strip.xyxy[:2] * 2, np.float32)
    hi = np.array(strip.xyxy[2:] * 2, np.float32)
    ca = np.clip(boxes_a, lo, hi)
    cb = np.clip(boxes_b, lo, hi)
    for axis, abut in ((0, strip.abut_x), (1, strip.abut_y)):
        if abut:
            for clipped in (ca, cb):
                reaches = clipped[:, axis + 2] > clipped[:, axis]
                clipped[reaches, axis] = lo[axis]
                clipped[reaches, axis + 2] = hi[axis]
    area_a = np.prod(np.clip(ca[:, 2:] - ca[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(cb[:, 2:] - cb[:, :2], 0, None), axis=1)
    top_left = np.maximum(ca[:, None, :2], cb[None, :, :2])
    bottom_right = np.minimum(ca[:, None, 2:], cb[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


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
    tile_index: list[np.ndarray] = []
    for i, (tile, dets) in enumerate(per_tile):
        seam_flags.append(touches_inner_edge(dets.xyxy, tile, image_wh, edge_margin_px))
        tile_index.append(np.full(len(dets), i, np.int64))
        shifted.append(dets.with_offset(tile.x, tile.y))
    merged = Detections.merge(shifted, metadata={"tiles": len(per_tile)})
    if len(merged) == 0:
        return merged
    on_seam = np.concatenate(seam_flags)
    from_tile = np.concatenate(tile_index)
    xyxy = merged.xyxy

    groups = _DisjointSet(len(merged))
    if on_seam.any():
        members = [np.flatnonzero(from_tile == i) for i in range(len(per_tile))]
        for a in range(len(per_tile)):
            if not members[a].size:
                continue
            for b in range(a + 1, len(per_tile)):
                idx_a, idx_b = members[a], members[b]
                if not idx_b.size or not (on_seam[idx_a].any() or on_seam[idx_b].any()):
                    continue
                strip = _shared_strip(per_tile[a][0], per_tile[b][0], edge_margin_px)
                if strip is None:
                    continue
                iou = _clipped_iou(xyxy[idx_a], xyxy[idx_b], strip)
                match = (iou >= match_threshold) & (on_seam[idx_a][:, None] | on_seam[idx_b][None, :])
                if not class_agnostic:
                    match &= merged.class_id[idx_a][:, None] == merged.class_id[idx_b][None, :]
                for i, j in zip(*np.nonzero(match), strict=True):
                    groups.union(int(idx_a[i]), int(idx_b[j]))

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
