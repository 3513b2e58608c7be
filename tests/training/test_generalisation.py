"""The generalisation suites of `patrol evaluate` through the real Pipeline, with a detector
whose answers are known (painted boxes), and end to end with a tiny ONNX model."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from patrol_cli.main import app
from tests.model_factory import TinyModel
from tests.training.test_cli_data import built  # noqa: F401  (the fixture: a dataset built by the CLI)
from tests.training.test_evaluate import GARBAGE, SMOKE, _data_yaml, _model, _write_split
from tests.vision.fakes import PaintedBoxDetector, install_tiny_model
from training.evaluate import build_report, collect, open_eval_data
from training.generalisation import (
    corruption_suite,
    cross_class_false_alarms,
    merge_piles,
    merge_touching,
    per_source_figures,
)
from vision.model_card import ModelCard
from vision.taxonomy import Taxonomy

TAXONOMY = Taxonomy.default()
A, B, C = (10, 10, 40, 40), (50, 50, 90, 80), (20, 60, 45, 95)
# (source, painted [(xyxy, label, score)], truth [(class id, xyxy)]); class ids: 0 garbage_pile,
# 1 garbage_bin, 2 straw_burning.
IMAGES = [
    ("street", [(A, GARBAGE, 0.9)], [(0, A)]),                    # garbage found
    ("street", [(A, GARBAGE, 0.8), (B, SMOKE, 0.9)], [(0, A)]),   # smoke reported on a garbage photo
    ("tower", [(C, GARBAGE, 0.8)], []),                           # garbage reported on an empty view
    ("tower", [], []),                                            # a quiet empty view
    ("tower", [(B, SMOKE, 0.9)], [(2, B)]),                       # smoke found
]


@pytest.fixture
def collected_split(tmp_path: Path):  # type: ignore[no-untyped-def]
    _write_split(tmp_path, "test", [(painted, truth) for _, painted, truth in IMAGES])
    for i, (source, _, _) in enumerate(IMAGES):  # named as `patrol datasets build` names files
        for folder, suffix in (("images", ".png"), ("labels", ".txt")):
            path = tmp_path / folder / "test" / f"{i}{suffix}"
            path.rename(path.with_name(f"{source}__{i}{suffix}"))
    model = _model()
    data = open_eval_data(_data_yaml(tmp_path, ["garbage_pile", "garbage_bin", "straw_burning"]), "test",
                          model.card, TAXONOMY)
    data = replace(data, sources=("street", "tower"))
    return model, collect(model, data, TAXONOMY, detector=PaintedBoxDetector(input_size=64))


def test_each_source_scored_on_its_own(collected_split) -> None:  # type: ignore[no-untyped-def]
    model, collected = collected_split
    figures = per_source_figures(collected, model, TAXONOMY)
    assert set(figures) == {"street", "tower"}
    street, tower = figures["street"], figures["tower"]
    assert (street["n_images"], tower["n_images"]) == (2, 3)
    assert street["per_class"]["garbage_pile"]["ap50"] == 1.0
    assert street["per_class"]["garbage_pile"]["recall"] == 1.0
    assert street["per_class"]["straw_burning"]["ap50"] is None  # no smoke there to find
    assert street["per_class"]["straw_burning"]["fp"] == 1
    # tower: two empty views, one with a garbage alarm.
    assert tower["n_negative_images"] == 2 and tower["false_alarm_images"] == 1
    assert tower["false_alarms_per_100_negatives"] == 50.0
    assert tower["per_class"]["straw_burning"]["ap50"] == 1.0
    json.dumps(figures)


def test_cross_class_false_alarms(collected_split) -> None:  # type: ignore[no-untyped-def]
    model, collected = collected_split
    scored = build_report(collected, model, TAXONOMY).scored
    assert scored is not None
    alarms = cross_class_false_alarms(scored)
    smoke = alarms["straw_burning"]  # images without smoke: 0, 1 (garbage), 2, 3 (empty)
    assert (smoke["n_images"], smoke["images_with_alarm"]) == (4, 1)
    assert smoke["per_100_images"] == 25.0
    assert smoke["on_other_classes"] == {"n_images": 2, "images_with_alarm": 1, "per_100_images": 50.0}
    assert smoke["on_empty"]["images_with_alarm"] == 0
    garbage = alarms["garbage_pile"]  # images without garbage: 2, 3 (empty), 4 (smoke)
    assert garbage["on_empty"] == {"n_images": 2, "images_with_alarm": 1, "per_100_images": 50.0}
    assert garbage["on_other_classes"]["images_with_alarm"] == 0


def test_bags_merge_into_piles() -> None:
    bags = np.array([[0, 0, 10, 10], [10, 0, 20, 10],    # touching
                     [25, 0, 35, 10], [18, 5, 27, 15],   # the fourth bridges the second and third
                     [50, 50, 60, 60]], dtype=np.float64)  # alone
    piles = merge_touching(bags)
    assert sorted(piles.tolist()) == [[0, 0, 35, 15], [50, 50, 60, 60]]
    assert merge_touching(np.zeros((0, 4))).shape == (0, 4)


def test_merge_piles_changes_only_that_class(collected_split) -> None:  # type: ignore[no-untyped-def]
    model, collected = collected_split
    image = collected.images[0]
    bagged = replace(image, gt_xyxy=np.array([[10, 10, 25, 40], [25, 10, 40, 40], [50, 50, 90, 80]], float),
                     gt_names=("garbage_pile", "garbage_pile", "straw_burning"))
    merged, note = merge_piles(replace(collected, images=(bagged,)))
    assert (note["boxes_before"], note["boxes_after"]) == (2, 1)
    out = merged.images[0]
    assert sorted(zip(out.gt_names, out.gt_xyxy.tolist(), strict=True)) == [
        ("garbage_pile", [10, 10, 40, 40]), ("straw_burning", [50, 50, 90, 80])]
    # Scored on piles, the one 10-40 garbage prediction now finds the pile.
    summary = build_report(merged, model, TAXONOMY).summary
    assert summary["per_class"]["garbage_pile"]["ap50"] == 1.0


def test_corruption_suite_is_repeatable_and_measures_a_drop(collected_split) -> None:  # type: ignore[no-untyped-def]
    model, collected = collected_split

    def run() -> tuple[dict, dict]:  # type: ignore[type-arg]
        return corruption_suite(model, collected, TAXONOMY, ("haze", "scale_2"), seed=0,
                                detector=PaintedBoxDetector(input_size=64))

    figures, suite = run()
    assert set(figures) == {"haze", "scale_2"}
    # Doubling the picture keeps painted boxes (and their boxes) where the truth went.
    assert figures["scale_2"]["garbage_pile"]["ap50"] == suite["clean_ap50"]["garbage_pile"] == 1.0
    assert figures["scale_2"]["garbage_pile"]["drop"] == 0.0
    # Haze greys the paint out: the painted detector sees nothing, AP50 falls to 0.
    assert figures["haze"]["garbage_pile"] == {"ap50": 0.0, "precision": 0.0, "recall": 0.0, "drop": 1.0}
    assert suite["mean_drop"]["garbage_pile"] == 0.5
    assert suite["n_images"] == 5 and suite["images"] == "all of the split"
    assert run() == (figures, suite)
    sampled = corruption_suite(model, collected, TAXONOMY, ("scale_2",), seed=0, max_images=3,
                               detector=PaintedBoxDetector(input_size=64))[1]
    assert sampled["n_images"] == 3 and "sample" in sampled["images"]


@pytest.mark.slow
def test_evaluate_writes_the_suites_into_the_card(tiny_model: TinyModel, built: Path,  # noqa: F811
                                                  tmp_path: Path) -> None:
    models = tmp_path / "models"
    install_tiny_model(tiny_model.onnx_path, models, "candidate", input_size=tiny_model.imgsz)
    common = ["--data", str(built), "--models-dir", str(models), "--split", "test"]
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "candidate", *common, "--corruptions", "fisheye"])
    assert result.exit_code == 2 and "unknown corruptions ['fisheye']" in result.stderr

    result = runner.invoke(app, ["evaluate", "candidate", *common, "--json", "--write-card", "--per-source",
                                 "--corruptions", "blur,rotation", "--corruption-images", "3",
                                 "--merge-piles"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    metrics = ModelCard.read(models / "candidate" / "card.json").metrics
    assert metrics == summary
    assert set(metrics["per_source"]) == {"shapes"}
    assert set(metrics["per_source"]["shapes"]["per_class"]) == set(metrics["per_class"])
    assert set(metrics["corruption"]) == {"blur", "rotation"}
    for per_class in metrics["corruption"].values():
        assert set(per_class) == set(metrics["per_class"])
        assert all(row["ap50"] is None or 0.0 <= row["ap50"] <= 1.0 for row in per_class.values())
    assert metrics["corruption_suite"]["n_images"] == 3
    assert metrics["gt_merged"]["class"] == "garbage_pile"
    assert set(metrics["cross_class_false_alarms"]) == set(metrics["per_class"])
    card_md = (models / "candidate" / "card.md").read_text()
    assert "## Generalisation" in card_md and "blur" in card_md and "merged into piles" in card_md
