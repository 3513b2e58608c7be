"""Promotion: accepted only when no class drops > 1 AP50 point and mean AP50 does not drop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.training.test_evaluate import TEST_IMAGES, _card, _data_yaml, _write_split
from tests.training.test_registry import card_fields, fake_onnx, metrics_for
from tests.vision.fakes import PaintedBoxDetector
from training.evaluate import build_report, collect, open_eval_data
from training.promote import Measure, compare, format_decision, promote
from training.registry import install_model, record_metrics
from vision.errors import ModelError
from vision.model_registry import InstalledModel, resolve_model
from vision.taxonomy import Taxonomy


def _metrics(dataset_hash: str = "d" * 64, **ap50: float) -> dict[str, Any]:
    return {**metrics_for("0" * 64, **ap50), "dataset_hash": dataset_hash}


@pytest.mark.parametrize(
    ("current", "candidate", "accepted", "reason_part"),
    [
        ({"a": 0.60, "b": 0.40}, {"a": 0.65, "b": 0.40}, True, "no class drops"),
        ({"a": 0.60, "b": 0.40}, {"a": 0.70, "b": 0.395}, True, "no class drops"),   # -0.5 pt is fine
        ({"a": 0.60, "b": 0.40}, {"a": 0.70, "b": 0.39}, True, "no class drops"),    # exactly -1 pt
        ({"a": 0.60, "b": 0.40}, {"a": 0.70, "b": 0.385}, False, "b: AP50 drops 1.5 points"),
        ({"a": 0.60, "b": 0.40}, {"a": 0.595, "b": 0.40}, False, "mean AP50 drops"),
        ({"a": 0.60, "b": 0.40}, {"a": 0.90}, False, "b: AP50 drops 40.0 points"),     # class lost
        # On one dataset a class the default never learnt is measured for it too, at AP 0.
        ({"a": 0.60, "b": 0.0}, {"a": 0.60, "b": 0.10}, True, "no class drops"),
    ],
)
def test_compare(current: dict[str, float], candidate: dict[str, float], accepted: bool,
                 reason_part: str) -> None:
    # map50 is the mean over each model's measured classes, as `patrol evaluate` computes it.
    decision = compare(_metrics(**current), _metrics(**candidate), candidate_name="new",
                       current_name="old")
    assert decision.accepted is accepted
    assert any(reason_part in reason for reason in decision.reasons), decision.reasons
    table = format_decision(decision)
    assert ("PROMOTED" if accepted else "REFUSED") in table
    assert table.count("\n") >= len(decision.rows) + 1


def test_different_datasets_are_not_compared() -> None:
    decision = compare(_metrics(a=0.5), _metrics(dataset_hash="e" * 64, a=0.9))
    assert not decision.accepted
    assert "measured on different datasets" in decision.reasons[0]


def _install(tmp_path: Path, name: str, payload: bytes, **ap50: float) -> InstalledModel:
    model = install_model(fake_onnx(tmp_path, payload), card_fields(name=name, version=name[-1]),
                          models_dir=tmp_path / "models")
    return record_metrics(model, {**metrics_for(model.card.sha256, **ap50), "model": name})


def test_first_promotion_then_a_better_one_then_a_refusal(tmp_path: Path) -> None:
    models = tmp_path / "models"
    first = _install(tmp_path, "model-1", b"one", garbage_pile=0.5, straw_burning=0.3)
    decision = promote("model-1", models_dir=models)
    assert decision.accepted and decision.reasons == ["no default model is installed yet"]
    assert resolve_model("default", models).card.sha256 == first.card.sha256

    second = _install(tmp_path, "model-2", b"two", garbage_pile=0.55, straw_burning=0.3)
    assert promote("model-2", models_dir=models).accepted
    assert resolve_model("default", models).card.sha256 == second.card.sha256
    # The previous default is still installed under its own name, so promotion can be undone.
    assert resolve_model("model-1", models).card.sha256 == first.card.sha256

    _install(tmp_path, "model-3", b"three", garbage_pile=0.40, straw_burning=0.5)
    decision = promote("model-3", models_dir=models)
    assert not decision.accepted
    assert resolve_model("default", models).card.sha256 == second.card.sha256
    log = [json.loads(line) for line in (models / "promotions.jsonl").read_text().splitlines()]
    assert [entry["accepted"] for entry in log] == [True, True, False]
    assert log[2]["previous_default"]["name"] == "model-2"


def test_the_outgoing_default_is_archived_when_its_folder_is_gone(tmp_path: Path) -> None:
    models = tmp_path / "models"
    first = _install(tmp_path, "model-1", b"one", garbage_pile=0.5)
    promote("model-1", models_dir=models)
    import shutil

    shutil.rmtree(models / "model-1")
    _install(tmp_path, "model-2", b"two", garbage_pile=0.6)
    assert promote("model-2", models_dir=models).accepted
    assert resolve_model("model-1", models).card.sha256 == first.card.sha256


def test_promotion_needs_test_metrics_on_the_same_weights(tmp_path: Path) -> None:
    models = tmp_path / "models"
    install_model(fake_onnx(tmp_path, b"bare"), card_fields(name="bare"), models_dir=models)
    with pytest.raises(ModelError, match="has no metrics in its card"):
        promote("bare", models_dir=models)
    _install(tmp_path, "model-1", b"one", garbage_pile=0.5)
    (models / "model-1" / "model.onnx").write_bytes(b"swapped")
    with pytest.raises(ModelError, match="damaged or replaced"):
        promote("model-1", models_dir=models)
    assert not (models / "default").exists()


# -- the local test split: measured at promotion, the candidate must be better there ----------------


def _painted_measure(blind: set[str]) -> Measure:
    """Measures each model as a painted-box detector (known answers): blind ones see nothing."""

    def measure(model: InstalledModel, data: Path) -> dict[str, Any]:
        painted = InstalledModel(model.card.name, model.folder, _card())
        detector = PaintedBoxDetector(input_size=64, min_area_px=10**9 if model.card.name in blind else 4)
        eval_data = open_eval_data(data, "test", painted.card, Taxonomy.default())
        collected = collect(painted, eval_data, Taxonomy.default(), detector=detector)
        return build_report(collected, painted, Taxonomy.default()).summary

    return measure


def test_the_candidate_must_be_better_on_the_local_test_split(tmp_path: Path) -> None:
    models, local = tmp_path / "models", tmp_path / "local"
    _write_split(local, "test", TEST_IMAGES)
    data = _data_yaml(local, ["garbage_pile", "garbage_bin", "straw_burning"])
    blind = {"model-1", "model-3"}

    _install(tmp_path, "model-1", b"one", garbage_pile=0.5)
    first = promote("model-1", models_dir=models, local_data=data, measure=_painted_measure(blind))
    assert first.accepted and first.local is not None and "no default model" in first.local.reason

    _install(tmp_path, "model-2", b"two", garbage_pile=0.5)  # the same on the public split, better locally
    second = promote("model-2", models_dir=models, local_data=data, measure=_painted_measure(blind))
    assert second.accepted and second.local is not None
    assert (second.local.current_map50, second.local.candidate_map50) == (0.0, 1.0)
    assert "local test split" in format_decision(second)

    _install(tmp_path, "model-3", b"three", garbage_pile=0.6)  # better on the public split, blind locally
    third = promote("model-3", models_dir=models, local_data=data, measure=_painted_measure(blind))
    assert not third.accepted
    assert any("mean AP50 is not better (1.000 -> 0.000)" in r for r in third.reasons), third.reasons
    assert resolve_model("default", models).card.name == "model-2"

    log = [json.loads(line) for line in (models / "promotions.jsonl").read_text().splitlines()]
    assert [entry["accepted"] for entry in log] == [True, True, False]
    assert log[2]["public"]["candidate_map50"] == 0.6 and log[2]["public"]["current_map50"] == 0.5
    assert (log[2]["local"]["current_map50"], log[2]["local"]["candidate_map50"]) == (1.0, 0.0)
    assert log[2]["local"]["dataset_hash"] == log[1]["local"]["dataset_hash"]


@pytest.mark.slow
def test_equal_on_the_local_split_is_not_better_through_the_real_model(tiny_model, tmp_path: Path) -> None:
    """The same ONNX weights as default and candidate, measured by the serving pipeline on the local
    test split: the same figures, so the candidate is refused (it must be better there)."""
    from tests.vision.fakes import install_tiny_model
    from vision.model_registry import sha256_file

    models, local = tmp_path / "models", tmp_path / "local"
    _write_split(local, "test", TEST_IMAGES)
    data = _data_yaml(local, ["garbage_pile", "garbage_bin", "straw_burning"])
    sha = sha256_file(tiny_model.onnx_path)
    for name in ("default", "candidate"):
        install_tiny_model(tiny_model.onnx_path, models, name,
                           metrics={**metrics_for(sha, garbage_pile=0.5), "model": name})
    decision = promote("candidate", models_dir=models, local_data=data)
    assert not decision.accepted and decision.local is not None
    assert decision.local.current_map50 == decision.local.candidate_map50
    assert decision.local.dataset_hash and "is not better" in decision.reasons[-1]
    assert resolve_model("default", models).card.name == "default"
