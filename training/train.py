"""Fine-tune a detector with ultralytics, offline, resumable, and with a record of what ran.

What would reach the network in ultralytics 8.4.190, and how each is kept out:
- `check_det_dataset` always calls `check_font`, which HEADs and downloads Arial.ttf from
  GitHub unless a file of that name is in the config dir: we place matplotlib's DejaVuSans
  there under the names it looks for (it is only used to draw plots, and plots are off).
- On CUDA, `amp=True` runs `check_amp`, which downloads yolo26n.pt: we pass amp="bf16" where
  the GPU supports it (ultralytics skips the check for bf16), else amp=False. CPU: amp=False.
- A missing `.pt` base makes ultralytics download a same-named release asset: the base must
  be an existing file, or an architecture YAML shipped inside ultralytics.
ultralytics unpickles a .pt in full; `check_ultralytics_checkpoint` first refuses any whose
pickle names more than torch/ultralytics module classes and tensor storage.
- Platform (hub) callbacks upload runs when ULTRALYTICS_API_KEY or the settings' api_key is
  set: both are cleared for the run (and the fact recorded). Analytics and integrations are off through
  `import_ultralytics()` (vision/detectors/ultralytics_offline.py).
`tests/training/test_train_export.py` trains under a socket guard that records any
connection attempt, and fails on one.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from training.augmentation import AugmentName, augmentation_args
from training.run_record import (
    RunRecord,
    data_labels,
    describe_code,
    describe_data,
    describe_hardware,
    now_iso,
    portable_command,
    relative_path,
)
from training.run_record import command_line as quote_command
from training.transplant import check_ultralytics_checkpoint
from vision.errors import ModelError, PatrolVisionError
from vision.model_registry import sha256_file

# Names check_font() looks for in the config dir (ASCII labels, then any other labels).
_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


class TrainingError(ModelError):
    """A training run could not start or did not finish."""


class TrainingPaused(PatrolVisionError):
    """Raised after an epoch's checkpoint is saved, to end a chunk of a longer run on purpose.
    Not a failure: `_fit` catches it before anything else and records the run as paused."""


class TrainOptions(BaseModel):
    """What `patrol train` passes on to ultralytics; every field is recorded with the run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Path = Field(description="YOLO data.yaml (from `patrol dataset build`).")
    base: str = Field(description="Starting weights: an existing .pt (transplanted COCO base or an "
                                  "earlier model of ours), or an ultralytics architecture YAML such "
                                  "as yolov5nu.yaml to train from scratch.")
    name: str = Field(min_length=1, description="Run name: the folder under `project`.")
    project: Path = Field(default=Path("runs"), description="Folder that holds runs.")
    epochs: int = Field(default=50, ge=1, le=10_000)
    imgsz: int = Field(default=640, ge=32, le=4096, description="Square training input size.")
    batch: int = Field(default=16, ge=1, le=1024)
    freeze: int | None = Field(default=None, ge=0, le=24,
                               description="Freeze the first N layers; 10 = the YOLOv5 backbone.")
    seed: int = Field(default=0, ge=0)
    device: str = Field(default="cpu", description="'cpu', or a CUDA index such as '0'.")
    workers: int | None = Field(default=None, ge=0, le=64,
                                description="Dataloader workers; None = cores - 1 (max 8).")
    patience: int = Field(default=20, ge=0, description="Stop after N epochs without improvement.")
    cache: bool = Field(default=False, description="Keep decoded images in RAM.")
    fraction: float = Field(default=1.0, gt=0.0, le=1.0, description="Share of train images used.")
    # 'auto' and None leave ultralytics' choice (AdamW at a rate fitted to the class count, or
    # SGD for long runs); a fine-tune (training/finetune.py) names both and turns warmup off.
    optimizer: Literal["auto", "SGD", "Adam", "AdamW"] = Field(default="auto",
                                                              description="ultralytics optimizer.")
    lr0: float | None = Field(default=None, gt=0.0, le=1.0, description="Initial learning rate; None = "
                                                                          "ultralytics' default.")
    warmup_epochs: float | None = Field(default=None, ge=0.0, description="None = ultralytics' default (3).")
    augment: AugmentName = Field(default="ultralytics", description="Named augmentation settings "
                                                                     "(training/augmentation.py).")
    taught_labels: tuple[str, ...] = Field(
        default=(), description="Labels the data teaches anew: their class rows learn `taught_rate` times "
                                "as fast. Empty: the labels a grown head adds.")
    taught_rate: float = Field(default=1.0, ge=1.0, le=1000.0, description="See taught_labels "
                                                                            "(training/grow_head.faster_rows).")


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    best: Path
    last: Path
    record: RunRecord


def place_offline_fonts(config_dir: Path) -> list[str]:
    """Put a local TTF where check_font() looks first, so it never downloads Arial."""
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    placed = []
    for name in _FONT_NAMES:
        target = config_dir / name
        if not target.exists():
            config_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            placed.append(name)
    return placed


def amp_mode(device: str) -> bool | str:
    """AMP setting that never triggers ultralytics' downloading AMP check (see module doc)."""
    if device in ("cpu", "mps"):
        return False
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
        return "bf16"
    return False


def default_workers() -> int:
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def _prepare_offline(device: str) -> tuple[Any, dict[str, Any]]:
    from vision.detectors.ultralytics_offline import import_ultralytics

    ultralytics = import_ultralytics()
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    # Either key turns on ultralytics' platform callbacks, which upload the run.
    api_key_removed = os.environ.pop("ULTRALYTICS_API_KEY", None) is not None
    if SETTINGS.get("api_key"):
        SETTINGS.update({"api_key": ""})
        api_key_removed = True
    fonts = place_offline_fonts(Path(USER_CONFIG_DIR))
    amp = amp_mode(device)
    # fonts_placed are in ultralytics' config dir (USER_CONFIG_DIR), a folder of this machine.
    return ultralytics, {"amp": amp, "plots": False, "fonts_placed": fonts,
                         "api_key_removed": api_key_removed,
                         "YOLO_OFFLINE": os.environ.get("YOLO_OFFLINE")}


def resolve_base(base: str, models_dir: Path | None = None) -> str:
    """`base` as ultralytics takes it: a .pt or architecture YAML as given; the name of an
    installed model (e.g. "default") becomes its shipped, hash-verified PyTorch weights, so a
    fine-tune starts from the model that serves."""
    from vision.model_registry import resolve_model

    if Path(base).suffix in (".pt", ".yaml", ".yml"):
        return base
    try:
        model = resolve_model(base, models_dir)
    except ModelError as exc:
        raise TrainingError(f"expected --base to be a .pt, an architecture .yaml or an installed model's "
                            f"name; {exc}") from exc
    try:
        return str(model.pytorch_weights())
    except ModelError as exc:
        raise TrainingError(str(exc)) from exc


def _fit_head(yolo: Any, labels: list[str]) -> dict[str, Any]:
    """Make a checkpoint's head report the data's labels, and say how, for the run record.

    Same labels: kept. The base's labels followed by new ones: grown, the learned class rows
    kept (training/grow_head.py). Anything else: ultralytics re-initialises the class rows (the
    shapes differ) or, with the same count, would teach old rows new meanings: refused, since
    either way the base's class knowledge is silently lost.
    """
    from training.grow_head import grow_classes

    model = yolo.model
    known = [model.names[i] for i in sorted(model.names)]
    if known == labels:
        return {"labels": known, "action": "kept"}
    if labels[:len(known)] == known:
        yolo.model = grow_classes(model, labels)
        return {"labels": known, "action": "grown", "added": labels[len(known):]}
    raise TrainingError(f"the base checkpoint's labels {known} are not the data's labels {labels} nor their "
                        f"first labels; start from an architecture .yaml or a transplanted base for a new "
                        f"label set, or list the base's labels first in the dataset spec")


def _describe_base(base: str, run_dir: Path) -> dict[str, Any]:
    path = Path(base)
    if path.suffix == ".pt":
        if not path.is_file():
            # ultralytics would try to download a release asset of that name.
            raise TrainingError(f"base weights {path} not found; pass an existing .pt (e.g. from "
                                f"`patrol transplant`) or an architecture YAML such as yolov5nu.yaml")
        check_ultralytics_checkpoint(path)
        return {"kind": "checkpoint", "path": relative_path(path, run_dir), "sha256": sha256_file(path)}
    if path.suffix in (".yaml", ".yml"):
        return {"kind": "architecture", "path": base, "sha256": None}
    raise TrainingError(f"expected the base to be a .pt checkpoint or an architecture .yaml, got {base!r}")


def _metrics_of(trainer: Any) -> dict[str, Any]:
    metrics = {k: float(v) for k, v in (getattr(trainer, "metrics", None) or {}).items()
               if isinstance(v, int | float)}
    metrics["epochs_completed"] = int(getattr(trainer, "epoch", -1)) + 1
    return metrics


def _run_dir(options: TrainOptions) -> Path:
    # A relative project would land under ultralytics' own runs_dir setting; anchor it here.
    return (options.project if options.project.is_absolute() else Path.cwd() / options.project).resolve()


Callbacks = Mapping[str, Callable[[Any], None]]


@dataclass(frozen=True)
class Chunk:
    """End this process's share of a run early: after `epochs` epochs, or after the epoch that
    leaves less than one more epoch's time within `minutes`. The run is then `paused` and
    `patrol train --resume` continues it (a device call of 10 minutes runs one chunk)."""

    epochs: int | None = None
    minutes: float | None = None

    def callbacks(self) -> dict[str, Callable[[Any], None]]:
        if self.epochs is None and self.minutes is None:
            return {}
        started = time.perf_counter()
        done: list[float] = []  # seconds since start at the end of each epoch of this chunk

        def stop_when_due(trainer: Any) -> None:
            done.append(time.perf_counter() - started)
            if int(getattr(trainer, "epoch", 0)) + 1 >= int(getattr(trainer, "epochs", 0)):
                return  # the last epoch: let ultralytics finish the run
            if self.epochs is not None and len(done) >= self.epochs:
                raise TrainingPaused(f"paused after {len(done)} epochs of this chunk")
            longest = max(b - a for a, b in zip([0.0, *done], done, strict=False))
            if self.minutes is not None and done[-1] + longest > self.minutes * 60:
                raise TrainingPaused(f"paused after {len(done)} epochs: one more would pass "
                                     f"{self.minutes} min")

        # on_fit_epoch_end runs after ultralytics saved weights/last.pt with its optimizer state.
        return {"on_fit_epoch_end": stop_when_due}


def _use_all_cores(trainer: Any) -> None:
    """ultralytics' select_device() sets torch to cores - 1 threads (1 on a 2-core machine)
    when the trainer picks its device; on CPU that halves training speed, so restore all."""
    import torch

    if getattr(getattr(trainer, "device", None), "type", "cpu") == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)


def _add_callbacks(model: Any, callbacks: Callbacks | None, chunk: Chunk | None = None) -> None:
    model.add_callback("on_pretrain_routine_end", _use_all_cores)
    # ultralytics keeps a list per event: the chunk's stop runs after the caller's callbacks.
    for event, function in [*(callbacks or {}).items(), *(chunk.callbacks() if chunk else {}).items()]:
        model.add_callback(event, function)


def optimiser_args(options: TrainOptions) -> dict[str, Any]:
    """ultralytics arguments for what `options` sets; what it leaves as None stays ultralytics'."""
    args: dict[str, Any] = {}
    if options.optimizer != "auto":
        args["optimizer"] = options.optimizer
    if options.lr0 is not None:
        args["lr0"] = options.lr0
    if options.warmup_epochs is not None:
        # ultralytics' warmup starts bias rates at warmup_bias_lr (0.1) unless the optimizer is
        # 'auto': a fine-tune that warms up at all warms the biases from zero.
        args["warmup_epochs"] = options.warmup_epochs
        args["warmup_bias_lr"] = 0.0
    return args


def train(options: TrainOptions, argv: list[str], callbacks: Callbacks | None = None,
          chunk: Chunk | None = None) -> TrainResult:
    """Train from `options.base`; writes run_record.json beside ultralytics' outputs.

    `callbacks` maps ultralytics event names (e.g. "on_fit_epoch_end") to functions of the
    trainer, for progress reports. `chunk` pauses the run early (see Chunk).
    """
    if not options.data.is_file():
        raise TrainingError(f"data file {options.data} not found; build one with `patrol datasets build`")
    project = _run_dir(options)
    run_dir = project / options.name
    base = _describe_base(options.base, run_dir)
    data = describe_data(options.data.resolve(), run_dir)
    if (project / options.name).exists():
        raise TrainingError(f"run {project / options.name} exists; pick another --name, or pass "
                            f"--resume to continue it")
    ultralytics, offline = _prepare_offline(options.device)
    model = ultralytics.YOLO(options.base, task="detect")
    _add_callbacks(model, callbacks, chunk)
    labels = data_labels(options.data)  # read once: the head's fit and the taught rows both need them
    if base["kind"] == "checkpoint" and isinstance(getattr(model, "ckpt", None), dict):
        branched = model.ckpt.get("branched")
        if branched:
            # ultralytics would rebuild it as one plain model from the base's layers: the taught
            # branch, the reviewers' work, silently gone (training/branches.py)
            taught = (branched.get("taught") or {}).get("file")
            raise TrainingError(f"{options.base} is a branched model, served as is; fine-tune its taught "
                                f"checkpoint ({taught}, beside it) and compose again")
        transplant = model.ckpt.get("transplant")
        if transplant:
            base["transplant"] = {"source_sha256": transplant.get("source_sha256"),
                                  "counts": transplant.get("counts")}
        rebuilt = model.ckpt.get("rebuilt_from_onnx")
        if rebuilt:
            base["rebuilt_from_onnx"] = {"onnx_sha256": rebuilt.get("onnx_sha256")}
        base["head"] = _fit_head(model, labels)
    added = tuple(base.get("head", {}).get("added", ()))
    taught = _add_taught_rows(model, options.taught_labels or added, options.taught_rate, labels)
    if taught is not None:  # the record names it only when a run has one
        base["taught"] = taught
    train_args: dict[str, Any] = {
        "data": str(options.data.resolve()), "epochs": options.epochs, "imgsz": options.imgsz,
        "batch": options.batch, "device": options.device, "seed": options.seed, "deterministic": True,
        "project": str(project), "name": options.name, "val": True,
        # We refused an existing run above and create the folder for the record first.
        "exist_ok": True,
        "plots": False, "amp": offline["amp"], "patience": options.patience, "cache": options.cache,
        "fraction": options.fraction, "verbose": False,
        "workers": options.workers if options.workers is not None else default_workers(),
        "pretrained": base["kind"] == "checkpoint",
    }
    if options.freeze is not None:
        train_args["freeze"] = options.freeze
    train_args.update(optimiser_args(options))
    train_args.update(augmentation_args(options.augment))
    # The record names no absolute path of this machine (it goes into the model card).
    command = portable_command(list(argv), Path.cwd())
    recorded_args = {**train_args, "data": relative_path(options.data, run_dir),
                     "project": relative_path(project, run_dir)}
    record = RunRecord(
        run_id=options.name, command=command, command_line=quote_command(command),
        cwd=relative_path(Path.cwd(), run_dir), status="running", started_at=now_iso(), seed=options.seed,
        base=base, train_args=recorded_args, data=data, code=describe_code(),
        hardware=describe_hardware(options.device), offline=offline)
    return _fit(lambda: model.train(**train_args), model, record, run_dir, previous_seconds=0.0)


def _add_taught_rows(model: Any, taught_labels: tuple[str, ...], rate: float, labels: list[str]
                     ) -> dict[str, Any] | None:
    """The faster class rows of `taught_labels` registered on `model`, and what the record says."""
    from training.grow_head import faster_rows

    if not taught_labels or rate == 1.0:
        return None
    unknown = [label for label in taught_labels if label not in labels]
    if unknown:
        raise TrainingError(f"taught labels {unknown} are not among the data's labels {labels}")
    rows = [labels.index(label) for label in taught_labels]
    _add_callbacks(model, faster_rows(rows, rate))
    return {"labels": list(taught_labels), "rows": rows, "rate": rate}


def resume(run_dir: Path, argv: list[str], callbacks: Callbacks | None = None,
           chunk: Chunk | None = None) -> TrainResult:
    """Continue an interrupted run from its weights/last.pt with the arguments it started with."""
    last = run_dir / "weights" / "last.pt"
    if not last.is_file():
        raise TrainingError(f"nothing to resume: {last} does not exist")
    try:
        record = RunRecord.read(run_dir)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"{run_dir}: cannot read its run record: {exc}") from exc
    check_ultralytics_checkpoint(last)
    ultralytics, offline = _prepare_offline(record.train_args.get("device", "cpu"))
    model = ultralytics.YOLO(str(last), task="detect")
    _add_callbacks(model, callbacks, chunk)
    taught = record.base.get("taught")
    if taught:  # the run's own setting: its taught rows keep their rate after a pause
        from training.grow_head import faster_rows

        _add_callbacks(model, faster_rows(taught["rows"], float(taught["rate"])))
    record = record.model_copy(update={
        "status": "running", "resumed_at": [*record.resumed_at, now_iso()],
        "offline": {**record.offline, **offline}, "error": None,
        "code": describe_code()})  # the code that finishes the run may differ; keep the latest
    resume_args = {"resume": str(last), "plots": False, "amp": offline["amp"]}
    return _fit(lambda: model.train(**resume_args), model, record, run_dir,
                previous_seconds=record.wall_seconds or 0.0)


def _fit(run: Any, model: Any, record: RunRecord, run_dir: Path, previous_seconds: float) -> TrainResult:
    started = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    record.write(run_dir)
    try:
        run()
    except TrainingPaused:
        record = record.model_copy(update={
            "status": "paused", "error": None, "metrics": _metrics_of(model.trainer),
            "wall_seconds": round(previous_seconds + time.perf_counter() - started, 1)})
        record.write(run_dir)
        last = run_dir / "weights" / "last.pt"
        best = run_dir / "weights" / "best.pt"
        return TrainResult(run_dir=run_dir, best=best if best.is_file() else last, last=last, record=record)
    except BaseException as exc:  # KeyboardInterrupt included: the record must say the run stopped
        failed = record.model_copy(update={
            "status": "failed", "finished_at": now_iso(), "error": f"{type(exc).__name__}: {exc}",
            "wall_seconds": round(previous_seconds + time.perf_counter() - started, 1)})
        failed.write(run_dir)
        raise
    trainer = model.trainer
    actual_dir = Path(trainer.save_dir)
    if actual_dir.resolve() != run_dir.resolve():
        raise TrainingError(f"ultralytics wrote to {actual_dir}, expected {run_dir}")
    done = record.model_copy(update={
        "status": "finished", "finished_at": now_iso(), "metrics": _metrics_of(trainer),
        "wall_seconds": round(previous_seconds + time.perf_counter() - started, 1)})
    done.write(run_dir)
    best, last = run_dir / "weights" / "best.pt", run_dir / "weights" / "last.pt"
    return TrainResult(run_dir=run_dir, best=best if best.is_file() else last, last=last, record=done)
