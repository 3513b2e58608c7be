"""Model registry and cards: finding models, checksums, clear errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from vision.errors import ModelError
from vision.model_card import ModelCard
from vision.model_registry import DEFAULT_MODEL, default_models_dir, list_models, resolve_model, sha256_file
from vision.taxonomy import Taxonomy

WEIGHTS = b"pretend onnx weights"


def card_dict(name: str, weights: bytes = WEIGHTS, **overrides) -> dict:
    return {
        "name": name,
        "version": "2026.11.23-1",
        "sha256": hashlib.sha256(weights).hexdigest(),
        "input_size": 640,
        "labels": ["garbage", "garbage_bin", "smoke"],
        "label_map": {"garbage": "garbage_pile", "garbage_bin": None, "smoke": "straw_burning"},
        "thresholds": {"smoke": 0.3},
        **overrides,
    }


def install(root: Path, name: str, weights: bytes | None = WEIGHTS, **overrides) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "card.json").write_text(json.dumps(card_dict(name, **overrides)), encoding="utf-8")
    if weights is not None:
        (folder / "model.onnx").write_bytes(weights)
    return folder


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"x" * 3_000_000)
    assert sha256_file(path, chunk_size=1 << 16) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


def test_list_models_sorted_by_name(tmp_path: Path) -> None:
    install(tmp_path, "zeta")
    install(tmp_path, "alpha")
    (tmp_path / "not_a_model").mkdir()
    models = list_models(tmp_path)
    assert [m.name for m in models] == ["alpha", "zeta"]
    assert models[0].card.labels == ["garbage", "garbage_bin", "smoke"]
    assert models[0].weights == tmp_path / "alpha" / "model.onnx"


def test_list_models_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert list_models(tmp_path / "nothing_here") == []


def test_list_models_reports_a_broken_card(tmp_path: Path) -> None:
    install(tmp_path, "good")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "card.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match=r"bad/card.json: model card is not valid JSON"):
        list_models(tmp_path)


@pytest.mark.parametrize("how", ["name", "folder", "card"])
def test_resolve_model_by_name_folder_or_card(tmp_path: Path, how: str) -> None:
    folder = install(tmp_path, "v1")
    target = {"name": "v1", "folder": str(folder), "card": str(folder / "card.json")}[how]
    model = resolve_model(target, models_dir=tmp_path)
    assert model.name == "v1" and model.folder == folder and model.card.version == "2026.11.23-1"


def test_resolve_model_without_a_name_takes_the_default(tmp_path: Path) -> None:
    install(tmp_path, DEFAULT_MODEL)
    assert resolve_model(models_dir=tmp_path).name == DEFAULT_MODEL


def test_missing_default_model_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ModelError,
                       match=r"no trained default model is installed .*patrol train.*--model PATH"):
        resolve_model(models_dir=tmp_path)


def test_unknown_model_name(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no model card at .*v9/card.json"):
        resolve_model("v9", models_dir=tmp_path)


def test_sha256_mismatch_is_refused(tmp_path: Path) -> None:
    folder = install(tmp_path, "v1")
    (folder / "model.onnx").write_bytes(WEIGHTS + b" tampered")
    with pytest.raises(ModelError,
                       match=r"model.onnx has sha256 [0-9a-f]{64}, but its card says [0-9a-f]{64}"):
        resolve_model("v1", models_dir=tmp_path)


def test_missing_weights_are_refused(tmp_path: Path) -> None:
    install(tmp_path, "v1", weights=None)
    with pytest.raises(ModelError, match="weights file .*model.onnx is missing"):
        resolve_model("v1", models_dir=tmp_path)


def test_models_dir_from_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATROL_MODELS_DIR", str(tmp_path))
    install(tmp_path, "v1")
    assert default_models_dir() == tmp_path
    assert [m.name for m in list_models()] == ["v1"]
    monkeypatch.delenv("PATROL_MODELS_DIR")
    assert default_models_dir().name == "models"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"label_map": {"garbage": "garbage_pile"}}, "label_map to cover every label"),
        ({"thresholds": {"fire": 0.5}}, "thresholds name labels the model lacks"),
        ({"sha256": "abc"}, "sha256"),
        ({"input_size": 16}, "input_size"),
        ({"labels": []}, "labels"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_invalid_cards_are_refused(tmp_path: Path, overrides, match) -> None:
    path = tmp_path / "card.json"
    path.write_text(json.dumps(card_dict("v1", **overrides)), encoding="utf-8")
    with pytest.raises(ModelError, match=match):
        ModelCard.read(path)


def test_card_round_trip_thresholds_and_taxonomy(tmp_path: Path) -> None:
    card = ModelCard.model_validate(card_dict("v1", trained_classes=["garbage_pile", "straw_burning"]))
    card.write(tmp_path / "card.json")
    again = ModelCard.read(tmp_path / "card.json")
    assert again == card
    taxonomy = Taxonomy.default()
    card.check_taxonomy(taxonomy)
    assert card.threshold_for("smoke", taxonomy) == 0.3             # the card's own
    assert card.threshold_for("garbage", taxonomy) == 0.35          # garbage_pile's default
    assert card.threshold_for("garbage_bin", taxonomy) == 0.25      # helper label
    stray = ModelCard.model_validate(card_dict("v2", label_map={"garbage": "trash", "garbage_bin": None,
                                                                "smoke": "straw_burning"}))
    with pytest.raises(ModelError, match=r"unknown taxonomy keys \['trash'\]"):
        stray.check_taxonomy(taxonomy)
