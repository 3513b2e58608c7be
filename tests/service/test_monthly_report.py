"""The 红黑榜's labels come from the rules file; a region with too few reviews is never labelled."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.monthly_report import RULES_FILE, BoardRules, BoardRulesError, MonthlyRow, apply_labels


def _row(region_id: int, closure_rate: float | None, reviewed: int, kind: str = "village") -> MonthlyRow:
    return MonthlyRow(
        region_id=region_id, name=f"村{region_id}", kind=kind, parent_name=None, found=reviewed,  # type: ignore[arg-type]
        reviewed=reviewed, confirmed=reviewed, rectified=0, rectified_on_time=0, closed=0, rebounds=0,
        closure_rate=closure_rate, on_time_rate=None, area_m2_by_class={},
    )


def _rules(tmp_path: Path, text: str) -> BoardRules:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return BoardRules.load(path)


ONE_EACH = """
rectify_within_days: 7
labels:
  - {label: red, name_zh: 红榜, metric: closure_rate, order: highest, count: 1, min_reviewed: 2}
  - {label: black, name_zh: 黑榜, metric: closure_rate, order: lowest, count: 1, min_reviewed: 2}
"""


def test_labels_follow_the_rules_file(tmp_path):
    rows = [_row(1, 1.0, 1), _row(2, 0.9, 5), _row(3, 0.2, 5), _row(4, 0.5, 5), _row(5, None, 0),
            _row(6, 0.1, 5, kind="grid")]
    labels = {r.region_id: r.label for r in apply_labels(rows, _rules(tmp_path, ONE_EACH))}
    # 1 has the best rate but one review: not red; 5 has nothing reviewed: nothing at all
    assert labels == {1: None, 2: "red", 3: "black", 4: None, 5: None, 6: "red"}  # grids ranked apart


def test_ties_at_the_cut_share_the_label_and_red_is_not_also_black(tmp_path):
    rows = [_row(1, 0.8, 3), _row(2, 0.8, 3)]
    labels = {r.region_id: r.label for r in apply_labels(rows, _rules(tmp_path, ONE_EACH))}
    assert labels == {1: "red", 2: "red"}


def test_the_shipped_rules_load_and_a_bad_file_says_where(tmp_path):
    shipped = BoardRules.load(RULES_FILE)
    assert [(r.label, r.metric, r.min_reviewed >= 1) for r in shipped.labels] == [
        ("red", "closure_rate", True), ("black", "closure_rate", True)]
    with pytest.raises(BoardRulesError, match="rules.yaml"):
        _rules(tmp_path, ONE_EACH.replace("closure_rate", "happiness"))
