"""YOLO label lines: boxes, polygons, and every malformed line reported with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.datasets.labels import LabelIssue, YoloBox, parse_label_line, parse_label_text, read_label_file


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("0 0.5 0.5 0.2 0.4", YoloBox(0, 0.4, 0.3, 0.6, 0.7)),
        ("2 0.25 0.75 0.5 0.5", YoloBox(2, 0.0, 0.5, 0.5, 1.0)),
        # A box that pokes out of the image is clipped to it.
        ("1 0.95 0.5 0.2 0.2", YoloBox(1, 0.85, 0.4, 1.0, 0.6)),
        # Polygons (class + >= 3 points) become their bounding box.
        ("1 0.1 0.2 0.4 0.2 0.3 0.6", YoloBox(1, 0.1, 0.2, 0.4, 0.6, from_polygon=True)),
        ("0 0.1 0.1 0.9 0.1 0.9 0.8 0.1 0.8", YoloBox(0, 0.1, 0.1, 0.9, 0.8, from_polygon=True)),
        # Integer class ids written as floats by some tools are accepted.
        ("3.0 0.5 0.5 1 1", YoloBox(3, 0.0, 0.0, 1.0, 1.0)),
    ],
)
def test_valid_lines_parse_to_boxes(line: str, expected: YoloBox) -> None:
    box = parse_label_line(line)
    assert isinstance(box, YoloBox)
    assert box.class_id == expected.class_id
    assert box.from_polygon == expected.from_polygon
    assert (box.x1, box.y1, box.x2, box.y2) == pytest.approx(
        (expected.x1, expected.y1, expected.x2, expected.y2))


@pytest.mark.parametrize(
    ("line", "reason_part"),
    [
        ("0 0.5 0.5 0.2", "expected 5 values"),
        ("0 0.5 0.5 0.2 0.2 0.9", "expected 5 values"),  # a prediction line with a score
        ("0 0.1 0.1 0.5 0.5 0.2 0.2 0.9", "expected 5 values"),  # odd number of polygon coords
        ("car 0.5 0.5 0.2 0.2", "expected numbers, got 'car'"),
        ("0 0.5 0.5 0.2 abc", "expected numbers, got 'abc'"),
        ("-1 0.5 0.5 0.2 0.2", "non-negative integer class id"),
        ("1.5 0.5 0.5 0.2 0.2", "non-negative integer class id"),
        ("0 320 240 50 60", "normalised centre"),  # pixel coordinates
        ("0 0.5 0.5 0 0.2", "width and height"),
        ("0 0.5 0.5 0.2 -0.1", "width and height"),
        ("0 nan 0.5 0.2 0.2", "finite"),
        ("0 0.1 0.1 1.5 0.2 0.3 0.4", "normalised polygon"),
        ("0 0.2 0.2 0.2 0.2 0.2 0.2", "no area"),  # a degenerate polygon
        ("7 0.5 0.5 0.2 0.2", "class id 7 is not one of"),
    ],
)
def test_malformed_lines_give_a_reason(line: str, reason_part: str) -> None:
    result = parse_label_line(line, valid_class_ids={0, 1, 2})
    assert isinstance(result, str)
    assert reason_part in result


def test_issues_name_file_and_line_and_other_lines_are_kept() -> None:
    text = "0 0.5 0.5 0.2 0.2\n\n0 0.5 0.5\n1 0.1 0.1 0.05 0.05\nx y z w h"
    boxes, issues = parse_label_text(text, "labels/a.txt", valid_class_ids={0, 1})
    assert [b.class_id for b in boxes] == [0, 1]
    assert [(i.file, i.line) for i in issues] == [("labels/a.txt", 3), ("labels/a.txt", 5)]
    assert str(issues[0]).startswith("labels/a.txt:3: expected 5 values")


def test_missing_label_file_means_no_boxes(tmp_path: Path) -> None:
    assert read_label_file(tmp_path / "absent.txt") == ([], [])


def test_label_file_without_final_newline_and_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes("\ufeff0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.4 0.4".encode())
    boxes, issues = read_label_file(path)
    assert issues == []
    assert [b.class_id for b in boxes] == [0, 1]


def test_binary_label_file_is_an_issue_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    boxes, issues = read_label_file(path, display_name="src/a.txt")
    assert boxes == []
    assert len(issues) == 1 and isinstance(issues[0], LabelIssue)
    assert issues[0].file == "src/a.txt" and "not UTF-8" in issues[0].reason


def test_yolo_line_round_trips_with_a_new_class_id() -> None:
    box = parse_label_line("5 0.3 0.4 0.2 0.1")
    assert isinstance(box, YoloBox)
    assert box.yolo_line(1) == "1 0.300000 0.400000 0.200000 0.100000"
