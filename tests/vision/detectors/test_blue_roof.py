"""The blue steel roof rule: finds roofs with their area, rejects each known confusion, reads
its thresholds from data, and runs on real drone files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.ortho_scenes import CONFUSIONS, make_scene
from training.metrics import box_iou
from vision.detectors.blue_roof import DEFAULT_CONFIG, BlueRoofConfig, BlueRoofDetector
from vision.errors import ModelError
from vision.image_io import load_image

SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "geo-samples"


@pytest.fixture(scope="module")
def detector() -> BlueRoofDetector:
    return BlueRoofDetector()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finds_a_roof_with_its_area_and_footprint(detector: BlueRoofDetector, seed: int) -> None:
    scene = make_scene(np.random.default_rng(seed), size_px=1000, gsd_m=0.05, roofs=1, confusions=())
    (roof,) = scene.of_kind("roof")
    found = detector.detect(scene.image, gsd_m=scene.gsd_m)
    assert len(found) == 1
    assert found.class_id.tolist() == [0]
    assert detector.labels == ("blue_steel_roof",)
    assert 0.4 <= float(found.confidence[0]) <= 1.0
    assert float(found.data["area_m2"][0]) == pytest.approx(roof.area_m2, rel=0.03)
    assert box_iou(found.xyxy.astype(np.float64), roof.xyxy[None])[0, 0] > 0.9
    corners = found.data["footprint_xy"][0]
    assert corners.shape == (4, 2)
    # the footprint is the roof's rotated outline, not its axis-aligned box
    truth = {tuple(np.round(c / 5)) for c in roof.polygon_xy}
    assert len(truth & {tuple(np.round(c / 5)) for c in corners}) >= 2


def test_a_roof_under_a_colour_cast_and_haze_is_found(detector: BlueRoofDetector) -> None:
    scene = make_scene(np.random.default_rng(3), size_px=1000, gsd_m=0.05, roofs=1, confusions=())
    warm = scene.image.astype(np.float32) * np.array([0.9, 1.0, 1.1], np.float32)  # BGR: warm balance
    hazy = np.clip(warm * 0.75 + np.array([190, 190, 190], np.float32) * 0.25, 0, 255).astype(np.uint8)
    found = detector.detect(hazy, gsd_m=scene.gsd_m)
    assert len(found) == 1
    assert float(found.data["area_m2"][0]) == pytest.approx(scene.of_kind("roof")[0].area_m2, rel=0.05)


@pytest.mark.parametrize("kind", CONFUSIONS)
@pytest.mark.parametrize("seed", [10, 11])
def test_rejects_each_confusion(detector: BlueRoofDetector, kind: str, seed: int) -> None:
    scene = make_scene(np.random.default_rng(seed), size_px=1000, gsd_m=0.05, roofs=0, confusions=(kind,))
    assert scene.of_kind(kind), f"the scene should hold a {kind}"
    found = detector.detect(scene.image, gsd_m=scene.gsd_m)
    assert len(found) == 0, f"{kind} taken for a roof: {found.xyxy.tolist()}"


def test_a_roof_beside_confusions_is_the_only_finding(detector: BlueRoofDetector) -> None:
    scene = make_scene(
        np.random.default_rng(21), size_px=1200, gsd_m=0.04, roofs=1, confusions=("tarp", "car", "pool")
    )
    assert [o.kind for o in scene.objects] == ["tarp", "car", "pool", "roof"]
    found = detector.detect(scene.image, gsd_m=scene.gsd_m)
    assert len(found) == 1
    assert box_iou(found.xyxy.astype(np.float64), scene.of_kind("roof")[0].xyxy[None])[0, 0] > 0.9


def test_without_a_scale_the_area_floor_is_in_pixels(detector: BlueRoofDetector) -> None:
    scene = make_scene(np.random.default_rng(0), size_px=1000, gsd_m=0.05, roofs=1, confusions=())
    found = detector.detect(scene.image)
    assert len(found) == 1 and np.isnan(found.data["area_m2"]).all()
    strict = BlueRoofDetector(detector.config.model_copy(update={"min_area_px": 10**7}))
    assert len(strict.detect(scene.image)) == 0
    assert len(strict.predict_batch([scene.image, scene.image])) == 2


def test_thresholds_are_data(tmp_path: Path) -> None:
    config = BlueRoofConfig.read()
    assert config == BlueRoofConfig.read(DEFAULT_CONFIG) and config.version
    defaults = DEFAULT_CONFIG.read_text(encoding="utf-8")
    bad = tmp_path / "rule.yaml"
    bad.write_text(defaults.replace("hue_min_deg: 245.0", "hue_min_deg: 320.0"), encoding="utf-8")
    with pytest.raises(ModelError, match="hue_min_deg < hue_max_deg"):
        BlueRoofConfig.read(bad)
    bad.write_text(defaults + "hue_min: 250\n", encoding="utf-8")
    with pytest.raises(ModelError, match="hue_min"):
        BlueRoofConfig.read(bad)
    bad.write_text(defaults.replace("min_area_m2: 15.0\n", ""), encoding="utf-8")
    with pytest.raises(ModelError, match="min_area_m2"):
        BlueRoofConfig.read(bad)


@pytest.mark.parametrize(
    ("image", "gsd", "message"),
    [
        (np.zeros((10, 10), np.uint8), None, "BGR uint8"),
        (np.zeros((10, 10, 3), np.float32), None, "BGR uint8"),
        (np.zeros((10, 10, 3), np.uint8), 0.0, "positive ground sampling distance"),
        (np.zeros((10, 10, 3), np.uint8), float("nan"), "positive ground sampling distance"),
    ],
)
def test_bad_input_is_refused(
    detector: BlueRoofDetector, image: np.ndarray, gsd: float | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        detector.detect(image, gsd_m=gsd)


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/geo-samples (real drone files) is not present")
@pytest.mark.parametrize("name", ["tiny_drone_image.jpg", "100_0005_0018.tif", "orthophoto.tif"])
def test_runs_on_real_drone_files(detector: BlueRoofDetector, name: str) -> None:
    image = load_image(SAMPLES / name)
    found = detector.detect(image.pixels)
    assert found.xyxy.shape[1] == 4
    assert found.data["footprint_xy"].shape == (len(found), 4, 2)
    assert found.metadata["resolution_wh"] == image.resolution_wh
