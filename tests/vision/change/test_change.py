"""The change detector on synthetic epoch pairs written as GeoTIFFs (benchmarks/change_scenes.py):
new sheds found with their areas through misregistration; seasons and moved cars not reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks.change_scenes import EpochPairFiles, make_epoch_pair
from patrol_cli.main import app
from vision.change.detector import DEFAULT_CONFIG, ChangeConfig, ChangeDetector, ChangeResult
from vision.change.registration import MisregistrationError
from vision.errors import GeoError
from vision.geo.orthomosaic import OrthomosaicError
from vision.postprocess import box_iou


@pytest.fixture(scope="module")
def detector() -> ChangeDetector:
    return ChangeDetector()


def run(detector: ChangeDetector, pair: EpochPairFiles, dsm: bool = False) -> ChangeResult:
    result, _ = detector.run(
        pair.before,
        pair.after,
        dsm_before=pair.dsm_before if dsm else None,
        dsm_after=pair.dsm_after if dsm else None,
    )
    return result


def matched(result: ChangeResult, pair: EpochPairFiles) -> list[tuple[int, int]]:
    """(finding, new structure) pairs whose boxes overlap with IoU >= 0.5."""
    found = result.detections
    pairs = []
    for j, obj in enumerate(pair.new):
        iou = box_iou(obj.xyxy, found.xyxy.astype(np.float64)) if len(found) else np.zeros(1)
        if len(found) and iou.max() >= 0.5:
            pairs.append((int(iou.argmax()), j))
    return pairs


@pytest.mark.parametrize("dsm", [False, True], ids=["appearance", "dsm"])
def test_new_sheds_under_1_5_m_misregistration_found_with_their_area(
    tmp_path: Path, detector: ChangeDetector, dsm: bool
) -> None:
    pair = make_epoch_pair(np.random.default_rng(2), tmp_path, shift_m=1.5, new_sheds=2, dsm=True)
    result = run(detector, pair, dsm)
    assert result.registration.shift_m == pytest.approx(1.5, abs=0.1)
    measured = np.array(result.registration.shift_px) * pair.gsd_m
    assert np.linalg.norm(measured - np.array(pair.shift_px) * pair.gsd_m) < 0.1
    hits = matched(result, pair)
    assert len(pair.new) == 2 and sorted(j for _, j in hits) == [0, 1]
    assert len(result.detections) == 2  # nothing else: not the moved car, not the season
    for i, j in hits:
        assert result.detections.data["area_m2"][i] == pytest.approx(pair.new[j].area_m2, rel=0.1)
        assert result.detections.data["class_key"][i] == "illegal_structure"
    if dsm:
        assert set(result.detections.data["kind"]) == {"height_gain"}
        assert (result.detections.data["height_gain_m"] >= 2.0).all()


def test_each_change_carries_both_epochs_crops_of_the_same_place(
    tmp_path: Path, detector: ChangeDetector
) -> None:
    pair = make_epoch_pair(np.random.default_rng(2), tmp_path, shift_m=1.0, new_sheds=1, seasonal=False)
    found = run(detector, pair).detections
    assert len(found) == 1 and found.data["kind"][0] in ("appearance", "new_blue_roof")
    before, after = found.data["crop_before"][0], found.data["crop_after"][0]
    assert before.shape == after.shape and before.shape[0] > 40 and before.shape[2] == 3
    # co-registered: the ground around the shed agrees (noise only); the shed is in the later crop only
    diff = np.abs(before.astype(int) - after.astype(int)).mean(axis=2)
    h, w = diff.shape
    assert np.median(np.concatenate([diff[:5].ravel(), diff[-5:].ravel()])) < 8
    assert np.median(diff[h // 2 - 5 : h // 2 + 5, w // 2 - 5 : w // 2 + 5]) > 30


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_a_seasonal_colour_change_and_a_moved_car_are_not_reported(
    tmp_path: Path, detector: ChangeDetector, seed: int
) -> None:
    pair = make_epoch_pair(np.random.default_rng(seed), tmp_path, shift_m=1.0, new_sheds=0, dsm=True)
    assert len(pair.moved) == 2  # the car where it was and where it is
    assert len(run(detector, pair).detections) == 0
    assert len(run(detector, pair, dsm=True).detections) == 0


def test_an_epoch_shifted_beyond_the_limit_is_refused(tmp_path: Path, detector: ChangeDetector) -> None:
    pair = make_epoch_pair(np.random.default_rng(4), tmp_path, shift_m=4.0, new_sheds=0)
    with pytest.raises(MisregistrationError, match=r"4\.\d+ m apart, more than the 3 m allowed"):
        run(detector, pair)


def test_one_dsm_without_the_other_is_refused(tmp_path: Path, detector: ChangeDetector) -> None:
    pair = make_epoch_pair(np.random.default_rng(5), tmp_path, new_sheds=0, dsm=True)
    with pytest.raises(OrthomosaicError, match="a DSM for both epochs or for neither"):
        detector.run(pair.before, pair.after, dsm_before=pair.dsm_before)


def test_epochs_that_do_not_overlap_are_refused(tmp_path: Path, detector: ChangeDetector) -> None:
    a = make_epoch_pair(np.random.default_rng(6), tmp_path / "a", size_px=200, new_sheds=0, move_car=False)
    b = make_epoch_pair(
        np.random.default_rng(7), tmp_path / "b", size_px=200, new_sheds=0, move_car=False, shift_m=500.0
    )
    with pytest.raises(OrthomosaicError, match="do not overlap"):
        detector.run(a.before, b.after)


def test_patrol_changes_writes_geojson_with_footprints_and_evidence(tmp_path: Path) -> None:
    pair = make_epoch_pair(np.random.default_rng(2), tmp_path, shift_m=1.5, new_sheds=2, dsm=True)
    out = tmp_path / "changes.geojson"
    result = CliRunner().invoke(
        app,
        [
            "changes",
            str(pair.before),
            str(pair.after),
            "--dsm-before",
            str(pair.dsm_before),
            "--dsm-after",
            str(pair.dsm_after),
            "--out",
            str(out),
            "--evidence",
            str(tmp_path / "ev"),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert (
        summary["changes"] == 2 and summary["uses_dsm"] and summary["shift_m"] == pytest.approx(1.5, abs=0.1)
    )
    features = json.loads(out.read_text(encoding="utf-8"))["features"]
    areas = sorted(f["properties"]["area_m2"] for f in features)
    truth = sorted(o.area_m2 for o in pair.new)
    assert areas == pytest.approx(truth, rel=0.15)  # the footprint's rectangle, in WGS-84 m²
    for f in features:
        props = f["properties"]
        assert props["class"] == "illegal_structure" and props["footprint"]["type"] == "Polygon"
        assert Path(props["crop_before"]).is_file() and Path(props["crop_after"]).is_file()


def test_patrol_changes_exits_2_naming_an_unreadable_raster(tmp_path: Path) -> None:
    pair = make_epoch_pair(np.random.default_rng(8), tmp_path, size_px=200, new_sheds=0)
    result = CliRunner().invoke(
        app,
        ["changes", str(pair.before), str(tmp_path / "missing.tif"), "--out", str(tmp_path / "x.geojson")],
    )
    assert result.exit_code == 2
    assert "missing.tif: cannot open as a raster" in result.output


def test_patrol_changes_exits_2_on_one_dsm_without_the_other(tmp_path: Path) -> None:
    """The CLI leaves the both-or-neither rule to EpochFiles: refused before a raster is read."""
    result = CliRunner().invoke(
        app,
        ["changes", "a.tif", "b.tif", "--dsm-before", "a_dsm.tif", "--out", str(tmp_path / "x.geojson")],
    )
    assert result.exit_code == 2
    assert "a DSM for both epochs or for neither" in result.output


def test_small_windows_find_the_same_changes_as_one_window(tmp_path: Path, detector: ChangeDetector) -> None:
    """Windows of 40 m overlapping by 28 m (9 over the 80 m pair): each shed is seen whole by some
    window and reported once, as by a single window over all of it."""
    pair = make_epoch_pair(np.random.default_rng(2), tmp_path, shift_m=1.5, new_sheds=2, dsm=True)
    small = ChangeDetector(detector.config.model_copy(update={"window_m": 40.0, "overlap_m": 28.0}))
    whole, windowed = run(detector, pair, dsm=True), run(small, pair, dsm=True)
    assert windowed.windows > 4 and whole.windows == 1
    assert len(windowed.detections) == len(whole.detections) == 2
    order = np.argsort(whole.detections.xyxy[:, 0]), np.argsort(windowed.detections.xyxy[:, 0])
    np.testing.assert_allclose(windowed.detections.xyxy[order[1]], whole.detections.xyxy[order[0]], atol=1.0)


def test_benchmark_reports_the_keys_the_issue_asks_for() -> None:
    from benchmarks.changes import run as benchmark

    result = benchmark(1, 0)
    assert {"precision", "recall", "registration_error_m"} <= set(result)
    assert 0 <= float(result["precision"]) <= 1 and 0 <= float(result["recall"]) <= 1  # type: ignore[arg-type]
    assert float(result["registration_error_m"]) < 0.1  # type: ignore[arg-type]


def test_thresholds_with_an_overlap_as_wide_as_the_window_are_refused(tmp_path: Path) -> None:
    text = DEFAULT_CONFIG.read_text(encoding="utf-8").replace("overlap_m: 40.0", "overlap_m: 120.0")
    path = tmp_path / "change.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(GeoError, match="expected overlap_m < window_m, got 120.0 and 120.0"):
        ChangeConfig.read(path)


def test_a_finer_survey_is_compared_at_the_working_gsd(tmp_path: Path, detector: ChangeDetector) -> None:
    """5 cm rasters are averaged to the working 10 cm: windows half as many pixels a side, the
    same sheds with the same square metres, boxes in the coarser grid."""
    pair = make_epoch_pair(
        np.random.default_rng(2), tmp_path, size_px=1200, gsd_m=0.05, shift_m=1.0, new_sheds=2, dsm=True
    )
    result, grid = detector.run(pair.before, pair.after, dsm_before=pair.dsm_before, dsm_after=pair.dsm_after)
    assert grid.pixel_m == pytest.approx(0.1) and (grid.width, grid.height) == (600, 600)
    assert result.registration.shift_m == pytest.approx(1.0, abs=0.1)
    found = result.detections
    assert len(found) == 2
    for obj in pair.new:
        iou = box_iou(obj.xyxy / 2, found.xyxy.astype(np.float64))
        assert iou.max() >= 0.5
        assert found.data["area_m2"][int(iou.argmax())] == pytest.approx(obj.area_m2, rel=0.1)
