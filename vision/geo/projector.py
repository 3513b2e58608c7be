"""What every pixel -> ground model offers, whatever the imagery (phone, drone, tower, orthomosaic)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vision.geo.types import Footprint, GroundAnchor, GroundPosition, NoLocation
from vision.taxonomy import HeightPrior


@runtime_checkable
class GroundProjector(Protocol):
    @property
    def source(self) -> str:
        """What the image is (vision.sources.SourceKind): citizen, drone, camera or orthomosaic."""
        ...

    def locate(self, pixels_xy: np.ndarray) -> list[GroundPosition | NoLocation]:
        """(N, 2) source-image pixels -> one ground position (or the reason for none) each."""
        ...

    def effective_anchor(self, xyxy: np.ndarray, anchor: GroundAnchor) -> GroundAnchor:
        """The anchor that applies to this box in this view (e.g. "center" for top-down views)."""
        ...

    def footprint(
        self, xyxy: np.ndarray, anchor: GroundAnchor, height: HeightPrior | None = None
    ) -> Footprint | NoLocation:
        """The ground polygon and area (with its uncertainty where the model knows one) of one
        pixel box; `height` is the class's typical height when it is a standing class."""
        ...

    def footprints(
        self, xyxy: np.ndarray, anchors: Sequence[GroundAnchor], heights: Sequence[HeightPrior | None]
    ) -> list[Footprint | NoLocation]:
        """`footprint` of each of (N, 4) boxes of one image (a model may share work across them)."""
        ...

    def describe(self) -> dict[str, Any]:
        """The camera model as JSON-ready data."""
        ...


def footprint_each(
    projector: GroundProjector,
    xyxy: np.ndarray,
    anchors: Sequence[GroundAnchor],
    heights: Sequence[HeightPrior | None],
) -> list[Footprint | NoLocation]:
    """`footprints` for a model with nothing to share across boxes: one `footprint` each."""
    return [projector.footprint(b, a, h) for b, a, h in zip(xyxy, anchors, heights, strict=True)]
