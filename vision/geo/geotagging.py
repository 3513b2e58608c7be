"""Detections (pixel boxes) -> one Geotag or NoLocation per detection.

The ground point of a box depends on what the class is: flat things (garbage, clutter,
roofs) touch the ground at their centre, standing things (sheds, smoke columns) at the
bottom centre of their box. That is the taxonomy's `ground_anchor`, looked up per class key
from `Detections.data["class_key"]`, or through an explicit class_id -> key mapping, and
overridable per key. Standing classes also carry a typical height (`height_m`), which a frame
camera needs to tell a standing object's footprint from its box (`vision.geo.standing`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from vision.detections import Detections
from vision.geo.projector import GroundProjector
from vision.geo.types import Geotag, GroundAnchor, GroundPosition, NoLocation
from vision.taxonomy import HeightPrior, Taxonomy

ANCHORS: tuple[GroundAnchor, ...] = ("center", "bottom_center")


def class_keys_of(
    detections: Detections, class_keys: Mapping[int, str | None] | None = None
) -> list[str | None]:
    """Taxonomy key per detection: `data["class_key"]` when present, else `class_keys[class_id]`."""
    if "class_key" in detections.data:
        return [
            None if k is None or (isinstance(k, float) and np.isnan(k)) or k == "" else str(k)
            for k in detections.data["class_key"].tolist()
        ]
    if class_keys is not None:
        return [class_keys.get(int(c)) for c in detections.class_id]
    return [None] * len(detections)


def resolve_anchors(
    detections: Detections,
    *,
    taxonomy: Taxonomy | None = None,
    class_keys: Mapping[int, str | None] | None = None,
    anchors: Mapping[str, GroundAnchor] | None = None,
    default: GroundAnchor = "center",
) -> list[GroundAnchor]:
    """Anchor per detection: explicit per-key override, else the taxonomy's, else `default`.

    Keys the taxonomy does not know (helper labels mapped to nothing) take the default.
    """
    for class_key, anchor in (anchors or {}).items():
        if anchor not in ANCHORS:
            raise ValueError(f"expected anchor in {ANCHORS} for class {class_key!r}, got {anchor!r}")
    if default not in ANCHORS:
        raise ValueError(f"expected default anchor in {ANCHORS}, got {default!r}")
    taxonomy = taxonomy or Taxonomy.default()
    out: list[GroundAnchor] = []
    for key in class_keys_of(detections, class_keys):
        if key is not None and anchors and key in anchors:
            out.append(anchors[key])
        elif key is not None and key in taxonomy:
            out.append(taxonomy.get(key).ground_anchor)
        else:
            out.append(default)
    return out


def resolve_heights(
    detections: Detections,
    anchors: list[GroundAnchor],
    *,
    taxonomy: Taxonomy | None = None,
    class_keys: Mapping[int, str | None] | None = None,
) -> list[HeightPrior | None]:
    """The taxonomy's height prior per detection, for those anchored as standing objects."""
    taxonomy = taxonomy or Taxonomy.default()
    standing = (
        (key, anchor == "bottom_center")
        for key, anchor in zip(class_keys_of(detections, class_keys), anchors, strict=True)
    )
    return [
        taxonomy.get(key).height_m if up and key is not None and key in taxonomy else None
        for key, up in standing
    ]


def anchor_pixel(xyxy: np.ndarray, anchor: GroundAnchor) -> tuple[float, float]:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return ((x1 + x2) / 2, y2) if anchor == "bottom_center" else ((x1 + x2) / 2, (y1 + y2) / 2)


def geotag_detections(
    detections: Detections,
    projector: GroundProjector,
    *,
    taxonomy: Taxonomy | None = None,
    class_keys: Mapping[int, str | None] | None = None,
    anchors: Mapping[str, GroundAnchor] | None = None,
    default_anchor: GroundAnchor = "center",
) -> list[Geotag | NoLocation]:
    """One result per detection, in order: a Geotag (point, footprint when possible) or NoLocation.

    The detections of a frame are placed together: one `locate` for all their points, one
    `footprints` for all their boxes (a frame camera batches the geometry across them).
    """
    taxonomy = taxonomy or Taxonomy.default()  # parsed once here, not once per lookup
    wanted = resolve_anchors(
        detections, taxonomy=taxonomy, class_keys=class_keys, anchors=anchors, default=default_anchor
    )
    heights = resolve_heights(detections, wanted, taxonomy=taxonomy, class_keys=class_keys)
    if not len(detections):
        return []
    boxes = detections.xyxy.astype(np.float64)
    effective = [projector.effective_anchor(box, anchor) for box, anchor in zip(boxes, wanted, strict=True)]
    points = projector.locate(np.array([anchor_pixel(b, a) for b, a in zip(boxes, effective, strict=True)]))
    placed = [i for i, point in enumerate(points) if isinstance(point, GroundPosition)]
    found = dict(
        zip(
            placed,
            projector.footprints(boxes[placed], [effective[i] for i in placed], [heights[i] for i in placed]),
            strict=True,
        )
    )
    out: list[Geotag | NoLocation] = []
    for i, point in enumerate(points):
        if not isinstance(point, GroundPosition):
            out.append(point)
            continue
        footprint = found[i]
        out.append(
            Geotag(
                point=point,
                anchor=effective[i],
                source=projector.source,  # type: ignore[arg-type]
                footprint=None if isinstance(footprint, NoLocation) else footprint,
                footprint_reason=footprint.reason if isinstance(footprint, NoLocation) else None,
            )
        )
    return out
