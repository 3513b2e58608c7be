"""Training options, the run record (data hash, code version) and the offline preparations."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from contextlib import nullcontext as does_not_raise
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from tests.training.synthetic import make_synthetic_dataset
from training.run_record import (
    command_line,
    describe_code,
    describe_data,
    hash_dataset_files,
    portable_command,
)
from training.train import (
    TrainingError,
    TrainOptions,
    _describe_base,
    amp_mode,
    place_offline_fonts,
    train,
)
from training.transplant import UnsafeCheckpointError


@pytest.fixture
def dataset(tmp_path):
    return make_synthetic_dataset(tmp_path / "shapes", n_train=4, n_val=2, seed=1)


def _first_label(ds):
    return ds.split("train")[0].label_path


def _first_image(ds):
    return ds.split("train")[0].image_path


@pytest.mark.parametrize("change, same_hash", [
    (lambda ds: None, True),
    (lambda ds: _first_label(ds).write_text("0 0.5 0.5 0.2 0.2\n"), False),
    (lambda ds: _first_image(ds).write_bytes(_first_image(ds).read_bytes() + b"\0"), False),
    (lambda ds: (ds.root / "val" / "labels" / "extra.txt").write_text("1 0.5 0.5 0.1 0.1\n"), False),
    (lambda ds: (ds.root / "notes.txt").write_text("not part of the data"), True),
])
def test_dataset_hash_follows_images_and_labels(dataset, change, same_hash):
    before = hash_dataset_files(dataset.data_yaml, list(dataset.labels))
    change(dataset)
    after = hash_dataset_files(dataset.data_yaml, list(dataset.labels))
    assert (before == after) is same_hash


def test_dataset_hash_depends_on_content_not_location(dataset, tmp_path):
    copy = tmp_path / "elsewhere"
    shutil.copytree(dataset.root, copy)
    moved_yaml = copy / "data.yaml"
    moved_yaml.write_text(moved_yaml.read_text().replace(str(dataset.root), str(copy)))
    assert hash_dataset_files(moved_yaml, list(dataset.labels)) == \
        hash_dataset_files(dataset.data_yaml, list(dataset.labels))
    assert hash_dataset_files(moved_yaml, ["renamed", "b", "c"]) != \
        hash_dataset_files(dataset.data_yaml, list(dataset.labels))


def test_describe_data_prefers_the_dataset_card(dataset):
    plain = describe_data(dataset.data_yaml)
    assert plain.hash_source == "files" and plain.labels == list(dataset.labels)
    card = {"name": "shapes", "version": 3, "hash": "a" * 64,
            "label_map": {"red_box": "garbage_pile", "green_ellipse": None, "blue_box": "blue_steel_roof"},
            "sources": [{"name": "drawn", "licence": "CC BY 4.0", "url": "https://example.org",
                         "attribution": "Drawn shapes, CC BY 4.0"}]}
    (dataset.root / "dataset_card.json").write_text(json.dumps(card))
    carded = describe_data(dataset.data_yaml)
    assert (carded.hash, carded.hash_source, carded.name, carded.version) == ("a" * 64, "dataset_card",
                                                                              "shapes", 3)
    assert carded.label_map == card["label_map"]
    assert carded.attribution == ["Drawn shapes, CC BY 4.0"]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_code_version_commit_and_dirty_flag(tmp_path):
    assert describe_code(tmp_path).commit == "unknown"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "a.py"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True,
                          check=True).stdout.strip()
    clean = describe_code(tmp_path)
    assert (clean.commit, clean.dirty) == (head, False)
    (tmp_path / "a.py").write_text("x = 2\n")
    assert describe_code(tmp_path).dirty is True


def test_command_line_is_shell_quoted():
    assert command_line(["patrol", "train", "--name", "a b", "--data", "d.yaml"]) == \
        "patrol train --name 'a b' --data d.yaml"


def test_portable_command_makes_absolute_paths_relative_to_cwd(tmp_path):
    cwd = tmp_path / "project"
    argv = [str(cwd / ".venv/bin/patrol"), "train", "--data", str(tmp_path / "d" / "data.yaml"),
            f"--project={tmp_path / 'runs'}", "--name", "a", "--base", "yolov5nu.yaml"]
    assert portable_command(argv, cwd) == [".venv/bin/patrol", "train", "--data", "../d/data.yaml",
                                           "--project=../runs", "--name", "a", "--base", "yolov5nu.yaml"]


@pytest.mark.parametrize("base, expectation, kind", [
    ("yolov5nu.yaml", does_not_raise(), "architecture"),
    ("missing.pt", pytest.raises(TrainingError, match="not found"), None),
    ("model.onnx", pytest.raises(TrainingError, match="expected the base"), None),
])
def test_base_must_be_a_local_checkpoint_or_an_architecture(base, expectation, kind):
    with expectation:
        assert _describe_base(base, Path("runs/r"))["kind"] == kind


def test_base_checkpoint_is_hashed(tmp_path):
    weights = tmp_path / "w.pt"
    torch.save({"model": {"w": torch.zeros(2)}}, weights)
    described = _describe_base(str(weights), tmp_path / "runs" / "r")
    assert described["kind"] == "checkpoint"
    assert described["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert described["path"] == "../../w.pt"  # relative to the run folder: cards name no machine paths


class _Planted:
    def __reduce__(self):
        return (os.system, ("true",))


def test_base_checkpoint_with_planted_code_is_refused(tmp_path):
    weights = tmp_path / "planted.pt"
    torch.save({"model": _Planted()}, weights)
    with pytest.raises(UnsafeCheckpointError, match="posix.system"):
        _describe_base(str(weights), tmp_path / "runs" / "r")


@pytest.mark.parametrize("fields, expectation", [
    ({}, does_not_raise()),
    ({"epochs": 0}, pytest.raises(ValidationError)),
    ({"imgsz": 16}, pytest.raises(ValidationError)),
    ({"freeze": 25}, pytest.raises(ValidationError)),
    ({"lr0": 0.0}, pytest.raises(ValidationError)),
    ({"mosaic": 0.5}, pytest.raises(ValidationError, match="Extra inputs")),
])
def test_train_options_are_bounded_and_closed(tmp_path, fields, expectation):
    with expectation:
        TrainOptions(data=tmp_path / "d.yaml", base="yolov5nu.yaml", name="run", **fields)


def test_train_refuses_an_existing_run_and_missing_data(dataset, tmp_path):
    with pytest.raises(TrainingError, match="not found"):
        train(TrainOptions(data=tmp_path / "absent.yaml", base="yolov5nu.yaml", name="r",
                           project=tmp_path / "runs"), ["patrol"])
    (tmp_path / "runs" / "r").mkdir(parents=True)
    with pytest.raises(TrainingError, match="exists"):
        train(TrainOptions(data=dataset.data_yaml, base="yolov5nu.yaml", name="r",
                           project=tmp_path / "runs"), ["patrol"])


def test_cpu_training_never_asks_for_amp():
    assert amp_mode("cpu") is False


@pytest.mark.slow
def test_fonts_are_placed_once_where_ultralytics_looks(tmp_path, monkeypatch):
    assert sorted(place_offline_fonts(tmp_path)) == ["Arial.Unicode.ttf", "Arial.ttf"]
    assert place_offline_fonts(tmp_path) == []
    assert (tmp_path / "Arial.ttf").stat().st_size > 10_000

    from vision.detectors.ultralytics_offline import import_ultralytics
    import_ultralytics()
    from ultralytics.utils import checks, downloads

    def no_network(*args, **kwargs):
        raise AssertionError("check_font tried to reach the network")

    # check_font is lru_cached: an earlier training test in the same process may have
    # cached the real config folder's answer, so start and end with an empty cache.
    cached = checks.check_font
    while not hasattr(cached, "cache_clear"):
        cached = cached.__wrapped__
    cached.cache_clear()
    monkeypatch.setattr(checks, "USER_CONFIG_DIR", tmp_path)
    monkeypatch.setattr(downloads, "is_url", no_network)
    monkeypatch.setattr(downloads, "safe_download", no_network)
    try:
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):
            assert Path(checks.check_font(name)) == tmp_path / name
    finally:
        cached.cache_clear()
