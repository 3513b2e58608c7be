"""The next default model (issue #11) as named, resumable steps: `patrol recipes default-v2`.

build -> train -> export -> thresholds -> evaluate -> quantize, then what to promote. Each step
is one `patrol` command (the same functions a person would call: no step is reimplemented
here), run in a child process, and is skipped when its output exists and is still valid for
its inputs (dataset hash, the run's best.pt, the installed model's sha256). Training resumes
(`patrol train --resume`) when its run folder holds a checkpoint, and `--stop-after-minutes`
pauses it after an epoch, so a device command of 10 minutes runs one chunk and the same
command run again continues. `--dry-run` prints the plan and the commands, runs nothing.

Exit status: 0 done (or --until reached), 3 training paused (run the same command again),
2 a step cannot go on (the message says why), else the failing step's own status.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, get_args

import typer

from vision.errors import ModelError

if TYPE_CHECKING:
    from collections.abc import Callable

    from vision.model_registry import InstalledModel

StepName = Literal["build", "train", "export", "thresholds", "evaluate", "quantize"]
STEPS: tuple[StepName, ...] = get_args(StepName)
PAUSED_EXIT = 3


@dataclass(frozen=True)
class Settings:
    spec: Path
    work: Path
    name: str
    base: str
    imgsz: int
    epochs: int
    batch: int
    device: str
    patience: int
    seed: int
    workers: int | None = None
    data_root: Path | None = None
    models_dir: Path | None = None
    stop_after_minutes: float | None = None
    stop_after_epochs: int | None = None
    corruption_images: int | None = None

    @property
    def dataset(self) -> Path:
        return self.work / "dataset"

    @property
    def project(self) -> Path:
        return self.work / "runs"

    @property
    def run_name(self) -> str:
        return f"{self.name}-{self.imgsz}"

    @property
    def run_dir(self) -> Path:
        return self.project / self.run_name

    @property
    def int8_name(self) -> str:
        return f"{self.name}-int8"

    def models_args(self) -> list[str]:
        return [] if self.models_dir is None else ["--models-dir", str(self.models_dir)]

    def chunk_args(self) -> list[str]:
        return [*_option("--stop-after-minutes", self.stop_after_minutes),
                *_option("--stop-after-epochs", self.stop_after_epochs)]


def _option(flag: str, value: object) -> list[str]:
    """`flag value` for a set option, nothing for None."""
    return [] if value is None else [flag, str(value)]


@dataclass(frozen=True)
class Assessment:
    step: StepName
    action: Literal["skip", "run", "resume", "blocked"]
    reason: str
    command: list[str] | None = None  # patrol's arguments; None when skipped or blocked


class RecipeError(ModelError):
    """A step cannot go on (its message says what to do)."""


def auto_device(device: str) -> str:
    """'auto': the first CUDA device when torch sees one, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def _dataset_hash(settings: Settings) -> str | None:
    from training.datasets.card import DatasetCard, hash_built_folder
    from training.datasets.errors import DatasetError

    if not (settings.dataset / "data.yaml").is_file():
        return None
    try:
        card = DatasetCard.read(settings.dataset)
    except DatasetError:
        return None
    # The card's hash against the files it describes: a half-copied or edited build is rebuilt.
    return card.hash if hash_built_folder(settings.dataset, card.labels) == card.hash else None


def _installed(name: str, settings: Settings) -> InstalledModel | None:
    from vision.model_registry import resolve_model

    try:
        return resolve_model(name, settings.models_dir)
    except ModelError:
        return None


def assess_build(settings: Settings) -> Assessment:
    from training.datasets.spec import DatasetSpec

    command = ["datasets", "build", str(settings.spec), str(settings.dataset)]
    command += _option("--data-root", settings.data_root)
    digest = _dataset_hash(settings)
    if digest is None:
        return Assessment("build", "run", "no valid build", command)
    built = json_of(settings.dataset / "dataset_card.json")
    spec = DatasetSpec.from_yaml(settings.spec)
    if (built.get("name"), built.get("version"), built.get("labels")) != (
            spec.name, spec.version, list(spec.label_names)):
        return Assessment("build", "run", "built from another definition", command)
    return Assessment("build", "skip", f"built, hash {digest[:12]}")


def json_of(path: Path) -> dict[str, object]:
    return json.loads(path.read_text(encoding="utf-8"))


def assess_train(settings: Settings) -> Assessment:
    from training.run_record import RunRecord

    run_dir, last = settings.run_dir, settings.run_dir / "weights" / "last.pt"
    if not run_dir.exists():
        command = ["train", "--name", settings.run_name, "--project", str(settings.project),
                   "--data", str(settings.dataset / "data.yaml"), "--base", settings.base,
                   "--epochs", str(settings.epochs), "--imgsz", str(settings.imgsz),
                   "--batch", str(settings.batch), "--device", settings.device, "--seed", str(settings.seed),
                   "--patience", str(settings.patience), "--augment", "generalise"]
        command += _option("--workers", settings.workers)
        # freeze is not passed: the whole network, backbone included, trains (issue #11).
        return Assessment("train", "run", "no run yet", command + settings.chunk_args())
    try:
        record = RunRecord.read(run_dir)
    except (OSError, ValueError) as exc:
        raise RecipeError(f"{run_dir} has no readable run record ({exc}); move it aside") from exc
    digest = _dataset_hash(settings)
    if digest is not None and record.data.hash != digest:
        raise RecipeError(f"{run_dir} trained on dataset {record.data.hash[:12]}, the build is now "
                          f"{digest[:12]}; move the run aside or pass another --name")
    best = run_dir / "weights" / "best.pt"
    if record.status == "finished" and best.is_file():
        epochs = record.metrics.get("epochs_completed")
        return Assessment("train", "skip", f"finished ({epochs} epochs)")
    if not last.is_file():
        raise RecipeError(f"{run_dir} stopped before its first checkpoint ({record.status}); move it aside")
    command = ["train", "--resume", "--name", settings.run_name, "--project", str(settings.project)]
    return Assessment("train", "resume", f"{record.status}, continuing from weights/last.pt",
                      command + settings.chunk_args())


def _replacing(name: str, settings: Settings) -> list[str]:
    return [] if _installed(name, settings) is None else ["--overwrite"]


def export_command(settings: Settings) -> list[str]:
    best = settings.run_dir / "weights" / "best.pt"
    return ["export", str(best), "--name", settings.name, *settings.models_args(),
            *_replacing(settings.name, settings)]


def assess_export(settings: Settings) -> Assessment:
    from vision.model_registry import sha256_file

    best = settings.run_dir / "weights" / "best.pt"
    installed = _installed(settings.name, settings)
    if installed is None:
        return Assessment("export", "run", "not installed", export_command(settings))
    if best.is_file() and installed.card.training.get("weights_sha256") == sha256_file(best):
        return Assessment("export", "skip", f"installed from this run's best.pt ({installed.folder})")
    return Assessment("export", "run", "installed from other weights: replaced", export_command(settings))


def _evaluate_command(settings: Settings, *args: str) -> list[str]:
    return ["evaluate", settings.name, "--data", str(settings.dataset), *args, *settings.models_args()]


def thresholds_command(settings: Settings) -> list[str]:
    return _evaluate_command(settings, "--split", "val", "--choose-thresholds")


def assess_thresholds(settings: Settings) -> Assessment:
    command = thresholds_command(settings)
    installed = _installed(settings.name, settings)
    chosen = {} if installed is None else installed.card.dataset.get("threshold_selection") or {}
    if chosen.get("dataset_hash") == _dataset_hash(settings) and chosen.get("split") == "val":
        return Assessment("thresholds", "skip", "chosen on this build's val split")
    return Assessment("thresholds", "run", "not chosen on this build", command)


def evaluate_command(settings: Settings) -> list[str]:
    return _evaluate_command(settings, "--split", "test", "--per-source", "--corruptions", "all",
                             *_option("--corruption-images", settings.corruption_images), "--write-card")


def assess_evaluate(settings: Settings) -> Assessment:
    command = evaluate_command(settings)
    installed = _installed(settings.name, settings)
    metrics = {} if installed is None else installed.card.metrics or {}
    if (metrics.get("dataset_hash") == _dataset_hash(settings) and installed is not None
            and metrics.get("model_sha256") == installed.card.sha256
            and metrics.get("per_source") and metrics.get("corruption")):
        return Assessment("evaluate", "skip", "the card holds this build's test metrics")
    return Assessment("evaluate", "run", "no test metrics for this model and build", command)


def quantize_command(settings: Settings) -> list[str]:
    return ["quantize", settings.name, "--calib", str(settings.dataset), "--name", settings.int8_name,
            *settings.models_args(), *_replacing(settings.int8_name, settings)]


def assess_quantize(settings: Settings) -> Assessment:
    source, int8 = _installed(settings.name, settings), _installed(settings.int8_name, settings)
    if int8 is None:
        return Assessment("quantize", "run", "not installed", quantize_command(settings))
    quantization = int8.card.training.get("quantization") or {}
    if source is not None and quantization.get("source_sha256") == source.card.sha256:
        return Assessment("quantize", "skip", f"installed from this model ({int8.folder})")
    return Assessment("quantize", "run", "quantised from another model: replaced", quantize_command(settings))


ASSESS = {"build": assess_build, "train": assess_train, "export": assess_export,
          "thresholds": assess_thresholds, "evaluate": assess_evaluate, "quantize": assess_quantize}


def steps_until(until: StepName) -> tuple[StepName, ...]:
    return STEPS[:STEPS.index(until) + 1]


def plan(settings: Settings, until: StepName = "quantize") -> list[Assessment]:
    """What a run would do now. After the first step that runs, later steps are planned to run
    too (their inputs will change), with the command they would get today."""
    planned: list[Assessment] = []
    for step in steps_until(until):
        if any(a.action in ("run", "resume") for a in planned):
            planned.append(_after(step, settings, planned[-1].step))
            continue
        try:
            planned.append(ASSESS[step](settings))
        except RecipeError as exc:
            planned.append(Assessment(step, "blocked", str(exc)))
            break
    return planned


# The command a step will get once the steps before it have run (its output today is then stale).
_LATER = {"export": export_command, "thresholds": thresholds_command, "evaluate": evaluate_command,
          "quantize": quantize_command}


def _after(step: StepName, settings: Settings, previous: StepName) -> Assessment:
    if step in _LATER:
        return Assessment(step, "run", f"after {previous}", _LATER[step](settings))
    try:
        assessed = ASSESS[step](settings)
    except RecipeError as exc:
        return Assessment(step, "blocked", str(exc))
    return assessed if assessed.action != "skip" else Assessment(step, "skip", f"{assessed.reason}; "
                                                                 f"checked again after {previous}")


def shell_line(command: list[str]) -> str:
    return shlex.join(["patrol", *command])


def run_step(command: list[str]) -> int:
    return subprocess.run([sys.executable, "-m", "patrol_cli", *command], cwd=Path.cwd()).returncode


def execute(settings: Settings, until: StepName = "quantize", echo: Callable[[str], object] = print) -> int:
    """Run the steps in order, each only when needed; the exit status as documented above."""
    from training.run_record import RunRecord

    for step in steps_until(until):
        try:
            assessed = ASSESS[step](settings)
        except RecipeError as exc:
            echo(f"[{step}] cannot go on: {exc}")
            return 2
        if assessed.action == "skip" or assessed.command is None:
            echo(f"[{step}] skip: {assessed.reason}")
            continue
        echo(f"[{step}] {assessed.action}: {assessed.reason}\n  {shell_line(assessed.command)}")
        code = run_step(assessed.command)
        if code != 0:
            echo(f"[{step}] failed with exit status {code}")
            return code
        if step == "train" and RunRecord.read(settings.run_dir).status == "paused":
            echo(f"[train] paused in {settings.run_dir}; run the same command again to continue")
            return PAUSED_EXIT
    echo(next_steps(settings, until))
    return 0


def next_steps(settings: Settings, until: StepName) -> str:
    if until != "quantize":
        return f"stopped after {until} (--until)"
    models = " ".join(settings.models_args())
    return (f"done: {settings.name} and {settings.int8_name} installed with their cards "
            f"(patrol models list {models}).\nTo make it the default, compare and promote:\n"
            f"  {shell_line(['promote', settings.name, *settings.models_args()])}\n"
            f"The promotion compares it with the serving default on the public test split; its card's "
            f"training.run.hardware says where it ran.")


def recipe_command(
    work: Annotated[Path, typer.Option("--work", help="Folder for the build and the training run.")
                    ] = Path("runs/default-v2"),
    spec: Annotated[Path, typer.Option("--spec", help="Dataset definition.")
                    ] = Path("datasets/patrol-default-v2.yaml"),
    name: Annotated[str, typer.Option("--name", help="Installed model name; the run is NAME-IMGSZ.")
                    ] = "default-v2",
    base: Annotated[str, typer.Option(
        "--base", help="Starting weights: the serving default (its head grows by roadside_clutter), a .pt "
                       "or an architecture YAML.")] = "default",
    imgsz: Annotated[int, typer.Option("--imgsz", min=32, help="Training input: 640, or 416.")] = 640,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 100,
    batch: Annotated[int, typer.Option("--batch", min=1)] = 16,
    device: Annotated[str, typer.Option("--device", help="auto (CUDA when torch sees one), cpu, or 0.")
                      ] = "auto",
    patience: Annotated[int, typer.Option("--patience", min=0)] = 30,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    workers: Annotated[int | None, typer.Option("--workers", min=0)] = None,
    data_root: Annotated[Path | None, typer.Option("--data-root", envvar="PATROL_SHARED_DATA")] = None,
    models_dir: Annotated[Path | None, typer.Option("--models-dir", envvar="PATROL_MODELS_DIR")] = None,
    stop_after_minutes: Annotated[float | None, typer.Option(
        "--stop-after-minutes", min=0.1, help="Pause training within this many minutes (a chunk).")] = None,
    stop_after_epochs: Annotated[int | None, typer.Option(
        "--stop-after-epochs", min=1, help="Pause training after this many epochs (a chunk).")] = None,
    corruption_images: Annotated[int | None, typer.Option(
        "--corruption-images", min=1, help="Sample for the corruption suite (default: all test images).")
    ] = None,
    until: Annotated[StepName, typer.Option("--until", help="The last step to run.")] = "quantize",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and commands; run nothing.")
                       ] = False,
) -> None:
    """Build, train (resumable chunks), export, choose thresholds, evaluate and quantise the next
    default model; each step skipped when its output is valid."""
    settings = Settings(spec=spec, work=work, name=name, base=base, imgsz=imgsz, epochs=epochs, batch=batch,
                        device=auto_device(device), patience=patience, seed=seed, workers=workers,
                        data_root=data_root, models_dir=models_dir, stop_after_minutes=stop_after_minutes,
                        stop_after_epochs=stop_after_epochs, corruption_images=corruption_images)
    if dry_run:
        for assessed in plan(settings, until):
            typer.echo(format_assessment(assessed))
        return
    raise typer.Exit(code=execute(settings, until, echo=typer.echo))


def format_assessment(assessed: Assessment) -> str:
    line = f"[{assessed.step}] {assessed.action}: {assessed.reason}"
    return line + (f"\n  {shell_line(assessed.command)}" if assessed.command else "")


recipes_app = typer.Typer(help="Multi-step recipes that produce models.", no_args_is_help=True)
recipes_app.command("default-v2")(recipe_command)


def register(app: typer.Typer) -> None:
    app.add_typer(recipes_app, name="recipes")


if __name__ == "__main__":
    recipes_app(prog_name="patrol recipes")
