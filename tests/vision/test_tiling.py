"""Tile windows cover the image exactly; objects cut by seams come out once."""

from __future__ import annotations

import numpy as np
import pytest

from tests.vision.fakes import PaintedBoxDetector, paint_box
from vision.detections import Detections
from vision.image_io import load_image, probe_image
from vision.tiling import TileWindow, exceeds_input, merge_tile_detections, tile_windows

# -- windows ------------------------------------------------------------------------------

# resolution_wh, tile, overlap, expected columns x rows; worked out by hand:
# 5472 with tile 640 and overlap 128 -> stride 512: starts 0..4608 (10) + snapped 4832 = 11
WINDOW_CASES = [
    ((5472, 3648), 640, 0.2, (11, 7)),
    ((640, 480), 640, 0.2, (1, 1)),
    ((100, 50), 640, 0.2, (1, 1)),
    ((1280, 640), 640, 0.0, (2, 1)),
    ((1281, 640), 640, 0.0, (3, 1)),
    ((1000, 1000), 512, 0.25, (3, 3)),
    ((700, 2000), (640, 512), 0.1, (2, 5)),
]


@pytest.mark.parametrize("resolution_wh, tile, overlap, grid", WINDOW_CASES)
def test_windows_cover_the_image_exactly_and_stay_inside(resolution_wh, tile, overlap, grid):
    width, height = resolution_wh
    tile_w, tile_h = (tile, tile) if isinstance(tile, int) else tile
    windows = tile_windows(resolution_wh, tile, overlap)
    assert len(windows) == grid[0] * grid[1]
    assert len({w.x for w in windows}) == grid[0]
    assert len({w.y for w in windows}) == grid[1]
    coverage = np.zeros((height, width), np.int32)
    for window in windows:
        assert window.x >= 0 and window.x2 <= width and window.y >= 0 and window.y2 <= height
        assert (window.width, window.height) == (min(tile_w, width), min(tile_h, height))
        coverage[window.y:window.y2, window.x:window.x2] += 1
    assert coverage.min() >= 1
    assert max(w.x2 for w in windows) == width and max(w.y2 for w in windows) == height


@pytest.mark.parametrize("resolution_wh, tile, overlap, grid", WINDOW_CASES)
def test_neighbours_overlap_by_at_least_the_requested_amount(resolution_wh, tile, overlap, grid):
    tile_w, _ = (tile, tile) if isinstance(tile, int) else tile
    xs = sorted({w.x for w in tile_windows(resolution_wh, tile, overlap)})
    for left, right in zip(xs, xs[1:], strict=False):
        assert left + tile_w - right >= round(tile_w * overlap)


def test_crop_is_a_view_not_a_copy():
    image = np.zeros((300, 500, 3), np.uint8)
    window = tile_windows((500, 300), 200, 0.1)[4]
    crop = window.crop(image)
    assert crop.shape == (200, 200, 3)
    assert np.shares_memory(crop, image)


@pytest.mark.parametrize("resolution_wh, tile, overlap, match", [
    ((0, 100), 64, 0.2, "resolution"),
    ((100, 100), 0, 0.2, "tile size"),
    ((100, 100), 64, 1.0, "overlap"),
    ((100, 100), 64, -0.1, "overlap"),
])
def test_bad_window_arguments_are_rejected(resolution_wh, tile, overlap, match):
    with pytest.raises(ValueError, match=match):
        tile_windows(resolution_wh, tile, overlap)


def test_window_larger_than_image_cannot_crop():
    with pytest.raises(ValueError, match="expected an image of at least"):
        TileWindow(0, 0, 64, 64).crop(np.zeros((32, 32, 3), np.uint8))


# -- merging, with hand-made per-tile detections ---------------------------------------------

LEFT, RIGHT = TileWindow(0, 0, 600, 400), TileWindow(400, 0, 600, 400)  # shared strip x 400..600


def _dets(boxes, classes, scores=None, names=("a", "b", "c")) -> Detections:
    scores = scores or [0.9] * len(boxes)
    return Detections(xyxy=np.array(boxes, np.float32).reshape(-1, 4), confidence=scores,
                      class_id=classes, data={"class_name": np.array([names[c] for c in classes])})


@pytest.mark.parametrize("left, right, kwargs, expected_xyxy", [
    # cut by the seam: left tile sees 250..600 (ends at its edge), right 400..750 (starts at its edge)
    ([[250, 100, 600, 200]], [[0, 100, 350, 200]], {}, [[250, 100, 750, 200]]),
    # same pieces but different classes: two objects
    ([[250, 100, 600, 200]], [[0, 102, 350, 198]], {"right_class": 1},
     [[250, 100, 600, 200], [400, 102, 750, 198]]),
    # ... unless class-agnostic
    ([[250, 100, 600, 200]], [[0, 102, 350, 198]], {"right_class": 1, "class_agnostic": True},
     [[250, 100, 750, 200]]),
    # seen whole in both tiles (inside the shared strip): NMS keeps one
    ([[420, 50, 580, 150]], [[21, 51, 180, 151]], {}, [[420, 50, 580, 150]]),
    # two different objects side by side in the strip, each seen whole twice: two remain
    ([[410, 50, 480, 150], [520, 50, 590, 150]], [[10, 50, 80, 150], [120, 50, 190, 150]], {},
     [[410, 50, 480, 150], [520, 50, 590, 150]]),
    # a small object inside the strip beside a big cut one: not swallowed by the big one
    ([[250, 100, 600, 300]], [[0, 100, 350, 300], [60, 120, 90, 140]], {},
     [[250, 100, 750, 300], [460, 120, 490, 140]]),
    # vertical pieces that do not line up (different objects at the seam): not merged
    ([[300, 10, 600, 60]], [[0, 200, 300, 260]], {}, [[300, 10, 600, 60], [400, 200, 700, 260]]),
])
def test_seam_merge_table(left, right, kwargs, expected_xyxy):
    right_class = kwargs.pop("right_class", 0)
    per_tile = [(LEFT, _dets(left, [0] * len(left))),
                (RIGHT, _dets(right, [right_class] * len(right)))]
    merged = merge_tile_detections(per_tile, **kwargs)
    got = sorted(merged.xyxy.tolist())
    assert got == sorted(np.array(expected_xyxy, np.float32).tolist())
    assert merged.metadata["tiles"] == 2


def test_merged_box_keeps_the_best_score_and_its_extras():
    per_tile = [(LEFT, _dets([[250, 100, 600, 200]], [0], [0.4], names=("weak", "", ""))),
                (RIGHT, _dets([[0, 100, 350, 200]], [0], [0.8], names=("strong", "", "")))]
    merged = merge_tile_detections(per_tile)
    assert len(merged) == 1
    assert merged.confidence[0] == pytest.approx(0.8)
    assert merged.data["class_name"].tolist() == ["strong"]


def test_abutting_tiles_without_overlap_still_merge_a_cut_object():
    left, right = TileWindow(0, 0, 500, 300), TileWindow(500, 0, 500, 300)
    per_tile = [(left, _dets([[400, 50, 500, 150]], [0])), (right, _dets([[0, 52, 80, 149]], [0]))]
    merged = merge_tile_detections(per_tile)
    assert merged.xyxy.tolist() == [[400, 50, 580, 150]]


def test_boxes_from_tiles_that_do_not_touch_are_never_merged():
    far = TileWindow(2000, 0, 600, 400)
    per_tile = [(LEFT, _dets([[250, 100, 600, 200]], [0])), (far, _dets([[0, 100, 350, 200]], [0]))]
    assert len(merge_tile_detections(per_tile)) == 2


@pytest.mark.parametrize("per_tile", [[], [(LEFT, Detections.empty()), (RIGHT, Detections.empty())]])
def test_no_detections_merge_to_empty(per_tile):
    merged = merge_tile_detections(per_tile)
    assert len(merged) == 0


# -- end to end: a real detector of painted objects, run tile by tile -----------------------

def _detect_tiled(image: np.ndarray, tile: int, overlap: float) -> Detections:
    detector = PaintedBoxDetector()
    height, width = image.shape[:2]
    windows = tile_windows((width, height), tile, overlap)
    per_tile = list(zip(windows, detector.predict_batch([w.crop(image) for w in windows]), strict=True))
    return merge_tile_detections(per_tile)


@pytest.mark.parametrize("resolution_wh, tile, overlap, objects", [
    # one object across the vertical seam of two tiles
    ((1000, 600), 600, 0.2, [((250, 100, 750, 300), 0)]),
    # one object across the corner where four tiles meet
    ((1000, 1000), 600, 0.2, [((300, 300, 700, 700), 2)]),
    # an object longer than a tile, cut by four seams
    ((2000, 500), 500, 0.2, [((100, 100, 1900, 300), 1)]),
    # several objects: one cut, one whole inside a strip, one far from any seam
    ((1000, 600), 600, 0.2, [((250, 100, 750, 200), 0), ((450, 400, 550, 500), 0),
                             ((20, 20, 120, 80), 1)]),
])
def test_objects_cut_by_seams_are_reported_once_with_their_true_box(resolution_wh, tile, overlap, objects):
    width, height = resolution_wh
    image = np.zeros((height, width, 3), np.uint8)
    for xyxy, label in objects:
        paint_box(image, xyxy, label, score=0.8)
    assert len(tile_windows(resolution_wh, tile, overlap)) > 1
    found = _detect_tiled(image, tile, overlap)
    assert sorted(zip(found.xyxy.tolist(), found.class_id.tolist(), strict=True)) == sorted(
        ([float(v) for v in xyxy], label) for xyxy, label in objects)
    assert np.allclose(found.confidence, 0.8, atol=0.01)


# -- when to tile ---------------------------------------------------------------------------

@pytest.mark.parametrize("resolution_wh, input_size, factor, expected", [
    ((4000, 3000), 320, None, False),   # no factor: never
    ((640, 480), 640, 1.0, False),      # equal to the input is not larger
    ((641, 480), 640, 1.0, True),
    ((480, 641), 640, 1.0, True),       # the longer side counts, whichever it is
    ((1280, 720), 640, 2.0, False),
    ((1281, 720), 640, 2.0, True),
    ((1920, 1080), 640, 3.0, False),
    ((1921, 1080), 640, 3.0, True),
])
def test_the_factor_rule(resolution_wh, input_size, factor, expected):
    assert exceeds_input(resolution_wh, input_size, factor) == expected


def test_a_factor_below_one_is_refused():
    with pytest.raises(ValueError, match="factor >= 1"):
        exceeds_input((100, 100), 64, 0.5)


DJI = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       '<rdf:Description xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" '
       'drone-dji:GimbalPitchDegree="-90.0"/>'
       '</rdf:RDF></x:xmpmeta>')
ADOBE = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
         '<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Photoshop"/>'
         '</rdf:RDF></x:xmpmeta>')
ENTITY_BOMB = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
               '<x:xmpmeta xmlns:x="adobe:ns:meta/">&a;</x:xmpmeta>')


def _encoded(fmt: str, xmp: str | None) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    image = Image.new("RGB", (32, 24))
    if xmp is None:
        image.save(buffer, fmt)
    elif fmt == "TIFF":
        image.save(buffer, fmt, tiffinfo={700: xmp.encode()})
    else:
        image.save(buffer, fmt, xmp=xmp.encode())
    return buffer.getvalue()


@pytest.mark.parametrize("fmt, xmp, default, expected", [
    ("JPEG", DJI, "unknown", "drone"),
    ("TIFF", DJI, "unknown", "drone"),        # XMP in TIFF tag 700
    ("JPEG", DJI, "citizen", "drone"),        # DJI XMP wins over the caller's default
    ("JPEG", ADOBE, "citizen", "citizen"),    # XMP, but not a drone's
    ("JPEG", None, "unknown", "unknown"),
    ("PNG", None, "camera", "camera"),
    ("JPEG", ENTITY_BOMB, "unknown", "unknown"),  # refused by defusedxml: not a drone, no crash
])
def test_the_source_reader_sniffs_the_kind_from_bytes_and_files(tmp_path, fmt, xmp, default, expected):
    data = _encoded(fmt, xmp)
    assert load_image(data, default_kind=default).kind == expected
    path = tmp_path / f"image.{fmt.lower()}"
    path.write_bytes(data)
    assert load_image(path, default_kind=default).kind == expected
    assert probe_image(str(path), default_kind=default).kind == expected  # header only


def test_an_explicit_kind_is_kept_whatever_the_file_says():
    assert load_image(_encoded("JPEG", DJI), kind="citizen").kind == "citizen"


def test_a_refused_xmp_packet_says_why():
    meta = load_image(_encoded("JPEG", ENTITY_BOMB)).metadata
    assert meta.dji == {} and meta.xmp_problem is not None and "refused" in meta.xmp_problem


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="expected a source kind"):
        load_image(_encoded("JPEG", None), default_kind="phone")  # type: ignore[arg-type]
