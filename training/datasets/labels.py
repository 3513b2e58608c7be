"""YOLO label lines: boxes (`class cx cy w h`) and polygons (`class x1 y1 x2 y2 ...`).

All coordinates are normalised to [0, 1]. A polygon becomes its bounding box. A line that
cannot be used is reported as a `LabelIssue` naming file and line and is skipped; it is
never dropped silently and never stops the rest of the file from being read.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

# Exports round coordinates and some tools write 1.0000001; beyond this slack a value is
# not normalised at all (e.g. pixel coordinates) and the line is refused.
COORD_SLACK = 0.01


@dataclass(frozen=True)
class LabelIssue:
    """A label line that was skipped, and why."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class YoloBox:
    """One box, normalised xyxy clipped to the image, with the class id of its file."""

    class_id: int
    x1: float
    y1: float
    x2: float
    y2: float
    from_polygon: bool = False

    @property
    def cxcywh(self) -> tuple[float, float, float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2, self.x2 - self.x1, self.y2 - self.y1)

    def yolo_line(self, class_id: int) -> str:
        """The box as a YOLO line with another class id; 6 decimals keep sub-pixel precision."""
        cx, cy, w, h = self.cxcywh
        return f"{class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"

    def xyxy_pixels(self, width: int, height: int) -> tuple[float, float, float, float]:
        return (self.x1 * width, self.y1 * height, self.x2 * width, self.y2 * height)


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def parse_label_line(text: str, valid_class_ids: Collection[int] | None = None) -> YoloBox | str:
    """One non-blank line -> a box, or the reason it cannot be used."""
    tokens = text.split()
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        return f"expected numbers, got {bad!r}"
    if not all(math.isfinite(v) for v in values):
        return "expected finite numbers, got NaN or inf"
    class_value = values[0]
    if class_value != int(class_value) or class_value < 0:
        return f"expected a non-negative integer class id, got {tokens[0]!r}"
    class_id = int(class_value)
    if valid_class_ids is not None and class_id not in valid_class_ids:
        return f"class id {class_id} is not one of the source's classes {sorted(valid_class_ids)}"
    coords = values[1:]
    if len(coords) == 4:
        cx, cy, w, h = coords
        if not (-COORD_SLACK <= cx <= 1 + COORD_SLACK and -COORD_SLACK <= cy <= 1 + COORD_SLACK):
            return f"expected a normalised centre in [0, 1], got ({cx:g}, {cy:g})"
        if w <= 0 or h <= 0 or w > 1 + COORD_SLACK or h > 1 + COORD_SLACK:
            return f"expected width and height in (0, 1], got ({w:g}, {h:g})"
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        from_polygon = False
    elif len(coords) >= 6 and len(coords) % 2 == 0:
        xs, ys = coords[0::2], coords[1::2]
        if any(not -COORD_SLACK <= v <= 1 + COORD_SLACK for v in coords):
            return "expected normalised polygon points in [0, 1]"
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
        from_polygon = True
    else:
        return (f"expected 5 values (class cx cy w h) or a polygon (class and at least 3 x y "
                f"points), got {len(tokens)} values")
    x1, y1, x2, y2 = _clip(x1), _clip(y1), _clip(x2), _clip(y2)
    if x2 <= x1 or y2 <= y1:
        return "box has no area inside the image"
    return YoloBox(class_id, x1, y1, x2, y2, from_polygon)


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def parse_label_text(text: str, file: str, valid_class_ids: Collection[int] | None = None
                     ) -> tuple[list[YoloBox], list[LabelIssue]]:
    """All lines of one label file; blank lines are fine (exports end files with one or not)."""
    boxes: list[YoloBox] = []
    issues: list[LabelIssue] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parsed = parse_label_line(line, valid_class_ids)
        if isinstance(parsed, str):
            issues.append(LabelIssue(file, number, parsed))
        else:
            boxes.append(parsed)
    return boxes, issues


def read_label_file(path: Path, valid_class_ids: Collection[int] | None = None,
                    display_name: str | None = None) -> tuple[list[YoloBox], list[LabelIssue]]:
    """A label file; a missing one means an image without boxes (the YOLO convention)."""
    name = display_name or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        return [], [LabelIssue(name, 0, f"cannot read label file: {exc}")]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [LabelIssue(name, 0, f"label file is not UTF-8 text: {exc}")]
    return parse_label_text(text, name, valid_class_ids)
