"""Detection metrics: COCO-style AP through pycocotools, plus the operating-point figures.

Ground truth and predictions are given per image in one class space (names, e.g. taxonomy
keys, or model labels). They are converted to COCO dictionaries in memory and scored by
`pycocotools.cocoeval.COCOeval` (bbox, 101-point interpolated precision, IoU 0.50:0.95,
at most `max_dets` detections per image and class). Precision and recall at an operating
point, and the score/true-positive pairs used to choose thresholds, are read from the same
COCOeval matching at IoU 0.5, so every figure here uses one matching rule.

The confusion matrix is the one thing not from pycocotools: it matches boxes across
classes (greedy by IoU >= 0.5), which COCOeval does not do.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

IOU_MATCH = 0.5
BACKGROUND = "background"


@dataclass(frozen=True)
class ImageBoxes:
    """Boxes of one image in one class space: pixel xyxy, class names, scores (1 for ground truth)."""

    xyxy: npt.NDArray[np.float64]
    classes: tuple[str, ...]
    scores: npt.NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float64).reshape(-1, 4)
        object.__setattr__(self, "xyxy", xyxy)
        if len(self.classes) != len(xyxy):
            raise ValueError(f"expected one class per box, got {len(self.classes)} for {len(xyxy)} boxes")
        if self.scores is not None:
            scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
            if len(scores) != len(xyxy):
                raise ValueError(f"expected one score per box, got {len(scores)} for {len(xyxy)} boxes")
            object.__setattr__(self, "scores", scores)

    @classmethod
    def empty(cls, *, scored: bool = False) -> ImageBoxes:
        return cls(np.zeros((0, 4)), (), np.zeros(0) if scored else None)

    def __len__(self) -> int:
        return len(self.xyxy)

    def select(self, keep: npt.NDArray[np.bool_]) -> ImageBoxes:
        return ImageBoxes(self.xyxy[keep], tuple(c for c, k in zip(self.classes, keep, strict=True) if k),
                          None if self.scores is None else self.scores[keep])


@dataclass(frozen=True)
class ClassAP:
    """AP of one class; None where the class has no ground truth in the evaluated images."""

    ap50: float | None
    ap50_95: float | None
    recall_thresholds: npt.NDArray[np.float64] = field(repr=False)
    precision_at_50: npt.NDArray[np.float64] = field(repr=False)  # -1 where undefined


@dataclass(frozen=True)
class MatchCounts:
    """Matches at IoU 0.5 of every prediction given (threshold first to get an operating point)."""

    tp: int
    fp: int
    n_gt: int

    @property
    def precision(self) -> float | None:
        if self.tp + self.fp == 0:
            return 0.0 if self.n_gt else None
        return self.tp / (self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return self.tp / self.n_gt if self.n_gt else None


@dataclass(frozen=True)
class ScoredMatches:
    """Each prediction's score and whether it matched a ground-truth box at IoU 0.5."""

    scores: npt.NDArray[np.float64]
    is_tp: npt.NDArray[np.bool_]
    n_gt: int


class CocoEvaluation:
    """COCOeval run over images with ground truth and predictions in one class space."""

    def __init__(self, ground_truth: Sequence[ImageBoxes], predictions: Sequence[ImageBoxes],
                 sizes_wh: Sequence[tuple[int, int]], categories: Sequence[str], *, max_dets: int = 100
                 ) -> None:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        if not len(ground_truth) == len(predictions) == len(sizes_wh):
            raise ValueError(f"expected as many prediction sets and sizes as images, got "
                             f"{len(ground_truth)}, {len(predictions)}, {len(sizes_wh)}")
        if len(set(categories)) != len(categories) or not categories:
            raise ValueError(f"expected distinct, non-empty categories, got {list(categories)}")
        self.categories = tuple(categories)
        cat_ids = {name: i + 1 for i, name in enumerate(self.categories)}
        images = [{"id": i + 1, "width": int(w), "height": int(h)} for i, (w, h) in enumerate(sizes_wh)]
        gt_anns = _annotations(ground_truth, cat_ids, scored=False)
        dt_anns = _annotations(predictions, cat_ids, scored=True)
        cats = [{"id": cid, "name": name} for name, cid in cat_ids.items()]
        # The stubs' TypedDicts ask for fields a bbox evaluation has no use for (file_name,
        # segmentation, supercategory) and lack the predictions' "score": hence the ignores.
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            gt = COCO()
            gt.dataset = {"images": images, "annotations": gt_anns, "categories": cats}  # type: ignore[typeddict-item]
            gt.createIndex()
            dt = COCO()
            dt.dataset = {"images": images, "annotations": dt_anns, "categories": cats}  # type: ignore[typeddict-item]
            dt.createIndex()
            evaluator = COCOeval(gt, dt, iouType="bbox")
            evaluator.params.imgIds = [im["id"] for im in images]
            evaluator.params.catIds = list(cat_ids.values())
            evaluator.params.maxDets = [1, 10, max_dets]
            evaluator.evaluate()
            evaluator.accumulate()
        self._eval = evaluator
        self._n_gt = {name: sum(c == name for boxes in ground_truth for c in boxes.classes)
                      for name in self.categories}

    @property
    def iou_thresholds(self) -> npt.NDArray[np.float64]:
        return np.asarray(self._eval.params.iouThrs)

    def class_ap(self, category: str) -> ClassAP:
        k = self.categories.index(category)
        precision = self._eval.eval["precision"][:, :, k, 0, -1]  # [iou, recall]
        recall_thresholds = np.asarray(self._eval.params.recThrs)
        if self._n_gt[category] == 0 or not np.any(precision > -1):
            return ClassAP(None, None, recall_thresholds, precision[0])
        at_50 = precision[0]
        ap50 = float(np.mean(at_50[at_50 > -1]))
        ap50_95 = float(np.mean(precision[precision > -1]))
        return ClassAP(ap50, ap50_95, recall_thresholds, at_50)

    def scored_matches(self, category: str) -> ScoredMatches:
        """Every (kept) prediction of a class with its match at IoU 0.5, highest score first."""
        k = self.categories.index(category)
        n_area = len(self._eval.params.areaRng)
        n_img = len(self._eval.params.imgIds)
        scores: list[float] = []
        is_tp: list[bool] = []
        t = int(np.argmin(np.abs(self.iou_thresholds - IOU_MATCH)))
        for i in range(n_img):
            entry = self._eval.evalImgs[k * n_area * n_img + i]  # area range 0 = "all"
            if entry is None:
                continue
            matched = np.asarray(entry["dtMatches"])[t] > 0
            ignored = np.asarray(entry["dtIgnore"])[t] > 0
            for score, m, ig in zip(entry["dtScores"], matched, ignored, strict=True):
                if not ig:
                    scores.append(float(score))
                    is_tp.append(bool(m))
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        return ScoredMatches(np.asarray(scores, np.float64)[order], np.asarray(is_tp, bool)[order],
                             self._n_gt[category])

    def match_counts(self, category: str) -> MatchCounts:
        matches = self.scored_matches(category)
        tp = int(matches.is_tp.sum())
        return MatchCounts(tp=tp, fp=len(matches.is_tp) - tp, n_gt=matches.n_gt)


def _annotations(per_image: Sequence[ImageBoxes], cat_ids: dict[str, int], *, scored: bool
                 ) -> list[dict[str, object]]:
    anns: list[dict[str, object]] = []
    for image_index, boxes in enumerate(per_image):
        if scored and boxes.scores is None and len(boxes):
            raise ValueError(f"expected scores on the predictions of image {image_index}")
        for j, (box, name) in enumerate(zip(boxes.xyxy, boxes.classes, strict=True)):
            if name not in cat_ids:
                continue  # a class outside the evaluated set (e.g. a helper label)
            x1, y1, x2, y2 = (float(v) for v in box)
            ann: dict[str, object] = {
                # ids start at 1: COCOeval marks "unmatched" with 0.
                "id": len(anns) + 1, "image_id": image_index + 1, "category_id": cat_ids[name],
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
            if scored:
                ann["score"] = float(boxes.scores[j])  # type: ignore[index]  # scored: checked above
            anns.append(ann)
    return anns


# -- thresholds ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    f1: float
    precision: float
    recall: float


def best_f1_threshold(matches: ScoredMatches, floor: float = 0.0) -> ThresholdChoice | None:
    """The score threshold maximising F1 at IoU 0.5; ties go to the highest threshold.

    Candidate thresholds are the predictions' own scores (keeping every prediction scoring at
    least that much). None when there is no ground truth or no prediction above `floor`.
    """
    keep = matches.scores >= floor
    scores, is_tp = matches.scores[keep], matches.is_tp[keep]
    if matches.n_gt == 0 or len(scores) == 0:
        return None
    tp = np.cumsum(is_tp)
    fp = np.cumsum(~is_tp)
    precision = tp / (tp + fp)
    recall = tp / matches.n_gt
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(tp > 0, 2 * precision * recall / (precision + recall), 0.0)
    # Only the last prediction of a run of equal scores is a realisable cut.
    realisable = np.append(scores[1:] != scores[:-1], True)
    f1 = np.where(realisable, f1, -1.0)
    best = float(f1.max())
    index = int(np.flatnonzero(f1 == best)[0])  # scores descend: first index = highest threshold
    return ThresholdChoice(threshold=float(scores[index]), f1=max(best, 0.0),
                           precision=float(precision[index]), recall=float(recall[index]))


# -- confusion matrix ---------------------------------------------------------------------


def box_iou(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Pairwise IoU of xyxy boxes, shape (len(a), len(b))."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def confusion_matrix(ground_truth: Sequence[ImageBoxes], predictions: Sequence[ImageBoxes],
                     classes: Sequence[str], iou: float = IOU_MATCH) -> npt.NDArray[np.int64]:
    """Rows: true class (+ background last), columns: predicted class (+ background last).

    Boxes are matched across classes, greedily by IoU >= `iou`, each box at most once. A
    missed ground-truth box counts in the background column, a prediction matching nothing
    in the background row. Boxes of classes outside `classes` are ignored.
    """
    index = {name: i for i, name in enumerate(classes)}
    background = len(classes)
    matrix = np.zeros((len(classes) + 1, len(classes) + 1), dtype=np.int64)
    for gt, pred in zip(ground_truth, predictions, strict=True):
        gt_keep = np.array([c in index for c in gt.classes], dtype=bool)
        pred_keep = np.array([c in index for c in pred.classes], dtype=bool)
        gt, pred = gt.select(gt_keep), pred.select(pred_keep)
        ious = box_iou(gt.xyxy, pred.xyxy)
        gt_used = np.zeros(len(gt), bool)
        pred_used = np.zeros(len(pred), bool)
        if ious.size:
            pairs = np.argwhere(ious >= iou)
            order = np.argsort(-ious[pairs[:, 0], pairs[:, 1]], kind="stable")
            for g, p in pairs[order]:
                if gt_used[g] or pred_used[p]:
                    continue
                gt_used[g] = pred_used[p] = True
                matrix[index[gt.classes[g]], index[pred.classes[p]]] += 1
        for g in np.flatnonzero(~gt_used):
            matrix[index[gt.classes[g]], background] += 1
        for p in np.flatnonzero(~pred_used):
            matrix[background, index[pred.classes[p]]] += 1
    return matrix
