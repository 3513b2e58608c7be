"""Installing models with cards, recording metrics and thresholds, and card.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from training.registry import install_model, record_metrics, record_thresholds
from vision.errors import ModelError
from vision.model_registry import resolve_model, sha256_file


def card_fields(name: str = "candidate", **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": name, "version": "2026.11.23-1", "architecture": "yolov5nu", "input_size": 640,
        "labels": ["garbage_pile", "garbage_bin", "smoke", "fire"],
        "label_map": {"garbage_pile": "garbage_pile", "garbage_bin": None, "smoke": "straw_burning",
                      "fire": "straw_burning"},
        "trained_classes": ["garbage_pile", "straw_burning"],
        "attribution": ["cn-garbage (CC BY 4.0)"],
    }
    fields.update(changes)
    return fields


def fake_onnx(tmp_path: Path, content: bytes = b"not really onnx") -> Path:
    # The registry never opens the weights, it only hashes them.
    path = tmp_path / f"export-{len(content)}-{content[:4].hex()}.onnx"
    path.write_bytes(content)
    return path


def metrics_for(sha256: str, split: str = "test", **per_class_ap50: float) -> dict[str, Any]:
    per_class = {k: {"ap50": v, "ap50_95": v / 2, "precision": 0.8, "recall": 0.7, "n_images": 10,
                     "n_boxes": 12} for k, v in per_class_ap50.items()}
    return {"model": "candidate", "model_sha256": sha256, "dataset": "toy", "dataset_hash": "d" * 64,
            "split": split, "n_images": 20, "n_negative_images": 5, "per_class": per_class,
            "map50": sum(per_class_ap50.values()) / len(per_class_ap50), "map50_95": 0.3,
            "false_alarms_per_100_negatives": 20.0}


def test_install_computes_the_sha_and_the_loader_verifies_it(tmp_path: Path) -> None:
    onnx = fake_onnx(tmp_path)
    model = install_model(onnx, card_fields(sha256="f" * 64), models_dir=tmp_path / "models")
    assert model.card.sha256 == sha256_file(onnx)
    assert (model.folder / "model.onnx").read_bytes() == onnx.read_bytes()
    assert resolve_model("candidate", tmp_path / "models").card == model.card
    (model.folder / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="damaged or replaced"):
        resolve_model("candidate", tmp_path / "models")


def test_install_refuses_to_replace_and_bad_cards(tmp_path: Path) -> None:
    models = tmp_path / "models"
    install_model(fake_onnx(tmp_path), card_fields(), models_dir=models)
    with pytest.raises(ModelError, match="already installed"):
        install_model(fake_onnx(tmp_path), card_fields(), models_dir=models)
    install_model(fake_onnx(tmp_path, b"v2"), card_fields(), models_dir=models, overwrite=True)
    assert (models / "candidate" / "model.onnx").read_bytes() == b"v2"
    with pytest.raises(ModelError, match="label_map to cover every label"):
        install_model(fake_onnx(tmp_path), card_fields(name="x", label_map={}), models_dir=models)
    with pytest.raises(ModelError, match="unknown taxonomy keys"):
        install_model(fake_onnx(tmp_path), card_fields(name="y", trained_classes=["rubbish"]),
                      models_dir=models)
    with pytest.raises(ModelError, match="folder name"):
        install_model(fake_onnx(tmp_path), card_fields(name="../up"), models_dir=models)
    assert sorted(p.name for p in models.iterdir()) == ["candidate"]


def test_card_md_says_what_the_model_does_not_claim(tmp_path: Path) -> None:
    model = install_model(fake_onnx(tmp_path), card_fields(), models_dir=tmp_path / "models")
    text = (model.folder / "card.md").read_text()
    assert "**Not claimed:** roadside_clutter, illegal_structure, blue_steel_roof" in text
    assert "| garbage_bin | — (helper label, never reported) | – |" in text
    assert "| smoke | straw_burning 秸秆焚烧 | 0.300 |" in text
    assert "Not measured yet" in text
    assert "cn-garbage (CC BY 4.0)" in text


def test_record_metrics_stores_exactly_the_printed_object(tmp_path: Path) -> None:
    model = install_model(fake_onnx(tmp_path), card_fields(), models_dir=tmp_path / "models")
    summary = metrics_for(model.card.sha256, garbage_pile=0.61, straw_burning=0.42)
    updated = record_metrics(model, summary)
    stored = json.loads((model.folder / "card.json").read_text())["metrics"]
    assert stored == summary
    assert updated.card.dataset["hash"] == "d" * 64
    text = (model.folder / "card.md").read_text()
    assert "| garbage_pile | 0.610 | 0.305 | 0.800 | 0.700 | 10 | 12 |" in text
    assert "Measured on: garbage_pile, straw_burning." in text


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"split": "val"}, "measured on the test split"), ({"model_sha256": "a" * 64}, "measured on weights")],
)
def test_record_metrics_refuses_other_splits_and_weights(tmp_path: Path, changes: dict[str, Any],
                                                         message: str) -> None:
    model = install_model(fake_onnx(tmp_path), card_fields(), models_dir=tmp_path / "models")
    with pytest.raises(ModelError, match=message):
        record_metrics(model, {**metrics_for(model.card.sha256, garbage_pile=0.5), **changes})


def test_new_thresholds_drop_stale_metrics(tmp_path: Path) -> None:
    model = install_model(fake_onnx(tmp_path), card_fields(), models_dir=tmp_path / "models")
    model = record_metrics(model, metrics_for(model.card.sha256, garbage_pile=0.5))
    selection = {"split": "val", "dataset": "toy", "dataset_hash": "d" * 64, "rule": "max F1"}
    updated = record_thresholds(model, {"smoke": 0.27, "garbage_pile": 0.41234}, selection)
    assert updated.card.thresholds == {"smoke": 0.27, "garbage_pile": 0.4123}
    assert updated.card.metrics == {}
    assert updated.card.dataset["threshold_selection"] == selection
    assert "Thresholds chosen on the val split of toy" in (model.folder / "card.md").read_text()
    with pytest.raises(ModelError, match="thresholds name labels the model lacks"):
        record_thresholds(updated, {"bicycle": 0.5}, selection)
