"""`patrol recipes default-v2`: the plan for a fresh and a half-done folder, the chunked training
stop, and (slow) the whole recipe up to export on synthetic data at 64 px, paused and resumed."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Literal

import pytest
import yaml

from tests.training.synthetic import make_synthetic_dataset
from training.datasets.build import build_dataset
from training.datasets.spec import DatasetSpec
from training.recipes.default_v2 import PAUSED_EXIT, Settings, execute, plan
from training.run_record import CodeRecord, HardwareRecord, RunRecord, describe_data
from training.train import Chunk, TrainingPaused

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LABELS = ("garbage_pile", "roadside_clutter")


def _toy(tmp_path: Path) -> tuple[Path, Path]:
    """A spec and its data root: synthetic shapes labelled with two taxonomy keys."""
    root = tmp_path / "data"
    make_synthetic_dataset(root / "shapes", n_train=24, n_val=8, n_test=8, seed=0, labels=LABELS)
    spec = {"name": "toy-v2", "version": 1,
            "labels": [{"name": label, "taxonomy": label} for label in LABELS],
            "fractions": {"train": 0.6, "val": 0.2, "test": 0.2},
            "sources": [{"name": "shapes", "path": "shapes", "folders": ["train", "val", "test"],
                         "classes": dict(enumerate(LABELS)), "class_map": {x: x for x in LABELS},
                         "licence": "CC0 1.0"}]}
    path = tmp_path / "toy-v2.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path, root


def _settings(tmp_path: Path, spec: Path, root: Path, **changes: object) -> Settings:
    values: dict = {"spec": spec, "work": tmp_path / "work", "name": "v2", "base": "default", "imgsz": 640,
                    "epochs": 100, "batch": 16, "device": "cpu", "patience": 30, "seed": 0,
                    "data_root": root, "models_dir": tmp_path / "models", "stop_after_minutes": 8.0}
    return Settings(**{**values, **changes})


def _by_step(settings: Settings) -> dict[str, tuple[str, str, list[str]]]:
    """Each planned step's action, reason and command ([] when it has none)."""
    return {a.step: (a.action, a.reason, a.command or []) for a in plan(settings)}


def test_plan_for_a_fresh_folder_runs_every_step(tmp_path: Path) -> None:
    spec, root = _toy(tmp_path)
    steps = _by_step(_settings(tmp_path, spec, root))
    assert list(steps) == ["build", "train", "export", "thresholds", "evaluate", "quantize"]
    assert {action for action, _, _ in steps.values()} == {"run"}
    assert steps["build"][2] == ["datasets", "build", str(spec), str(tmp_path / "work" / "dataset"),
                                 "--data-root", str(root)]
    train = steps["train"][2]
    assert "--resume" not in train
    assert train[train.index("--imgsz") + 1] == "640" and train[train.index("--base") + 1] == "default"
    assert train[train.index("--augment") + 1] == "generalise"
    assert "--freeze" not in train  # the backbone trains too
    assert train[-2:] == ["--stop-after-minutes", "8.0"]
    assert steps["export"][2][:2] == ["export", str(tmp_path / "work/runs/v2-640/weights/best.pt")]
    assert "--overwrite" not in steps["export"][2]
    evaluate = steps["evaluate"][2]
    assert evaluate[evaluate.index("--corruptions") + 1] == "all" and "--per-source" in evaluate
    assert "--write-card" in evaluate and "--choose-thresholds" in steps["thresholds"][2]
    assert steps["quantize"][2][:5] == ["quantize", "v2", "--calib", str(tmp_path / "work/dataset"), "--name"]


def _half_done(tmp_path: Path, status: Literal["paused", "failed"] = "paused",
               data_hash: str | None = None) -> Settings:
    """A built dataset and a training run that stopped after a chunk (status, weights/last.pt)."""
    spec, root = _toy(tmp_path)
    settings = _settings(tmp_path, spec, root, imgsz=416)
    build_dataset(DatasetSpec.from_yaml(spec), settings.dataset, root, check_near_duplicates=False)
    run_dir = settings.run_dir
    (run_dir / "weights").mkdir(parents=True)
    (run_dir / "weights" / "last.pt").write_bytes(b"checkpoint")
    data = describe_data(settings.dataset / "data.yaml", run_dir)
    if data_hash is not None:
        data = data.model_copy(update={"hash": data_hash})
    RunRecord(command=["patrol", "train"], command_line="patrol train", cwd="..", status=status,
              started_at="2026-12-01T00:00:00Z", seed=0, base={"kind": "architecture"}, train_args={},
              data=data, code=CodeRecord(commit="unknown", dirty=None),
              hardware=HardwareRecord(cpu_model="x", cpu_cores=2, memory_gb=None, gpu=None, device="cpu",
                                      python="3", torch="2", ultralytics="8", platform="linux"),
              metrics={"epochs_completed": 3}).write(run_dir)
    return settings


def test_plan_for_a_half_done_folder_skips_the_build_and_resumes_training(tmp_path: Path) -> None:
    settings = _half_done(tmp_path)
    # Training leaves ultralytics' label caches in the build; they do not make it stale.
    (settings.dataset / "labels" / "train.cache").write_bytes(b"ultralytics cache")
    steps = _by_step(settings)
    assert steps["build"][0] == "skip" and steps["build"][2] == []
    assert steps["train"][0] == "resume"
    assert steps["train"][2] == ["train", "--resume", "--name", "v2-416", "--project",
                                 str(settings.project), "--stop-after-minutes", "8.0"]
    assert [steps[s][0] for s in ("export", "thresholds", "evaluate", "quantize")] == ["run"] * 4
    assert steps["export"][1] == "after train"


def test_a_run_trained_on_another_build_blocks_the_plan(tmp_path: Path) -> None:
    settings = _half_done(tmp_path, data_hash="0" * 64)
    steps = _by_step(settings)
    assert steps["train"][0] == "blocked" and "move the run aside" in steps["train"][1]
    assert "export" not in steps
    printed: list[str] = []
    assert execute(settings, echo=printed.append) == 2  # nothing was started
    assert printed[0].startswith("[build] skip") and "cannot go on" in printed[1]


def test_a_run_without_a_checkpoint_is_not_resumed(tmp_path: Path) -> None:
    settings = _half_done(tmp_path, status="failed")
    (settings.run_dir / "weights" / "last.pt").unlink()
    steps = _by_step(settings)
    assert steps["train"][0] == "blocked" and "before its first checkpoint" in steps["train"][1]


def _trainer(epoch: int, epochs: int = 10) -> types.SimpleNamespace:
    return types.SimpleNamespace(epoch=epoch, epochs=epochs)


def test_chunk_pauses_after_its_epochs_but_never_on_the_last_one() -> None:
    stop = Chunk(epochs=2).callbacks()["on_fit_epoch_end"]
    stop(_trainer(4))
    with pytest.raises(TrainingPaused):
        stop(_trainer(5))
    last = Chunk(epochs=1).callbacks()["on_fit_epoch_end"]
    last(_trainer(9))  # the run's final epoch: ultralytics finishes it, no pause
    assert Chunk().callbacks() == {}


def test_chunk_pauses_when_another_epoch_would_pass_its_minutes() -> None:
    assert "on_fit_epoch_end" in Chunk(minutes=10.0).callbacks()
    stop = Chunk(minutes=1e-6).callbacks()["on_fit_epoch_end"]
    with pytest.raises(TrainingPaused, match="one more would pass"):
        stop(_trainer(0))
    roomy = Chunk(minutes=60.0).callbacks()["on_fit_epoch_end"]
    roomy(_trainer(0))
    roomy(_trainer(1))


@pytest.mark.slow
def test_recipe_runs_pauses_resumes_and_exports_on_synthetic_data(tmp_path: Path) -> None:
    spec, root = _toy(tmp_path)
    work, models = tmp_path / "work", tmp_path / "models"
    command = [sys.executable, "-m", "patrol_cli", "recipes", "default-v2", "--work", str(work),
               "--spec", str(spec), "--data-root", str(root), "--models-dir", str(models), "--name", "tiny",
               "--base", "yolov5nu.yaml", "--imgsz", "64", "--epochs", "2", "--batch", "8", "--workers", "0",
               "--device", "auto", "--stop-after-epochs", "1", "--until", "export"]

    def recipe(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([*command, *extra], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=900)

    first = recipe()
    assert first.returncode == PAUSED_EXIT, first.stdout[-3000:] + first.stderr[-3000:]
    run_dir = work / "runs" / "tiny-64"
    paused = RunRecord.read(run_dir)
    assert paused.status == "paused" and paused.metrics["epochs_completed"] == 1
    assert paused.train_args["cutmix"] == 0.2 and paused.train_args["degrees"] == 5.0
    assert "freeze" not in paused.train_args
    dry = recipe("--dry-run")
    assert dry.returncode == 0 and "[build] skip" in dry.stdout and "[train] resume" in dry.stdout
    assert "[export] run: after train" in dry.stdout
    assert not (models / "tiny").exists()  # a dry run runs nothing

    second = recipe()
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    finished = RunRecord.read(run_dir)
    assert finished.status == "finished" and finished.metrics["epochs_completed"] == 2
    assert len(finished.resumed_at) == 1
    rows = (run_dir / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2  # no epoch trained twice
    card = json.loads((models / "tiny" / "card.json").read_text())
    assert card["labels"] == list(LABELS) and card["input_size"] == 64

    third = recipe()
    assert third.returncode == 0
    assert [line.split(":")[0] for line in third.stdout.splitlines() if line.startswith("[")] == [
        "[build] skip", "[train] skip", "[export] skip"]
