"""Ground sampling distance (metres of ground per pixel) of a drone photo, from its pose.

A nadir photo's GSD is nearly the same everywhere (height / focal length in pixels); an
oblique one's grows towards the horizon. Resampling to a target GSD must keep the coarsest
part of the photo fine enough, so the GSD reported here is the coarsest one over a 3x3 grid
of points spanning the frame, each measured as the longer ground step of one pixel right and
one pixel down. A photo where any of those points sees no ground within range (the horizon,
the sky) has no usable GSD: None, and it stays at native resolution.
"""

from __future__ import annotations

import numpy as np

from vision.geo.frame_projector import FrameProjector
from vision.image_io import LoadedImage

GRID = (0.0, 0.5, 1.0)  # fractions of the width and height sampled


def frame_gsd_m(projector: FrameProjector) -> float | None:
    """The coarsest metres per pixel over the frame; None when part of it sees no ground."""
    intr = projector.camera.intrinsics
    # Inset half a pixel so the samples and their neighbours lie on the sensor.
    xs = [min(max(f * intr.width, 0.5), intr.width - 1.5) for f in GRID]
    ys = [min(max(f * intr.height, 0.5), intr.height - 1.5) for f in GRID]
    here = np.array([(x, y) for y in ys for x in xs], np.float64)
    pixels = np.concatenate([here, here + (1.0, 0.0), here + (0.0, 1.0)])
    ground = projector.ground_enu(pixels)
    if not np.isfinite(ground).all():
        return None
    n = len(here)
    step_x = np.linalg.norm(ground[n:2 * n, :2] - ground[:n, :2], axis=1)
    step_y = np.linalg.norm(ground[2 * n:, :2] - ground[:n, :2], axis=1)
    gsd = float(np.maximum(step_x, step_y).max())
    return gsd if gsd > 0 else None


def photo_gsd_m(image: LoadedImage) -> float | None:
    """The GSD of a photo whose metadata gives a drone camera pose (vision.geo.georeference);
    None for any other photo (a phone's GPS gives a position, not a view)."""
    from vision.geo.georeference import georeference_metadata

    projector = georeference_metadata(image.metadata, image.name).projector
    return frame_gsd_m(projector) if isinstance(projector, FrameProjector) else None
