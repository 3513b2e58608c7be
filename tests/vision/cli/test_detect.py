"""`patrol detect`: inputs, JSON lines, per-file errors, exit codes, annotated images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from patrol_cli.main import app
from tests.vision.cli.conftest import IMAGE_SIZES
from vision.annotate import Annotator
from vision.cli.detect import expand_inputs
from vision.detections import Detections
from vision.taxonomy import Taxonomy

runner = CliRunner()
RECORD_KEYS = {"file", "width", "height", "model", "model_version", "source_kind", "tiles", "detections",
               "error"}


def _records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _detect(args: list[str], models_dir: Path):
    return runner.invoke(app, ["detect", *args], env={"PATROL_MODELS_DIR": str(models_dir)})


# -- inputs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    (["images"], ["images/a.png", "images/nested/b.jpg", "images/nested/deeper/c.png"]),
    (["images/nested"], ["images/nested/b.jpg", "images/nested/deeper/c.png"]),
    (["images/**/*.png"], ["images/a.png", "images/nested/deeper/c.png"]),
    (["images/a.png", "images/a.png", "images"],
     ["images/a.png", "images/nested/b.jpg", "images/nested/deeper/c.png"]),
    (["images/missing.jpg"], ["images/missing.jpg"]),   # kept, to be reported as not_found
    (["images/*.gif"], []),                              # a pattern matching nothing
    (["images/notes.txt"], ["images/notes.txt"]),        # named explicitly: tried, and fails
])
def test_expand_inputs(image_dir, args, expected, monkeypatch):
    monkeypatch.chdir(image_dir.parent)
    assert [str(p) for p in expand_inputs(args)] == expected


# -- JSON lines -------------------------------------------------------------------------------

def test_one_json_line_per_image_with_the_documented_fields(models_dir, image_dir):
    result = _detect([str(image_dir)], models_dir)
    assert result.exit_code == 0, result.output
    records = _records(result.stdout)
    assert [Path(r["file"]).relative_to(image_dir).as_posix() for r in records] == list(IMAGE_SIZES)
    taxonomy = Taxonomy.default()
    total = 0
    for record in records:
        assert set(record) == RECORD_KEYS
        assert (record["width"], record["height"]) == IMAGE_SIZES[
            Path(record["file"]).relative_to(image_dir).as_posix()]
        assert record["model"] == "default" and record["model_version"] == "2026.11.23-test"
        assert record["error"] is None
        for det in record["detections"]:
            assert set(det) == {"class_key", "name_zh", "score", "box_xyxy"}
            assert det["class_key"] in ("garbage_pile", "straw_burning")  # garbage_bin is a helper
            assert det["name_zh"] == taxonomy.get(det["class_key"]).name_zh
            x1, y1, x2, y2 = det["box_xyxy"]
            assert 0 <= x1 <= x2 <= record["width"] and 0 <= y1 <= y2 <= record["height"]
            assert 0 <= det["score"] <= 1
        total += len(record["detections"])
    assert total > 0  # thresholds are 0 in this card, so the untrained model does report boxes
    assert "patrol detect" in result.stderr  # the summary table


def test_out_file_holds_the_lines_and_stdout_stays_empty(models_dir, image_dir, tmp_path):
    out = tmp_path / "found.jsonl"
    result = _detect([str(image_dir / "a.png"), "--out", str(out)], models_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert [r["file"] for r in _records(out.read_text(encoding="utf-8"))] == [str(image_dir / "a.png")]


def test_bad_files_are_reported_counted_and_do_not_stop_the_run(models_dir, image_dir):
    broken = image_dir / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    missing = image_dir / "missing.jpg"
    result = _detect([str(image_dir / "a.png"), str(broken), str(missing), str(image_dir / "notes.txt"),
                      str(image_dir / "nested")], models_dir)
    assert result.exit_code == 1
    records = _records(result.stdout)
    assert [r["error"]["reason"] if r["error"] else None for r in records] == \
        [None, "corrupt", "not_found", "unsupported_format", None, None]
    for record in records:
        if record["error"]:
            assert record["detections"] == [] and record["width"] is None
            assert record["error"]["detail"]
    assert "failed" in result.stderr and "broken.png" in result.stderr


@pytest.mark.parametrize("tile", ["auto", "on", "off"])
def test_tile_modes_run(models_dir, image_dir, tile):
    result = _detect([str(image_dir / "nested" / "b.jpg"), "--tile", tile, "--batch", "4",
                      "--workers", "1"], models_dir)
    assert result.exit_code == 0, result.output
    assert len(_records(result.stdout)) == 1


def _dji_jpeg(path: Path, size_wh: tuple[int, int]) -> Path:
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" '
           'drone-dji:RelativeAltitude="+80.0"/></rdf:RDF></x:xmpmeta>')
    Image.new("RGB", size_wh, (90, 120, 60)).save(path, "JPEG", xmp=xmp.encode())
    return path


# Model input 128. b.jpg is 320x240 (< 8 x 128), DJI_0001.JPG 200x150 (> 128, < 2 x 128).
@pytest.mark.parametrize("name, args, kind, tiled", [
    ("nested/b.jpg", [], "unknown", False),                        # no XMP: the 8x rule
    ("nested/b.jpg", ["--source", "citizen"], "citizen", False),    # phone photos are never cut
    ("nested/b.jpg", ["--source", "camera"], "camera", False),      # 320 < 8 x 128
    ("nested/b.jpg", ["--source", "camera", "--tile", "on"], "camera", True),
    ("nested/b.jpg", ["--source", "citizen", "--tile", "on"], "citizen", True),
    ("DJI_0001.JPG", [], "drone", True),                            # DJI XMP: tiled beyond 1x
    ("DJI_0001.JPG", ["--source", "unknown"], "unknown", False),
    ("DJI_0001.JPG", ["--tile", "off"], "drone", False),
])
def test_tiling_follows_the_source_kind(models_dir, image_dir, name, args, kind, tiled):
    _dji_jpeg(image_dir / "DJI_0001.JPG", (200, 150))
    result = _detect([str(image_dir / name), *args], models_dir)
    assert result.exit_code == 0, result.output
    (record,) = _records(result.stdout)
    assert record["source_kind"] == kind
    assert (record["tiles"] > 1) == tiled


def test_a_drone_photo_is_shrunk_to_its_target_gsd_unless_native_resolution_is_asked(models_dir, image_dir):
    pose = {"GpsLatitude": 39.9, "GpsLongitude": 116.4, "RelativeAltitude": "+4.0", "GimbalYawDegree": 0.0,
            "GimbalPitchDegree": -90.0, "CalibratedFocalLength": 400.0}  # 1 cm per pixel
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" '
           + " ".join(f'drone-dji:{k}="{v}"' for k, v in pose.items()) + "/></rdf:RDF></x:xmpmeta>")
    path = image_dir / "DJI_0002.JPG"
    Image.new("RGB", (600, 450), (90, 120, 60)).save(path, "JPEG", xmp=xmp.encode())
    tiles = {}
    for args in ([], ["--native-resolution"]):
        result = _detect([str(path), *args], models_dir)
        assert result.exit_code == 0, result.output
        (record,) = _records(result.stdout)
        tiles[bool(args)] = record["tiles"]
    # 128 px tiles: 6 x 5 at native; shrunk 0.32x to 3.125 cm/px (1 m garbage piles at 32 px), 2 x 2
    assert tiles == {True: 30, False: 4}


@pytest.mark.parametrize("args", [["--tile", "sometimes"], ["--batch", "0"], ["--workers", "0"],
                                  ["--source", "phone"]])
def test_bad_options_are_usage_errors(models_dir, image_dir, args):
    result = _detect([str(image_dir), *args], models_dir)
    assert result.exit_code == 2
    assert _records(result.stdout) == []


# -- models -----------------------------------------------------------------------------------

def test_no_installed_model_is_exit_code_2_with_a_clear_message(image_dir, tmp_path):
    result = _detect([str(image_dir)], tmp_path / "empty-models")
    assert result.exit_code == 2
    assert "no trained default model is installed" in result.stderr
    assert result.stdout == ""


def test_model_given_by_folder_path(models_dir, image_dir):
    result = runner.invoke(app, ["detect", str(image_dir / "a.png"), "--model", str(models_dir / "default")],
                           env={"PATROL_MODELS_DIR": str(image_dir)})  # registry elsewhere: path wins
    assert result.exit_code == 0, result.output
    assert _records(result.stdout)[0]["model"] == "default"


# -- annotation -------------------------------------------------------------------------------

def test_annotate_writes_one_drawn_image_per_readable_file(models_dir, image_dir, tmp_path):
    out_dir = tmp_path / "drawn"
    result = _detect([str(image_dir), str(image_dir / "missing.jpg"), "--annotate", str(out_dir)], models_dir)
    assert result.exit_code == 1  # the missing file
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == ["a.png", "b.jpg", "c.png"]
    for name, rel in zip(written, ["a.png", "nested/b.jpg", "nested/deeper/c.png"], strict=True):
        with Image.open(out_dir / name) as drawn, Image.open(image_dir / rel) as original:
            assert drawn.size == original.size
            # boxes were found (thresholds 0), so drawing changed pixels
            assert np.any(np.asarray(drawn.convert("RGB"), np.int16) != np.asarray(original.convert("RGB"),
                                                                                np.int16))


def _one_finding(key: str) -> Detections:
    return Detections(xyxy=[[20, 30, 120, 90]], confidence=[0.87], class_id=[0],
                      data={"class_key": np.array([key])})


def test_annotator_draws_the_box_in_the_taxonomy_colour():
    image = np.zeros((160, 200, 3), np.uint8)
    drawn = np.asarray(Annotator(font_path=None).draw(image, _one_finding("blue_steel_roof")))
    assert tuple(drawn[60, 20]) == (0x1F, 0x77, 0xB4)   # left edge of the box, RGB of #1F77B4
    assert tuple(drawn[60, 70]) == (0, 0, 0)            # inside the box: untouched
    assert not image.any()                               # the input is not drawn on


@pytest.mark.parametrize("font, expected", [
    (None, "garbage_pile 0.87"),
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "garbage_pile 垃圾堆 0.87"),
])
def test_label_text_has_chinese_name_only_with_a_chosen_font(font, expected):
    if font is not None and not Path(font).is_file():
        pytest.skip(f"{font} is not installed")
    assert Annotator(font_path=font).label("garbage_pile", 0.8712) == expected


def test_missing_font_file_is_an_error():
    with pytest.raises(FileNotFoundError, match="expected a font file"):
        Annotator(font_path="/nonexistent/font.ttc")


# -- GeoJSON ----------------------------------------------------------------------------------

def test_geojson_places_findings_of_a_gps_photo_and_keeps_unlocated_ones(models_dir, image_dir, tmp_path):
    from tests.vision.geo.conftest import dms, write_jpeg

    phone = write_jpeg(tmp_path / "phone.jpg", (320, 240),
                       gps={1: "N", 2: dms(30.25), 3: "E", 4: dms(120.125)})
    out = tmp_path / "found.geojson"
    result = _detect([str(phone), str(image_dir / "a.png"), "--geojson", str(out)], models_dir)
    assert result.exit_code == 0, result.output
    per_file = {r["file"]: len(r["detections"]) for r in _records(result.stdout)}
    assert all(per_file.values())  # thresholds are 0: both files have findings to place
    collection = json.loads(out.read_text(encoding="utf-8"))
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert len(features) == sum(per_file.values())
    for feature in features:
        props = feature["properties"]
        assert props["class"] in ("garbage_pile", "straw_burning")
        if props["image"] == str(phone):
            lon, lat = feature["geometry"]["coordinates"]
            assert (lon, lat) == pytest.approx((120.125, 30.25), abs=1e-6)
            assert props["source"] == "citizen"
        else:
            assert props["image"] == str(image_dir / "a.png")
            assert feature["geometry"] is None
            assert props["no_location_reason"]


# -- video ------------------------------------------------------------------------------------

VIDEO_KEYS = RECORD_KEYS | {"frame_time_s", "frame_index"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from tests.vision.clips import write_clip

    return write_clip(tmp_path_factory.mktemp("video") / "tower.mp4", seconds=4, fps=10, keyframe_every=10)


@pytest.mark.parametrize("args, times", [
    (["--every", "1"], [0.0, 1.0, 2.0, 3.0]),
    (["--every", "0.5", "--frames", "3"], [0.0, 0.5, 1.0]),
    (["--every", "2", "--keyframes"], [0.0, 2.0]),
])
def test_a_video_gives_one_line_per_analysed_frame_with_its_time(models_dir, image_dir, clip, args, times):
    result = _detect([str(clip), str(image_dir / "a.png"), *args], models_dir)
    assert result.exit_code == 0, result.output
    records = _records(result.stdout)
    assert set(records[0]) == RECORD_KEYS  # images as before, first
    assert records[0]["file"] == str(image_dir / "a.png")
    frames = records[1:]
    assert [r["frame_time_s"] for r in frames] == times
    assert [r["frame_index"] for r in frames] == [round(t * 10) for t in times]
    for record in frames:
        assert set(record) == VIDEO_KEYS and record["file"] == str(clip)
        assert (record["width"], record["height"], record["source_kind"]) == (320, 240, "camera")
        assert record["detections"] and record["error"] is None  # thresholds 0: findings in every frame
    assert "video frames" in result.stderr


def test_video_frames_are_annotated_and_placed_in_geojson_by_their_time(models_dir, clip, tmp_path):
    out, found = tmp_path / "drawn", tmp_path / "found.geojson"
    result = _detect([str(clip), "--every", "2", "--annotate", str(out), "--geojson", str(found)], models_dir)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["tower-t000000.000.jpg", "tower-t000002.000.jpg"]
    assert Image.open(out / "tower-t000002.000.jpg").size == (320, 240)
    features = json.loads(found.read_text(encoding="utf-8"))["features"]
    per_frame = [len(r["detections"]) for r in _records(result.stdout)]
    assert len(features) == sum(per_frame)
    images = {f["properties"]["image"] for f in features}
    assert images == {f"{clip}#t=0.000", f"{clip}#t=2.000"}
    # a camera frame has no EXIF: unplaced without a tower config, and says why
    assert all(f["geometry"] is None and f["properties"]["no_location_reason"] for f in features)


def test_an_unreadable_video_is_reported_and_counted(models_dir, clip, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video " * 100)
    result = _detect([str(broken), str(clip), "--every", "2"], models_dir)
    assert result.exit_code == 1
    records = _records(result.stdout)
    assert records[0]["file"] == str(broken) and records[0]["error"]["reason"] == "unsupported_format"
    assert [r["frame_time_s"] for r in records[1:]] == [0.0, 2.0]  # the next video still ran


@pytest.mark.server
def test_an_rtsp_url_is_read_like_a_file(models_dir, rtsp_stream):
    result = _detect([rtsp_stream.url, "--every", "1", "--frames", "3"], models_dir)
    assert result.exit_code == 0, result.output
    records = _records(result.stdout)
    assert len(records) == 3 and all(r["file"] == rtsp_stream.url for r in records)
    times = [r["frame_time_s"] for r in records]
    assert list(np.diff(times)) == pytest.approx([1.0, 1.0], abs=0.15)
