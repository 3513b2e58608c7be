"""INT8 static quantisation: which nodes stay float, calibration images, and the installed variant."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from patrol_cli.main import app
from tests.training.synthetic import make_synthetic_dataset
from tests.vision.fakes import FAKE_LABELS, install_tiny_model
from training.quantize import (
    QUANTIZATION,
    QuantizeError,
    QuantizeOptions,
    calibration_images,
    chunk_size,
    float_tail_nodes,
    head_output_conv_nodes,
    nodes_kept_float,
    pyramid_pool_nodes,
    quantize_model,
    quantize_onnx,
    stem_conv_nodes,
)
from vision.detectors.base import OnnxRuntimeConfig
from vision.detectors.onnx_runtime import OnnxRuntimeDetector
from vision.model_registry import resolve_model, sha256_file
from vision.preprocess import letterbox_batch

# -- float_tail_nodes on hand-built graphs --------------------------------------------------


def _conv(name: str, x: str, out: str, channels_in: int, channels_out: int) -> list:
    weight = numpy_helper.from_array(np.ones((channels_out, channels_in, 1, 1), np.float32), f"{name}.w")
    return [weight, helper.make_node("Conv", [x, f"{name}.w"], [out], name=name)]


def _graph(nodes_and_weights: list, outputs: list[str]) -> onnx.GraphProto:
    nodes = [n for n in nodes_and_weights if isinstance(n, onnx.NodeProto)]
    weights = [w for w in nodes_and_weights if isinstance(w, onnx.TensorProto)]
    return helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        initializer=weights,
    )


def _backbone() -> list:
    """x -> Conv -> SiLU (Sigmoid * x) -> feat: the part that is always quantised."""
    return [
        *_conv("stem", "x", "s", 4, 4),
        helper.make_node("Sigmoid", ["s"], ["s_sig"], name="stem_sig"),
        helper.make_node("Mul", ["s", "s_sig"], ["feat"], name="stem_act"),
    ]


YOLO_LIKE = _graph(
    [
        *_backbone(),
        *_conv("box_conv", "feat", "box", 4, 4),
        *_conv("cls_conv", "feat", "cls", 4, 2),
        helper.make_node("Softmax", ["box"], ["box_p"], name="dfl_softmax", axis=1),
        *_conv("dfl_conv", "box_p", "box_d", 4, 1),
        helper.make_node("Shape", ["feat"], ["feat_shape"], name="anchors_shape"),
        helper.make_node("Cast", ["feat_shape"], ["anchors"], name="anchors_cast", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["box_d", "anchors"], ["xywh"], name="decode"),
        helper.make_node("Sigmoid", ["cls"], ["scores"], name="cls_sigmoid"),
        helper.make_node("Concat", ["xywh", "scores"], ["out"], name="out_concat", axis=1),
    ],
    ["out"],
)
PLAIN_CONV = _graph([*_backbone(), *_conv("last", "feat", "out", 4, 3)], ["out"])


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        # The DFL conv (fed by Softmax) is decode, not a learned layer; Shape stops the walk (its
        # input's values do not matter); box_conv/cls_conv and the backbone are quantised.
        (
            YOLO_LIKE,
            {
                "out_concat",
                "decode",
                "cls_sigmoid",
                "dfl_conv",
                "dfl_softmax",
                "anchors_cast",
                "anchors_shape",
            },
        ),
        (PLAIN_CONV, set()),
    ],
)
def test_float_tail_is_what_follows_the_last_learned_convolutions(graph, expected) -> None:
    assert set(float_tail_nodes(graph)) == expected


@pytest.mark.parametrize(
    ("graph", "stem", "head_outputs"),
    [
        # The stem reads the image; the head's outputs are the learned convs feeding the float tail
        # (box_conv feeds the DFL softmax, cls_conv the sigmoid), not the DFL conv inside the tail.
        (YOLO_LIKE, ["stem"], {"box_conv", "cls_conv"}),
        # No tail: nothing feeds it, so no head convs are singled out.
        (PLAIN_CONV, ["stem"], set()),
    ],
)
def test_float_groups_find_the_stem_and_the_head_output_convs(graph, stem, head_outputs) -> None:
    assert stem_conv_nodes(graph) == stem
    assert set(head_output_conv_nodes(graph, float_tail_nodes(graph))) == head_outputs


def _silu(name: str, x: str, out: str) -> list:
    return [
        helper.make_node("Sigmoid", [x], [f"{name}_s"], name=f"{name}_sig"),
        helper.make_node("Mul", [x, f"{name}_s"], [out], name=f"{name}_mul"),
    ]


def _pool(name: str, x: str, out: str) -> onnx.NodeProto:
    return helper.make_node("MaxPool", [x], [out], name=name, kernel_shape=[5, 5], pads=[2, 2, 2, 2])


SPPF_LIKE = _graph(
    [
        *_backbone(),
        *_conv("cv1", "feat", "c1", 4, 2),
        *_silu("cv1", "c1", "a"),
        _pool("pool1", "a", "p1"),
        _pool("pool2", "p1", "p2"),
        helper.make_node("Concat", ["a", "p1", "p2"], ["cat"], name="sppf_concat", axis=1),
        *_conv("cv2", "cat", "c2", 6, 4),
        *_silu("cv2", "c2", "b"),
        # A Concat without pools (a neck's) is not part of the block.
        helper.make_node("Concat", ["b", "feat"], ["out"], name="neck_concat", axis=1),
    ],
    ["out"],
)


def test_the_pyramid_pool_group_is_the_pools_their_concat_and_the_convs_around_them() -> None:
    assert set(pyramid_pool_nodes(SPPF_LIKE)) == {
        "cv1",
        "cv1_sig",
        "cv1_mul",
        "pool1",
        "pool2",
        "sppf_concat",
        "cv2",
        "cv2_sig",
        "cv2_mul",
    }
    assert pyramid_pool_nodes(YOLO_LIKE) == []


def test_nodes_kept_float_adds_the_chosen_groups_to_the_tail_once() -> None:
    tail = float_tail_nodes(YOLO_LIKE)
    assert nodes_kept_float(YOLO_LIKE, keep_head_float=True, groups=()) == tail
    chosen = nodes_kept_float(YOLO_LIKE, keep_head_float=True, groups=("head_outputs", "stem", "stem"))
    assert chosen[: len(tail)] == tail
    assert sorted(chosen[len(tail) :]) == ["box_conv", "cls_conv", "stem"]
    assert len(chosen) == len(set(chosen))
    # Without the tail, the head's output convs are those feeding nothing float: none.
    assert nodes_kept_float(YOLO_LIKE, keep_head_float=False, groups=("head_outputs",)) == []
    with pytest.raises(QuantizeError, match="unknown float group 'neck'"):
        nodes_kept_float(YOLO_LIKE, keep_head_float=True, groups=("neck",))


# -- calibration images ---------------------------------------------------------------------


def _image_folder(root: Path, count: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(root / f"{i:02d}.png"), np.full((40, 60, 3), i * 10, np.uint8))
    (root / "readme.txt").write_text("not an image")
    return root


@pytest.mark.parametrize(
    ("count", "n", "expected"),
    [
        (10, 3, ["00.png", "04.png", "09.png"]),  # spread evenly, ends included
        (10, 1, ["00.png"]),
        (3, 100, ["00.png", "01.png", "02.png"]),  # fewer than asked: all of them
    ],
)
def test_calibration_images_from_a_folder_are_spread_evenly(tmp_path, count, n, expected) -> None:
    folder = _image_folder(tmp_path / "imgs", count)
    assert [p.name for p in calibration_images(folder, n=n)] == expected


@pytest.mark.parametrize(
    ("total", "at_most", "expected"), [(300, 25, 25), (301, 25, 7), (7, 25, 7), (13, 5, 1), (1, 25, 1)]
)
def test_calibration_chunks_divide_the_images(total, at_most, expected) -> None:
    assert chunk_size(total, at_most) == expected


def test_calibration_images_take_the_same_share_from_each_source(tmp_path: Path) -> None:
    folder = tmp_path / "built"
    folder.mkdir()
    for source, count in (("big", 9), ("small", 2), ("mid", 5)):
        for i in range(count):
            cv2.imwrite(str(folder / f"{source}__{i}.png"), np.zeros((8, 8, 3), np.uint8))
    chosen = [p.name for p in calibration_images(folder, n=9)]
    by_source = {s: sorted(n for n in chosen if n.startswith(f"{s}__")) for s in ("big", "small", "mid")}
    # 3 each asked; "small" has 2, so its third goes to the first of the others by name (big).
    assert by_source == {
        "big": ["big__0.png", "big__3.png", "big__5.png", "big__8.png"],
        "small": ["small__0.png", "small__1.png"],
        "mid": ["mid__0.png", "mid__2.png", "mid__4.png"],
    }


def test_calibration_images_from_a_dataset_split(tmp_path: Path) -> None:
    data = make_synthetic_dataset(tmp_path / "ds", n_train=3, n_val=5, seed=1)
    chosen = calibration_images(data.root, split="val", n=2)
    assert [p.name for p in chosen] == ["val_000.jpg", "val_004.jpg"]
    assert calibration_images(data.data_yaml, split="train", n=10) == sorted(
        image.image_path for image in data.split("train")
    )


@pytest.mark.parametrize("source", ["missing", "empty"])
def test_calibration_without_images_is_refused(tmp_path: Path, source: str) -> None:
    path = tmp_path / source
    if source == "empty":
        path.mkdir()
    with pytest.raises(QuantizeError, match="calibration"):
        calibration_images(path)


# -- the installed int8 model (tiny, untrained YOLOv5nu at 128) -------------------------------


@pytest.fixture(scope="module")
def quantized(tiny_model, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("quantize")
    models = root / "models"
    install_tiny_model(tiny_model.onnx_path, models, "tiny")
    # Dataset classes are the model's labels, so evaluation maps them through the card.
    data = make_synthetic_dataset(
        root / "data", n_train=2, n_val=6, size_range=(96, 160), labels=FAKE_LABELS, seed=3
    )
    result = quantize_model(
        "tiny", data.root, "tiny-int8", split="val", models_dir=models, options=QuantizeOptions(n_images=6)
    )
    return result, resolve_model("tiny", models), data


@pytest.mark.slow
def test_the_int8_model_is_installed_with_a_card_of_its_own(quantized) -> None:
    result, source, _ = quantized
    model = resolve_model(result.model.folder)  # verifies the sha256 against the file
    card = model.card
    assert card.quantization == QUANTIZATION == "int8-static"
    assert card.sha256 == sha256_file(model.weights) != source.card.sha256
    assert (card.labels, card.label_map, card.input_size, card.thresholds) == (
        source.card.labels,
        source.card.label_map,
        source.card.input_size,
        source.card.thresholds,
    )
    assert card.metrics == {}  # the source's test metrics are not these weights'
    lineage = card.training["quantization"]
    assert (lineage["source_model"], lineage["source_sha256"]) == ("tiny", source.card.sha256)
    assert lineage["calibration_images_used"] == 6 and lineage["float_nodes"] > 0
    accuracy = lineage["accuracy"]
    assert accuracy["split"] == "val" and accuracy["n_images"] == 6
    assert {"source_map50", "int8_map50"} <= set(accuracy)
    for key in ("source_map50", "int8_map50"):
        assert accuracy[key] is None or 0.0 <= accuracy[key] <= 1.0
    card_md = (model.folder / "card.md").read_text()
    assert "int8-static" in card_md and "Accuracy cost on" in card_md
    assert "for the float source tiny" in card_md


@pytest.mark.slow
def test_the_int8_model_is_int8_and_keeps_labels_and_metadata(quantized) -> None:
    result, source, _ = quantized
    original, int8 = onnx.load(str(source.weights)), onnx.load(str(result.model.weights))
    before = {p.key: p.value for p in original.metadata_props}
    after = {p.key: p.value for p in int8.metadata_props}
    assert {k: after.get(k) for k in ("names", "imgsz", "stride", "end2end")} == {
        k: before.get(k) for k in ("names", "imgsz", "stride", "end2end")
    }
    assert after["quantization"] == "int8-static"
    ops = {node.op_type for node in int8.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [t for t in int8.graph.initializer if t.data_type == TensorProto.INT8]
    assert len(int8_weights) >= 50  # every learned conv's weights
    # The head's sigmoid and DFL softmax read float tensors, not dequantised int8 ones.
    producer = {out: node for node in int8.graph.node for out in node.output}
    for node in int8.graph.node:
        if node.name in ("/model.24/Sigmoid", "/model.24/dfl/Softmax"):
            feeding = producer[node.input[0]]
            assert feeding.op_type not in ("DequantizeLinear", "QuantizeLinear"), node.name


@pytest.mark.slow
def test_the_int8_model_serves_like_its_source(quantized) -> None:
    result, source, data = quantized
    config = {"imgsz": 128, "conf": 0.001}
    fp32 = OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=source.weights, **config))
    int8 = OnnxRuntimeDetector.from_config(OnnxRuntimeConfig(model=result.model.weights, **config))
    assert int8.labels == fp32.labels == tuple(FAKE_LABELS)
    assert (int8.input_size, int8.rect, int8.max_batch) == (fp32.input_size, fp32.rect, fp32.max_batch)
    images = [cv2.imread(str(image.image_path)) for image in data.split("val")[:3]]
    blob, _ = letterbox_batch(images[:1], 128, stride=32)
    raw_fp32, raw_int8 = (
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": blob})[0]
        for path in (source.weights, result.model.weights)
    )
    assert raw_int8.shape == raw_fp32.shape and raw_int8.dtype == np.float32
    assert np.isfinite(raw_int8).all()
    scores = raw_int8[:, 4:]
    assert scores.min() >= 0.0 and scores.max() <= 1.0  # the sigmoid stayed a float sigmoid
    found = int8.predict_batch(images)
    assert len(found) == 3
    for dets, image in zip(found, images, strict=True):
        height, width = image.shape[:2]
        assert np.all((dets.xyxy >= 0) & (dets.xyxy <= [width, height, width, height]))
        assert set(dets.data["class_name"].tolist()) <= set(FAKE_LABELS)


# -- refusals and the command ---------------------------------------------------------------


@pytest.mark.slow
def test_an_int8_model_is_not_quantised_again(quantized) -> None:
    result, _, data = quantized
    with pytest.raises(QuantizeError, match="already quantised"):
        quantize_model(result.model.folder, data.root, "twice", models_dir=result.model.folder.parent)


def test_unreadable_calibration_images_are_named(tiny_model, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(QuantizeError, match="none of the 1 calibration images could be read: .*broken.jpg"):
        quantize_onnx(tiny_model.onnx_path, tmp_path / "out.onnx", [bad], 128)


def test_a_drop_limit_needs_a_dataset(tiny_model, tmp_path: Path) -> None:
    models = tmp_path / "models"
    install_tiny_model(tiny_model.onnx_path, models, "tiny")
    with pytest.raises(QuantizeError, match="needs a dataset"):
        quantize_model(
            "tiny", _image_folder(tmp_path / "imgs", 2), "x", models_dir=models, max_map50_drop=0.01
        )
    assert not (models / "x").exists()


@pytest.mark.slow
def test_patrol_quantize_command(tiny_model, tmp_path: Path) -> None:
    models = tmp_path / "models"
    install_tiny_model(tiny_model.onnx_path, models, "tiny")
    images = _image_folder(tmp_path / "imgs", 4)
    runner = CliRunner()
    ok = runner.invoke(
        app,
        [
            "quantize",
            "tiny",
            "--calib",
            str(images),
            "--name",
            "tiny-q",
            "--n",
            "2",
            "--models-dir",
            str(models),
        ],
    )
    assert ok.exit_code == 0, ok.output
    printed = json.loads(ok.stdout)
    assert printed["quantization"] == "int8-static" and printed["accuracy"] is None
    assert printed["report"]["calibration_images_used"] == 2
    assert printed["sha256"] == sha256_file(models / "tiny-q" / "model.onnx")
    again = runner.invoke(
        app, ["quantize", "tiny", "--calib", str(images), "--name", "tiny-q", "--models-dir", str(models)]
    )
    assert again.exit_code == 2 and "already installed" in again.output
    missing = runner.invoke(
        app,
        [
            "quantize",
            "tiny",
            "--calib",
            str(tmp_path / "nowhere"),
            "--name",
            "z",
            "--models-dir",
            str(models),
        ],
    )
    assert missing.exit_code == 2 and "calibration" in missing.output


def test_patrol_quantize_hands_its_choices_to_the_options(monkeypatch, tmp_path: Path) -> None:
    seen: list[QuantizeOptions] = []

    def stop(*args, options: QuantizeOptions, **kwargs):
        seen.append(options)
        raise QuantizeError("stopped before quantising")

    monkeypatch.setattr("training.quantize.quantize_model", stop)
    common = ["quantize", "tiny", "--calib", str(tmp_path), "--name", "q"]
    chosen = ["--format", "qoperator", "--activations", "int8", "--calibration", "entropy"]
    kept = ["--keep-float", "stem", "--keep-float", "pyramid_pool"]
    result = CliRunner().invoke(app, [*common, *chosen, *kept])
    assert result.exit_code == 2 and "stopped before quantising" in result.output
    options = seen[0]
    assert (options.quant_format, options.activation_type) == ("qoperator", "int8")
    assert options.calibration == "entropy"
    assert options.float_groups == ("stem", "pyramid_pool")

    defaults = CliRunner().invoke(app, common)
    assert defaults.exit_code == 2 and seen[1] == QuantizeOptions()

    wrong_names = ((["--keep-float", "neck"], "pyramid_pool"), (["--calibration", "mse"], "percentile"))
    for wrong, allowed in wrong_names:
        refused = CliRunner().invoke(app, [*common, *wrong])
        assert refused.exit_code == 2 and allowed in refused.output, refused.output
    assert len(seen) == 2  # neither wrong name reached the quantiser
