"""Evaluation through the real Pipeline with a detector whose answers are known."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tests.vision.fakes import FAKE_LABELS, TINY_LABEL_MAP, PaintedBoxDetector, paint_box
from training.datasets.errors import DatasetError
from training.evaluate import build_report, choose_thresholds, collect, format_table, open_eval_data
from training.plots import write_plots
from vision.errors import BackendUnavailableError
from vision.model_card import ModelCard
from vision.model_registry import InstalledModel
from vision.taxonomy import Taxonomy

TAXONOMY = Taxonomy.default()
GARBAGE, BIN, SMOKE = 0, 1, 2  # detector labels (FAKE_LABELS) and paint colours


def _card(thresholds: dict[str, float] | None = None) -> ModelCard:
    return ModelCard(name="painted", version="1", sha256="0" * 64, input_size=64, labels=list(FAKE_LABELS),
                     label_map=dict(TINY_LABEL_MAP), thresholds=thresholds or {})


def _model(thresholds: dict[str, float] | None = None) -> InstalledModel:
    return InstalledModel("painted", Path("/nonexistent"), _card(thresholds))


def _write_split(root: Path, split: str, images: list[tuple[list, list]]) -> None:
    """images: (painted [(xyxy, label, score)], truth [(class id, xyxy)]) on 100x100 black PNGs."""
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for i, (painted, truth) in enumerate(images):
        pixels = np.zeros((100, 100, 3), np.uint8)
        for xyxy, label, score in painted:
            paint_box(pixels, xyxy, label, score)
        cv2.imwrite(str(root / "images" / split / f"{i}.png"), pixels)
        lines = [f"{c} {(x1 + x2) / 200:.6f} {(y1 + y2) / 200:.6f} {(x2 - x1) / 100:.6f} "
                 f"{(y2 - y1) / 100:.6f}" for c, (x1, y1, x2, y2) in truth]
        (root / "labels" / split / f"{i}.txt").write_text("\n".join(lines))


def _data_yaml(root: Path, names: list[str]) -> Path:
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump({"path": str(root), "val": "images/val", "test": "images/test",
                                    "names": dict(enumerate(names))}))
    return path


# Dataset class ids: 0 garbage_pile (a taxonomy key), 1 garbage_bin (a model label -> helper),
# 2 straw_burning.
A, B, C = (10, 10, 40, 40), (50, 50, 90, 80), (20, 60, 45, 95)
TEST_IMAGES = [
    ([(A, GARBAGE, 0.9)], [(0, A)]),          # garbage pile found
    ([(B, SMOKE, 0.2)], [(2, B)]),            # smoke found, but below straw_burning's threshold 0.30
    ([(C, GARBAGE, 0.8)], []),                # a negative with a false alarm
    ([], []),                                 # a quiet negative
    ([(A, BIN, 0.9)], [(1, A)]),              # a bin: helper label, a negative for violations
]


@pytest.fixture
def test_split(tmp_path: Path) -> Path:
    _write_split(tmp_path, "test", TEST_IMAGES)
    return _data_yaml(tmp_path, ["garbage_pile", "garbage_bin", "straw_burning"])


def test_known_answers_through_the_pipeline(test_split: Path, tmp_path: Path) -> None:
    model = _model()
    data = open_eval_data(test_split, "test", model.card, TAXONOMY)
    assert data.hash_source == "files" and data.label_map["garbage_bin"] is None
    collected = collect(model, data, TAXONOMY, detector=PaintedBoxDetector(input_size=64))
    report = build_report(collected, model, TAXONOMY)
    summary = report.summary
    garbage, burning = summary["per_class"]["garbage_pile"], summary["per_class"]["straw_burning"]
    # garbage_pile: the 0.9 hit outranks the 0.8 false alarm -> AP 1; at 0.35 both count -> P 1/2, R 1.
    assert (garbage["ap50"], garbage["ap50_95"]) == (1.0, 1.0)
    assert (garbage["precision"], garbage["recall"], garbage["tp"], garbage["fp"]) == (0.5, 1.0, 1, 1)
    assert (garbage["n_images"], garbage["n_boxes"]) == (1, 1)
    # straw_burning: found at the score floor (AP 1) but not at the operating threshold.
    assert burning["ap50"] == 1.0
    assert (burning["precision"], burning["recall"], burning["tp"]) == (0.0, 0.0, 0)
    assert summary["map50"] == 1.0
    # Negatives: images 2, 3 and 4 (the bin is no violation); one of them has a false alarm.
    assert summary["n_negative_images"] == 3
    assert summary["false_alarms_per_100_negatives"] == pytest.approx(100 / 3, abs=1e-4)
    assert set(summary["per_class"]) == {"garbage_pile", "straw_burning"}  # no helper class
    assert summary["thresholds"] == {"garbage": 0.35, "smoke": 0.3}
    # Rows: truth garbage_pile, straw_burning, garbage_bin, background; columns: predicted.
    assert report.confusion_rows == ("garbage_pile", "straw_burning", "garbage_bin", "background")
    assert report.confusion_cols == ("garbage_pile", "straw_burning", "background")
    assert report.confusion.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 1], [1, 0, 0]]
    json.dumps(summary)  # the --json object is plain JSON
    assert "garbage_pile" in format_table(summary)
    for path in write_plots(report, tmp_path / "plots"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_card_thresholds_set_the_operating_point(test_split: Path) -> None:
    model = _model({"smoke": 0.1, "garbage": 0.85})
    data = open_eval_data(test_split, "test", model.card, TAXONOMY)
    summary = build_report(collect(model, data, TAXONOMY, detector=PaintedBoxDetector()), model,
                           TAXONOMY).summary
    assert summary["per_class"]["straw_burning"]["recall"] == 1.0
    assert summary["per_class"]["garbage_pile"]["precision"] == 1.0
    assert summary["false_alarms_per_100_negatives"] == 0.0
    # AP does not depend on the operating thresholds.
    assert summary["per_class"]["garbage_pile"]["ap50"] == 1.0


def test_no_predictions_give_zero(tmp_path: Path) -> None:
    model = _model()
    blank = tmp_path / "blank"
    _write_split(blank, "test", [([], truth) for _, truth in TEST_IMAGES])
    data = open_eval_data(_data_yaml(blank, ["garbage_pile", "garbage_bin", "straw_burning"]), "test",
                          model.card, TAXONOMY)
    summary = build_report(collect(model, data, TAXONOMY, detector=PaintedBoxDetector()), model,
                           TAXONOMY).summary
    for key in ("garbage_pile", "straw_burning"):
        assert summary["per_class"][key]["ap50"] == 0.0
        assert summary["per_class"][key]["recall"] == 0.0
    assert summary["map50"] == 0.0
    assert summary["false_alarms_per_100_negatives"] == 0.0


def test_thresholds_maximise_f1_per_label(tmp_path: Path) -> None:
    # Two garbage boxes; predictions 0.9 (hit), 0.6 (miss), 0.5 (hit): F1 0.67, 0.5, 0.8 -> 0.5.
    _write_split(tmp_path, "val", [
        ([(A, GARBAGE, 0.9), (B, GARBAGE, 0.6)], [(0, A)]),
        ([(C, GARBAGE, 0.5)], [(0, C)]),
        ([(C, SMOKE, 0.7), (A, SMOKE, 0.04)], [(2, C)]),
    ])
    model = _model()
    data = open_eval_data(_data_yaml(tmp_path, ["garbage", "garbage_bin", "smoke"]), "val", model.card,
                          TAXONOMY)
    collected = collect(model, data, TAXONOMY, detector=PaintedBoxDetector())
    choices = choose_thresholds(collected, model.card, floor=0.05)
    assert set(choices) == {"garbage", "smoke"}  # helper labels get none
    garbage = choices["garbage"]
    assert garbage is not None
    assert garbage.threshold == pytest.approx(0.5, abs=1 / 255)
    assert (garbage.precision, garbage.recall, garbage.f1) == pytest.approx((2 / 3, 1.0, 0.8))
    smoke = choices["smoke"]
    assert smoke is not None and smoke.threshold == pytest.approx(0.7, abs=1 / 255) and smoke.f1 == 1.0


def test_a_built_dataset_uses_its_card(tmp_path: Path) -> None:
    from tests.training.datasets.test_build import _source, _spec
    from tests.training.synthetic import make_synthetic_dataset
    from training.datasets.build import build_dataset

    shapes = make_synthetic_dataset(tmp_path / "shapes", n_train=12, n_val=4, seed=5)
    built = build_dataset(_spec(_source(shapes.root)), tmp_path / "built", check_near_duplicates=False)
    data = open_eval_data(tmp_path / "built", "train", _card(), TAXONOMY)
    assert data.hash == built.card.hash and data.hash_source == "dataset_card"
    assert data.label_map == built.card.label_map
    assert len(data.images) == built.card.splits["train"].images


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["garbage_pile", "bicycle"], r"class names \['bicycle'\] are neither taxonomy keys"),
    ],
)
def test_unmappable_names_are_refused(test_split: Path, names: list[str], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        open_eval_data(_data_yaml(test_split.parent, names), "test", _card(), TAXONOMY)


def test_a_missing_split_is_refused(test_split: Path) -> None:
    with pytest.raises(DatasetError, match="has no 'train' split"):
        open_eval_data(test_split, "train", _card(), TAXONOMY)


def test_the_hash_of_a_plain_dataset_follows_its_files(test_split: Path) -> None:
    first = open_eval_data(test_split, "test", _card(), TAXONOMY).hash
    assert open_eval_data(test_split, "test", _card(), TAXONOMY).hash == first
    label = next((test_split.parent / "labels" / "test").glob("*.txt"))
    label.write_text(label.read_text() + "\n0 0.5 0.5 0.1 0.1")
    assert open_eval_data(test_split, "test", _card(), TAXONOMY).hash != first


def test_evaluation_never_imports_torch_or_ultralytics(test_split: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import training.cli_data, training.evaluate, training.promote, training.registry, training.plots\n"
        "import training.datasets.build\n"
        "from tests.vision.fakes import PaintedBoxDetector, FAKE_LABELS, TINY_LABEL_MAP\n"
        "from training.evaluate import open_eval_data, collect, build_report\n"
        "from vision.model_card import ModelCard\n"
        "from vision.model_registry import InstalledModel\n"
        "from vision.taxonomy import Taxonomy\n"
        "card = ModelCard(name='p', version='1', sha256='0'*64, input_size=64, labels=list(FAKE_LABELS),\n"
        "                 label_map=dict(TINY_LABEL_MAP))\n"
        "model = InstalledModel('p', Path('.'), card)\n"
        f"data = open_eval_data({str(test_split)!r}, 'test', card, Taxonomy.default())\n"
        "build_report(collect(model, data, Taxonomy.default(), detector=PaintedBoxDetector()), model,\n"
        "             Taxonomy.default())\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ultralytics'))\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_summary_says_which_engine_ran(test_split: Path) -> None:
    model = _model()
    data = open_eval_data(test_split, "test", model.card, TAXONOMY)
    summary = build_report(collect(model, data, TAXONOMY, detector=PaintedBoxDetector()), model,
                           TAXONOMY).summary
    assert summary["engine"] == "PaintedBoxDetector"
    assert "engine PaintedBoxDetector" in format_table(summary)
    with pytest.raises(BackendUnavailableError, match="valid engines: auto, onnxruntime, openvino"):
        collect(model, data, TAXONOMY, engine="tflite")
