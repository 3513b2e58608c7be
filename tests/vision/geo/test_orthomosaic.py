"""Orthomosaic GeoTIFFs: windowed tiles, a fake detector, boxes back to WGS-84 polygons and areas."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from affine import Affine
from pyproj import Geod, Transformer

from tests.vision.fakes import FAKE_LABELS, TINY_LABEL_MAP, PaintedBoxDetector
from tests.vision.geo.conftest import write_geotiff
from vision.batcher import BatcherConfig
from vision.geo.georeference import georeference_image, locate_points
from vision.geo.orthomosaic import (
    OrthomosaicError,
    OrthoProjector,
    detect_orthomosaic,
    iter_tiles,
    tile_detections_to_geotags,
)
from vision.geo.types import Geotag
from vision.model_card import ModelCard
from vision.pipeline import Pipeline, TilingConfig

GEOD = Geod(ellps="WGS84")
RED_RGB = (255, 0, 0)


def painted_squares_pipeline(tile_size: int, overlap: float, batch_size: int, **tiling: Any) -> Pipeline:
    """The pipeline over a real detector of painted squares (pure red: label "garbage")."""
    card = ModelCard(name="painted", version="1", sha256="0" * 64, input_size=tile_size,
                     labels=list(FAKE_LABELS), label_map=dict(TINY_LABEL_MAP), thresholds={})
    return Pipeline(PaintedBoxDetector(input_size=tile_size, max_batch=batch_size), card,
                    batcher=BatcherConfig(max_batch=batch_size, max_wait_ms=1),
                    tiling=TilingConfig(tile_size=tile_size, overlap=overlap, **tiling))


def canvas(width: int, height: int, squares: list[tuple[int, int, int]]) -> np.ndarray:
    image = np.full((height, width, 3), (70, 110, 60), np.uint8)
    for x, y, size in squares:
        image[y : y + size, x : x + size] = RED_RGB
    return image


def geodesic_area(lonlat_ring: list[tuple[float, float]]) -> float:
    lons, lats = zip(*lonlat_ring, strict=True)
    area, _ = GEOD.polygon_area_perimeter(lons, lats)
    return abs(area)


# Squares (x, y, size in px); the second one straddles the seam between the first two tiles.
SQUARES = [(100, 100, 100), (380, 300, 100), (900, 650, 60)]


@pytest.mark.parametrize("crs", ["EPSG:32650", "EPSG:4326"])
def test_tiles_to_polygons_with_a_fake_detector(tmp_path: Path, crs: str) -> None:
    if crs == "EPSG:32650":  # UTM 50N, 0.1 m pixels near Hefei
        transform = Affine(0.1, 0, 522_000.0, 0, -0.1, 3_521_000.0)
    else:  # about 0.1 m pixels in degrees
        transform = Affine(1e-6, 0, 117.2, 0, -1e-6, 31.82)
    path = write_geotiff(tmp_path / "ortho.tif", canvas(1200, 800, SQUARES), crs, transform)
    progress: list[tuple[int, int]] = []
    with painted_squares_pipeline(tile_size=448, overlap=0.25, batch_size=3) as pipeline:
        result = detect_orthomosaic(path, pipeline, on_progress=lambda *p: progress.append(p))
    assert progress == [(done, 12) for done in range(1, 13)]  # streamed window by window
    assert result.tiles == 12  # 4 columns x 3 rows of 448 px with 112 px overlap
    assert len(result.detections) == len(SQUARES)  # the square on the seam merged into one
    to_wgs = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    found = sorted(zip(result.detections.xyxy.tolist(), result.geotags, strict=True))
    for (x, y, size), (box, tag) in zip(sorted(SQUARES), found, strict=True):
        assert box == pytest.approx([x, y, x + size, y + size])
        assert isinstance(tag, Geotag) and tag.footprint is not None
        ring = [
            to_wgs.transform(*(transform @ (cx, cy)))
            for cx, cy in ((x, y), (x + size, y), (x + size, y + size), (x, y + size))
        ]
        truth = geodesic_area(ring)
        assert tag.area_m2 == pytest.approx(truth, rel=0.001)
        lon, lat = to_wgs.transform(*(transform @ (x + size / 2, y + size / 2)))
        _, _, offset = GEOD.inv(lon, lat, tag.point.lon, tag.point.lat)
        assert offset < 0.01
    if crs == "EPSG:32650":
        # 100 px at 0.1 m: 100 m2 up to the UTM scale factor near the central meridian (~0.9996^-2).
        assert found[0][1].area_m2 == pytest.approx(100.0, rel=0.01)  # type: ignore[union-attr]


def test_a_raster_finer_than_the_target_gsd_is_read_in_larger_windows_shrunk_to_tiles(tmp_path: Path) -> None:
    # 2.5 cm pixels; a 1 m garbage pile needs 6.25 cm at 16 px, so each window is shrunk 0.4x
    transform = Affine(0.025, 0, 522_000.0, 0, -0.025, 3_521_000.0)
    path = write_geotiff(tmp_path / "ortho.tif", canvas(1200, 800, SQUARES), "EPSG:32650", transform)
    results = {}
    for ground_sized in (False, True):
        with painted_squares_pipeline(64, 0.25, 8, ground_sized=ground_sized, object_px=16) as pipeline:
            results[ground_sized] = detect_orthomosaic(path, pipeline)
        shapes = pipeline.detector.image_shapes  # type: ignore[attr-defined]
        assert {shape[:2] for shape in shapes} == {(64, 64)}  # model-sized inputs either way
    native, shrunk = results[False], results[True]
    assert (native.window_px, shrunk.window_px) == (64, 160)  # ceil(64 / 0.4)
    assert shrunk.tiles * 4 < native.tiles
    # 0.4 up to UTM's scale factor (pixel_size_m is measured on the ellipsoid)
    assert shrunk.detections.metadata["ground_sampling"]["scale"] == pytest.approx(0.4, rel=1e-3)
    assert len(native.detections) == len(shrunk.detections) == len(SQUARES)
    for (x, y, size), box in zip(sorted(SQUARES), sorted(shrunk.detections.xyxy.tolist()), strict=True):
        # raster pixels, off by less than one shrunk pixel (2.5 raster pixels)
        assert np.abs(np.array(box) - [x, y, x + size, y + size]).max() < 2.5


def test_tiles_are_bgr_windows_with_their_own_transform(tmp_path: Path) -> None:
    transform = Affine(0.5, 0, 400_000.0, 0, -0.5, 3_500_000.0)
    image = canvas(700, 500, [(650, 450, 50)])
    path = write_geotiff(tmp_path / "o.tif", image, "EPSG:32650", transform)
    tiles = list(iter_tiles(path, tile_size=256, overlap=0.0))
    covered = np.zeros((500, 700), int)
    for tile in tiles:
        assert tile.image.dtype == np.uint8 and tile.image.shape == (tile.tile.height, tile.tile.width, 3)
        covered[tile.tile.y : tile.tile.y2, tile.tile.x : tile.tile.x2] += 1
        assert tile.transform == transform @ Affine.translation(tile.tile.x, tile.tile.y)
        np.testing.assert_array_equal(
            tile.image[..., ::-1], image[tile.tile.y : tile.tile.y2, tile.tile.x : tile.tile.x2]
        )
    assert covered.min() >= 1
    # A tile's boxes go through the tile's transform: the same square from the last tile.
    last = tiles[-1]
    dets = PaintedBoxDetector(input_size=256).predict_batch([last.image])[0]
    tag = tile_detections_to_geotags(dets, last.transform, "EPSG:32650")[0]
    assert isinstance(tag, Geotag) and tag.area_m2 == pytest.approx(25.0 * 25.0, rel=0.01)


def test_raster_without_crs_is_refused(tmp_path: Path) -> None:
    import rasterio

    path = tmp_path / "plain.tif"
    with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=3, dtype="uint8") as dst:
        dst.write(np.zeros((3, 10, 10), np.uint8))
    with pytest.raises(OrthomosaicError, match="CRS"):
        list(iter_tiles(path))
    ref = georeference_image(path)
    assert ref.projector is None and any("not an orthomosaic" in r for r in ref.reasons)


def test_geotag_of_an_orthomosaic(tmp_path: Path) -> None:
    transform = Affine(0.1, 0, 522_000.0, 0, -0.1, 3_521_000.0)
    path = write_geotiff(tmp_path / "o.tif", canvas(400, 300, []), "EPSG:32650", transform)
    ref = georeference_image(path)
    assert isinstance(ref.projector, OrthoProjector) and (ref.width, ref.height) == (400, 300)
    points = locate_points(ref)
    lon, lat = Transformer.from_crs("EPSG:32650", "EPSG:4326", always_xy=True).transform(
        522_020.0, 3_520_985.0
    )
    assert (points[0]["lon"], points[0]["lat"]) == pytest.approx((lon, lat), abs=1e-8)
    assert points[0]["uncertainty_m"] == pytest.approx(1.1, abs=0.01)  # 1 m absolute + one pixel
    assert locate_points(ref, np.array([[500.0, 10.0]]))[0]["location"] is None


BIG_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    from vision.geo.orthomosaic import iter_tiles
    import numpy as np
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tiles = red = 0
    for tile in iter_tiles(sys.argv[1], tile_size=2048, overlap=0.0):
        tiles += 1
        red += int(np.count_nonzero(tile.image[..., 2] == 255))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"tiles": tiles, "red": red, "growth_kb": after - before}))
""")


@pytest.mark.slow
def test_20000_square_geotiff_is_read_window_by_window(tmp_path: Path) -> None:
    """A 20000x20000 RGB raster (1.2 GB of pixels) written block by block, iterated in a fresh
    process whose peak RSS must grow by far less than the raster."""
    import rasterio
    from rasterio.windows import Window

    size, block = 20_000, 512
    path = tmp_path / "big.tif"
    squares = [(1000, 1000, 64), (10_240, 7_000, 128), (19_900, 19_900, 100)]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=3,
        dtype="uint8",
        crs="EPSG:32650",
        transform=Affine(0.05, 0, 500_000.0, 0, -0.05, 3_500_000.0),
        tiled=True,
        blockxsize=block,
        blockysize=block,
        compress="deflate",
        sparse_ok=True,
    ) as dst:
        # Only blocks holding a painted square are written; the rest stay sparse (read as zeros).
        for x, y, s in squares:
            s = min(s, size - x, size - y)
            dst.write(
                np.broadcast_to(np.array(RED_RGB, np.uint8)[:, None, None], (3, s, s)),
                window=Window(x, y, s, s),
            )
    assert path.stat().st_size < 5_000_000
    done = subprocess.run(
        [sys.executable, "-c", BIG_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[3],
    )
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["tiles"] == 100
    assert stats["red"] == 64 * 64 + 128 * 128 + 100 * 100
    assert stats["growth_kb"] < 400 * 1024, stats  # vs 1.2 GB of pixels in the raster
