"""Decode raw YOLO outputs into boxes, scores and class ids per image (numpy only).

Two head layouts:
- anchor-free (ultralytics YOLOv5u/v8/11 `Detect`): (B, 4 + nc, N), rows cx, cy, w, h in
  network-input pixels then one score per class, no objectness. Needs a score floor and
  class-aware NMS.
- end-to-end (ultralytics metadata `end2end=True`, e.g. YOLOv10/YOLO26): (B, K, 6), rows
  x1, y1, x2, y2, score, class, already suppressed. Only the score floor applies.

Semantics follow `ultralytics.utils.nms.non_max_suppression` (best class per box, strict
`score > conf`, at most 30000 boxes into NMS, suppression when IoU > threshold, `max_det`
kept) so both backends agree; tests/vision/test_postprocess.py compares them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MAX_NMS_CANDIDATES = 30_000  # as ultralytics: bounds the work on a very noisy image


@dataclass(frozen=True)
class RawBoxes:
    """Boxes of one image in network-input pixels, best score first."""

    xyxy: npt.NDArray[np.float32]         # (K, 4)
    confidence: npt.NDArray[np.float32]   # (K,)
    class_id: npt.NDArray[np.int64]       # (K,)

    def __len__(self) -> int:
        return len(self.confidence)

    @classmethod
    def empty(cls) -> RawBoxes:
        return cls(np.empty((0, 4), np.float32), np.empty((0,), np.float32), np.empty((0,), np.int64))


def box_iou(box: npt.NDArray[np.floating], boxes: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """IoU of one xyxy box (4,) with each of `boxes` (M, 4); zero-area unions give 0."""
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(
    xyxy: npt.ArrayLike,
    scores: npt.ArrayLike,
    iou_threshold: float,
    class_ids: npt.ArrayLike | None = None,
    *,
    max_keep: int | None = None,
) -> npt.NDArray[np.int64]:
    """Greedy non-maximum suppression; indices of kept boxes, best score first.

    A box is suppressed by a better-scoring kept box when their IoU is strictly greater than
    `iou_threshold` (torchvision's rule). With `class_ids`, boxes of different classes never
    suppress each other: every class is shifted by its own offset larger than the extent of
    all boxes, so boxes of different classes cannot overlap (torchvision's batched_nms
    trick). `max_keep` stops early once that many boxes are kept; the result equals the
    first `max_keep` of a full run because kept boxes come out in score order.
    """
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores).reshape(-1)
    if len(scores) != len(boxes):
        raise ValueError(f"expected one score per box ({len(boxes)}), got {len(scores)}")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"expected iou_threshold in [0, 1], got {iou_threshold}")
    if len(boxes) == 0:
        return np.empty((0,), np.int64)
    if class_ids is not None:
        classes = np.asarray(class_ids).reshape(-1)
        if len(classes) != len(boxes):
            raise ValueError(f"expected one class id per box ({len(boxes)}), got {len(classes)}")
        # float64 keeps the shifted coordinates exact enough that IoUs match unshifted ones.
        span = float(boxes.max() - boxes.min()) + 1.0
        boxes = boxes + (classes.astype(np.float64) * span)[:, None]
    limit = len(boxes) if max_keep is None else max(0, int(max_keep))
    # Stable sort: equal scores keep input order, so results are deterministic.
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    # One contiguous array per coordinate, in score order: each round gathers only the
    # survivors, and the survivors shrink as boxes are suppressed (measured 3x faster than
    # IoU on an (N, 4) array; blocked IoU matrices were slower still).
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[order, k]) for k in range(4))
    area = (x2 - x1) * (y2 - y1)
    alive = np.arange(len(order))
    keep: list[int] = []
    while alive.size and len(keep) < limit:
        best, rest = alive[0], alive[1:]
        keep.append(int(best))
        if not rest.size:
            break
        w = np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest])
        h = np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])
        np.maximum(w, 0, out=w)
        np.maximum(h, 0, out=h)
        inter = w * h
        union = area[best] + area[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        alive = rest[iou <= iou_threshold]
    return order[np.asarray(keep, dtype=np.int64)]


def decode_anchor_free(
    output: npt.NDArray[np.floating],
    *,
    conf: float,
    iou: float,
    max_det: int,
    agnostic: bool = False,
) -> list[RawBoxes]:
    """(B, 4 + nc, N) -> one RawBoxes per image, after score floor and class-aware NMS."""
    output = np.asarray(output)
    if output.ndim != 3 or output.shape[1] < 5:
        raise ValueError(f"expected an anchor-free output of shape (B, 4 + nc, N), got {output.shape}")
    results = []
    for pred in output:
        class_scores = pred[4:]                                   # (nc, N), a view
        score = class_scores.max(axis=0)                          # best class score per box
        candidates = np.flatnonzero(score > conf)
        if candidates.size == 0:
            results.append(RawBoxes.empty())
            continue
        if candidates.size > MAX_NMS_CANDIDATES:
            top = np.argsort(-score[candidates], kind="stable")[:MAX_NMS_CANDIDATES]
            candidates = candidates[top]
        # argmax only over the few candidates, not all N anchors.
        cand_class = class_scores[:, candidates].argmax(axis=0).astype(np.int64)
        cand_score = score[candidates].astype(np.float32)
        cxcywh = pred[:4, candidates].T.astype(np.float32)       # (K, 4)
        # A head cannot emit negative sizes (DFL distances are expectations over >= 0 bins), but
        # a broken export could; clamp rather than fail the whole batch on inverted boxes.
        half_wh = np.maximum(cxcywh[:, 2:], 0) / 2
        xyxy = np.concatenate([cxcywh[:, :2] - half_wh, cxcywh[:, :2] + half_wh], axis=1)
        kept = nms(xyxy, cand_score, iou, None if agnostic else cand_class, max_keep=max_det)
        results.append(RawBoxes(xyxy[kept], cand_score[kept], cand_class[kept]))
    return results


def decode_end2end(output: npt.NDArray[np.floating], *, conf: float, max_det: int) -> list[RawBoxes]:
    """(B, K, 6) rows x1, y1, x2, y2, score, class -> one RawBoxes per image (no NMS)."""
    output = np.asarray(output)
    if output.ndim != 3 or output.shape[2] < 6:
        raise ValueError(f"expected an end-to-end output of shape (B, K, 6), got {output.shape}")
    results = []
    for pred in output:
        rows = pred[pred[:, 4] > conf][:max_det]
        # A model may emit x2 < x1 for a degenerate box; keep the box valid for Detections.
        xyxy = rows[:, :4].astype(np.float32)
        xyxy[:, 2:] = np.maximum(xyxy[:, 2:], xyxy[:, :2])
        results.append(RawBoxes(xyxy, rows[:, 4].astype(np.float32), rows[:, 5].astype(np.int64)))
    return results


def decode_output(
    output: npt.NDArray[np.floating],
    *,
    end2end: bool,
    conf: float,
    iou: float,
    max_det: int,
) -> list[RawBoxes]:
    """Decode either head layout; `end2end` comes from the model's metadata."""
    if end2end:
        return decode_end2end(output, conf=conf, max_det=max_det)
    return decode_anchor_free(output, conf=conf, iou=iou, max_det=max_det)
