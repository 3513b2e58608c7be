"""Known answers for the pycocotools wrapper, thresholds and the confusion matrix."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import (
    CocoEvaluation,
    ImageBoxes,
    MatchCounts,
    ScoredMatches,
    best_f1_threshold,
    box_iou,
    confusion_matrix,
)

SIZE = (200, 200)


def gt(*boxes: tuple[str, tuple[float, float, float, float]]) -> ImageBoxes:
    return ImageBoxes(np.array([b for _, b in boxes], float).reshape(-1, 4), tuple(c for c, _ in boxes))


def pred(*boxes: tuple[str, tuple[float, float, float, float], float]) -> ImageBoxes:
    return ImageBoxes(np.array([b for _, b, _ in boxes], float).reshape(-1, 4),
                      tuple(c for c, _, _ in boxes), np.array([s for _, _, s in boxes], float))


GROUND_TRUTH = [
    gt(("a", (10, 10, 60, 60)), ("b", (100, 100, 180, 150))),
    gt(("a", (20, 30, 90, 120))),
    gt(),
]


def evaluate(preds: list[ImageBoxes], truth: list[ImageBoxes] = GROUND_TRUTH,
             categories: tuple[str, ...] = ("a", "b", "c")) -> CocoEvaluation:
    return CocoEvaluation(truth, preds, [SIZE] * len(truth), categories)


def test_perfect_predictions_give_ap_one() -> None:
    perfect = [ImageBoxes(g.xyxy, g.classes, np.full(len(g), 0.9)) for g in GROUND_TRUTH]
    result = evaluate(perfect)
    for name in ("a", "b"):
        ap = result.class_ap(name)
        assert ap.ap50 == pytest.approx(1.0) and ap.ap50_95 == pytest.approx(1.0)
        counts = result.match_counts(name)
        assert (counts.precision, counts.recall) == (1.0, 1.0)
    assert result.match_counts("a") == MatchCounts(tp=2, fp=0, n_gt=2)


def test_no_predictions_give_ap_zero_and_no_ground_truth_gives_none() -> None:
    result = evaluate([ImageBoxes.empty(scored=True)] * 3)
    for name in ("a", "b"):
        ap = result.class_ap(name)
        assert ap.ap50 == 0.0 and ap.ap50_95 == 0.0
        assert result.match_counts(name).recall == 0.0
        assert result.match_counts(name).precision == 0.0
    ap_c = result.class_ap("c")  # no ground truth of class c anywhere
    assert ap_c.ap50 is None and ap_c.ap50_95 is None
    assert result.match_counts("c").precision is None and result.match_counts("c").recall is None


def test_hand_computed_mixed_case() -> None:
    # Three boxes of one class. Ranked predictions: TP 0.9, FP 0.8, TP 0.7, FP 0.6; one box missed.
    # Recall [1/3, 1/3, 2/3, 2/3], precision [1, 1/2, 2/3, 1/2]; the interpolated envelope is
    # 1 on recall thresholds 0.00..0.33 (34 points), 2/3 on 0.34..0.66 (33), 0 above (34):
    # AP = (34 + 33 * 2/3) / 101 = 56/101. Every match is exact, so AP50-95 = AP50.
    truth = [gt(("a", (0, 0, 50, 50)), ("a", (100, 100, 150, 150))), gt(("a", (10, 10, 90, 90)))]
    preds = [pred(("a", (0, 0, 50, 50), 0.9), ("a", (120, 0, 190, 40), 0.8),
                  ("a", (0, 100, 50, 180), 0.6)),
             pred(("a", (10, 10, 90, 90), 0.7))]
    result = evaluate(preds, truth, ("a",))
    ap = result.class_ap("a")
    assert ap.ap50 == pytest.approx(56 / 101)
    assert ap.ap50_95 == pytest.approx(56 / 101)
    assert result.match_counts("a") == MatchCounts(tp=2, fp=2, n_gt=3)
    matches = result.scored_matches("a")
    assert matches.scores.tolist() == [0.9, 0.8, 0.7, 0.6]
    assert matches.is_tp.tolist() == [True, False, True, False]


def test_loose_box_counts_only_at_low_iou_thresholds() -> None:
    # IoU 0.62 matches at 0.50, 0.55 and 0.60 only: AP50 = 1, AP50-95 = 3/10.
    truth = [gt(("a", (0, 0, 100, 100)))]
    preds = [pred(("a", (0, 0, 100, 62), 0.8))]
    ap = evaluate(preds, truth, ("a",)).class_ap("a")
    assert ap.ap50 == pytest.approx(1.0)
    assert ap.ap50_95 == pytest.approx(0.3)


def test_a_prediction_of_the_wrong_class_is_a_false_positive_for_it() -> None:
    preds = [pred(("b", (10, 10, 60, 60), 0.9), ("b", (100, 100, 180, 150), 0.8)), pred(), pred()]
    result = evaluate([p if len(p) else ImageBoxes.empty(scored=True) for p in preds])
    assert result.class_ap("a").ap50 == 0.0
    # The wrong-class box (0.9) outranks the right one (0.8): precision 1/2 at recall 1 -> AP 0.5.
    assert result.class_ap("b").ap50 == pytest.approx(0.5)
    assert result.match_counts("b") == MatchCounts(tp=1, fp=1, n_gt=1)


def test_classes_outside_the_evaluated_set_are_ignored() -> None:
    truth = [gt(("a", (0, 0, 50, 50)), ("helper", (60, 60, 90, 90)))]
    preds = [pred(("a", (0, 0, 50, 50), 0.9), ("helper", (100, 100, 150, 150), 0.9))]
    result = evaluate(preds, truth, ("a",))
    assert result.class_ap("a").ap50 == pytest.approx(1.0)
    assert result.match_counts("a") == MatchCounts(tp=1, fp=0, n_gt=1)


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="as many prediction sets"):
        CocoEvaluation(GROUND_TRUTH, [], [SIZE] * 3, ("a",))
    with pytest.raises(ValueError, match="distinct"):
        CocoEvaluation(GROUND_TRUTH, GROUND_TRUTH, [SIZE] * 3, ("a", "a"))


@pytest.mark.parametrize(
    ("scores", "is_tp", "n_gt", "expected"),
    [
        # F1 after each cut: 0.5, 0.4, 2/3, 4/7 -> cut at 0.7.
        ([0.9, 0.8, 0.7, 0.6], [True, False, True, False], 3, (0.7, 2 / 3, 2 / 3, 2 / 3)),
        # Equal scores cannot be separated: the cut after the first 0.8 is not realisable.
        ([0.9, 0.8, 0.8], [True, True, False], 2, (0.8, 0.8, 2 / 3, 1.0)),
        # Cuts after 1 (P 1, R 1/2) and after 4 (P 1/2, R 1) both give F1 2/3: the higher one wins.
        ([0.9, 0.5, 0.4, 0.3], [True, False, False, True], 2, (0.9, 2 / 3, 1.0, 0.5)),
    ],
)
def test_best_f1_threshold(scores: list[float], is_tp: list[bool], n_gt: int,
                           expected: tuple[float, float, float, float]) -> None:
    choice = best_f1_threshold(ScoredMatches(np.array(scores), np.array(is_tp), n_gt))
    assert choice is not None
    assert (choice.threshold, choice.f1, choice.precision, choice.recall) == pytest.approx(expected)


def test_best_f1_threshold_needs_ground_truth_and_predictions() -> None:
    assert best_f1_threshold(ScoredMatches(np.array([0.5]), np.array([False]), 0)) is None
    assert best_f1_threshold(ScoredMatches(np.zeros(0), np.zeros(0, bool), 3)) is None
    assert best_f1_threshold(ScoredMatches(np.array([0.2]), np.array([True]), 1), floor=0.3) is None


def test_box_iou() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], float)
    assert box_iou(a, b) == pytest.approx(np.array([[50 / 150, 0], [0, 0]]))


def test_confusion_matrix_hand_computed() -> None:
    truth = [gt(("a", (0, 0, 50, 50)), ("b", (100, 100, 150, 150)), ("a", (160, 0, 199, 40))),
             gt(("b", (0, 0, 90, 90)))]
    preds = [pred(("a", (0, 0, 50, 52), 0.9),        # a -> a
                  ("a", (100, 100, 150, 148), 0.8),  # b predicted as a
                  ("b", (60, 160, 90, 190), 0.7)),   # b on background
             pred(("helper", (0, 0, 90, 90), 0.9))]  # outside the classes: ignored, so b is missed
    matrix = confusion_matrix(truth, preds, ("a", "b"))
    # rows: true a, b, background; columns: predicted a, b, background
    assert matrix.tolist() == [[1, 0, 1],
                               [1, 0, 1],
                               [0, 1, 0]]
