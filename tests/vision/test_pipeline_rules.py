"""Rules beside the model (vision.rules): the blue roof rule's findings come out of the
pipeline and the orthomosaic path like the model's, on nadir views only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from benchmarks.ortho_scenes import make_scene
from tests.vision.fakes import FAKE_LABELS, TINY_LABEL_MAP, PaintedBoxDetector, paint_box
from tests.vision.geo.conftest import write_geotiff
from training.metrics import box_iou
from vision.batcher import BatcherConfig
from vision.detectors.blue_roof import BlueRoofDetector
from vision.errors import ModelError, UnknownBackendError
from vision.geo.orthomosaic import detect_orthomosaic
from vision.geo.types import Geotag
from vision.model_card import ModelCard
from vision.pipeline import Pipeline, TilingConfig
from vision.rules import RULES, WholeImageRule, load_rules

GARBAGE = 0


def _pipeline(rules: tuple[WholeImageRule, ...] = (), tile: int = 256) -> Pipeline:
    card = ModelCard(
        name="painted",
        version="1",
        sha256="0" * 64,
        input_size=tile,
        labels=list(FAKE_LABELS),
        label_map=dict(TINY_LABEL_MAP),
        thresholds={},
    )
    return Pipeline(
        PaintedBoxDetector(input_size=tile, max_batch=4),
        card,
        rules=rules,
        batcher=BatcherConfig(max_batch=4, max_wait_ms=1),
        tiling=TilingConfig(ground_sized=False),
    )


@pytest.fixture(scope="module")
def scene_with_garbage() -> tuple[np.ndarray, np.ndarray]:
    """A nadir scene (5 cm/px) with one blue roof, plus a painted 'garbage' box; the roof's box."""
    scene = make_scene(np.random.default_rng(0), size_px=1000, gsd_m=0.05, roofs=1, confusions=())
    image = scene.image.copy()
    paint_box(image, (20, 20, 60, 60), GARBAGE, 0.9)
    return image, scene.of_kind("roof")[0].xyxy


def test_a_drone_view_gets_the_rule_findings_beside_the_model(scene_with_garbage: tuple) -> None:
    image, roof_xyxy = scene_with_garbage
    with _pipeline(load_rules(["blue_roof"])) as pipe:
        found = pipe.detect(image, source="drone", gsd_m=0.05)
    assert sorted(found.data["class_key"].tolist()) == ["blue_steel_roof", "garbage_pile"]
    roof = found[found.data["class_key"] == "blue_steel_roof"]
    assert box_iou(roof.xyxy.astype(np.float64), roof_xyxy[None])[0, 0] > 0.9
    assert roof.data["class_name"].tolist() == ["blue_steel_roof"]
    assert 50 < float(roof.data["area_m2"][0]) < 700
    # the model's box has a footprint too: its corners, area unknown
    garbage = found[found.data["class_key"] == "garbage_pile"]
    assert garbage.data["footprint_xy"][0].tolist() == [[20, 20], [60, 20], [60, 60], [20, 60]]
    assert np.isnan(garbage.data["area_m2"][0])
    assert found.metadata["rules"] == [BlueRoofDetector().name]


@pytest.mark.parametrize("source", ["citizen", "camera", "unknown"])
def test_rules_skip_views_that_are_not_nadir(scene_with_garbage: tuple, source: str) -> None:
    image, _ = scene_with_garbage
    with _pipeline(load_rules(["blue_roof"])) as pipe:
        found = pipe.detect(image, source=source)  # type: ignore[arg-type]
    assert found.data["class_key"].tolist() == ["garbage_pile"]


def test_without_rules_findings_are_as_before(scene_with_garbage: tuple) -> None:
    image, _ = scene_with_garbage
    with _pipeline() as pipe:
        found = pipe.detect(image, source="drone", gsd_m=0.05)
    assert found.data["class_key"].tolist() == ["garbage_pile"]
    assert "footprint_xy" not in found.data and "rules" not in found.metadata


def test_an_unknown_rule_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownBackendError, match="valid rules: blue_roof"):
        load_rules(["red_roof"])
    assert set(RULES) == {"blue_roof"}


def test_a_rule_reporting_an_unknown_class_is_refused() -> None:
    class Odd(BlueRoofDetector):
        @property
        def labels(self) -> tuple[str, ...]:
            return ("green_roof",)

    with pytest.raises(ModelError, match="green_roof"):
        _pipeline((Odd(),))


def test_an_orthomosaic_gets_the_rule_findings_in_raster_pixels(tmp_path: Path) -> None:
    """A roof straddling the model's 256 px tiles is found whole by the rule's own pass."""
    scene = make_scene(np.random.default_rng(1), size_px=1000, gsd_m=0.05, roofs=1, confusions=("car",))
    roof = scene.of_kind("roof")[0]
    origin_e, origin_n = 500_000.0, 3_400_000.0
    path = write_geotiff(
        tmp_path / "ortho.tif",
        scene.image[..., ::-1].copy(),
        "EPSG:32650",
        Affine(0.05, 0, origin_e, 0, -0.05, origin_n),
    )
    with _pipeline(load_rules(["blue_roof"])) as pipe:
        result = detect_orthomosaic(path, pipe)
    keys = result.detections.data["class_key"].tolist()
    assert keys == ["blue_steel_roof"]
    assert box_iou(result.detections.xyxy.astype(np.float64), roof.xyxy[None])[0, 0] > 0.9
    tag = result.geotags[0]
    assert isinstance(tag, Geotag) and tag.footprint is not None
    # measured by the rule's rotated outline, not by its (larger) axis-aligned box
    assert tag.footprint.method == "raster_outline"
    assert tag.footprint.area_m2 == pytest.approx(roof.area_m2, rel=0.03)
    box_px = float(np.prod(result.detections.xyxy[0, 2:] - result.detections.xyxy[0, :2]))
    assert box_px * 0.05**2 > tag.footprint.area_m2 * 1.05


SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "geo-samples"


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/geo-samples (real drone files) is not present")
@pytest.mark.parametrize("name", ["100_0005_0018.tif", "tiny_drone_image.jpg"])
def test_real_drone_files_go_through_the_rules_with_their_own_scale(name: str) -> None:
    from vision.image_io import load_image

    image = load_image(SAMPLES / name, kind="drone")
    with _pipeline(load_rules(["blue_roof"])) as pipe:
        found = pipe.detect(image)
    assert found.metadata["rules"] == [BlueRoofDetector().name]
    assert found.metadata["source_kind"] == "drone"
    assert found.data["footprint_xy"].shape == (len(found), 4, 2)
