"""`patrol transplant`, `patrol train`, `patrol export` and `patrol rebuild-pt`.

torch and ultralytics are imported inside the commands only, so `patrol --help` and the
serving commands never load them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from training.augmentation import AugmentName


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def transplant_command(
    source: Annotated[Path, typer.Argument(
        help="Official YOLOv5 checkpoint, e.g. ../shared/weights/yolov5n.pt.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the ultralytics checkpoint (.pt).")],
    data: Annotated[Path | None, typer.Option(
        "--data", help="data.yaml whose names become the labels.")] = None,
    labels: Annotated[str | None, typer.Option(
        "--labels", help="Comma-separated labels instead of --data.")] = None,
    any_checksum: Annotated[bool, typer.Option(
        "--any-checksum", help="Accept a YOLOv5 checkpoint other than the official yolov5n.pt "
                               "(the class allow-list still applies).")] = False,
) -> None:
    """Move the COCO backbone and neck of an official YOLOv5 checkpoint into ultralytics' yolov5nu."""
    from training.run_record import data_labels
    from training.transplant import YOLOV5N_SHA256, save_ultralytics_checkpoint, transplant
    from vision.errors import ModelError

    if (data is None) == (labels is None):
        raise _fail("pass exactly one of --data DATA_YAML or --labels a,b,c")
    listed = (labels or "").split(",")
    names = data_labels(data) if data is not None else [x.strip() for x in listed if x.strip()]
    try:
        model, report = transplant(source, names, expected_sha256=None if any_checksum else YOLOV5N_SHA256)
        save_ultralytics_checkpoint(model, report, out)
    except (ModelError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    counts = report.counts
    typer.echo(f"wrote {out}: {counts['transplanted']} tensors transplanted, {counts['skipped_source']} "
               f"source tensors skipped (anchor-based head), {counts['untouched_target']} target tensors "
               f"left at initialisation (anchor-free head); layer types match: {report.layer_types_match}")


def train_command(
    name: Annotated[str, typer.Option("--name", help="Run name: the folder under --project.")],
    data: Annotated[Path | None, typer.Option(
        "--data", help="YOLO data.yaml (from `patrol datasets build`); not needed with --resume.")] = None,
    base: Annotated[str, typer.Option(
        "--base", "--from",
        help="Starting weights: an installed model's name (its shipped model.pt: fine-tune the model "
             "that serves), a .pt (from `patrol transplant`) or an architecture YAML such as "
             "yolov5nu.yaml to train from scratch.",
    )] = "yolov5nu.yaml",
    project: Annotated[Path, typer.Option("--project", help="Folder that holds runs.")] = Path("runs"),
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 50,
    imgsz: Annotated[int, typer.Option("--imgsz", min=32, help="Square training input size.")] = 640,
    batch: Annotated[int, typer.Option("--batch", min=1)] = 16,
    freeze: Annotated[int | None, typer.Option(
        "--freeze", min=0, help="Freeze the first N layers (10 = the YOLOv5 backbone).")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    device: Annotated[str, typer.Option("--device", help="'cpu' or a CUDA index such as '0'.")] = "cpu",
    workers: Annotated[int | None, typer.Option("--workers", min=0, help="Default: cores - 1.")] = None,
    patience: Annotated[int, typer.Option("--patience", min=0)] = 20,
    cache: Annotated[bool, typer.Option("--cache", help="Keep decoded images in RAM.")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue PROJECT/NAME from weights/last.pt with its original arguments.")] = False,
    fine_tune: Annotated[bool, typer.Option(
        "--fine-tune", help="From a trained model (e.g. on reviewed labels): backbone frozen unless "
                            "--freeze says otherwise, AdamW at a fixed low rate, no warmup.")] = False,
    replay: Annotated[Path | None, typer.Option(
        "--replay", help="data.yaml of the set the base learned from (the public one): a sample of its "
                         "train images joins the train split, against forgetting. Its labels must be "
                         "the first labels of --data.")] = None,
    replay_share: Annotated[float, typer.Option(
        "--replay-share", min=0.0, max=0.95, help="Replay's share of the train list.")] = 0.5,
    hold_replay_labels: Annotated[bool, typer.Option(
        "--hold-replay-labels", help="With --replay: the replay set's labels keep their own head outputs "
                                     "(only the labels --data adds learn there).")] = False,
    augment: Annotated[AugmentName, typer.Option(
        "--augment", help="Augmentation settings (training/augmentation.py): ultralytics' defaults, or "
                          "generalise (chosen from the corruption suite).")] = "ultralytics",
    branch: Annotated[bool, typer.Option(
        "--branch", help="With --fine-tune: also write weights/branched.pt, the base and the fine-tuned "
                         "layers after the frozen ones side by side (training/branches.py): the base's "
                         "classes scored exactly as the base scores them. Export that file to serve "
                         "it.")] = False,
    stop_after_epochs: Annotated[int | None, typer.Option(
        "--stop-after-epochs", min=1, help="Pause the run after this many epochs of this process "
                                           "(status paused; --resume continues it).")] = None,
    stop_after_minutes: Annotated[float | None, typer.Option(
        "--stop-after-minutes", min=0.1, help="Pause after the epoch that leaves less than one more epoch's "
                                              "time within this many minutes of this process.")] = None,
) -> None:
    """Fine-tune a detector offline; writes PROJECT/NAME/{weights/best.pt, run_record.json}."""
    from pydantic import ValidationError

    from training.finetune import Recipe, hold_class_rows, replay_data_yaml
    from training.run_record import data_labels
    from training.train import Chunk, TrainOptions, resolve_base, train
    from training.train import resume as resume_run
    from vision.errors import ModelError

    argv = list(sys.argv)
    chunk = Chunk(epochs=stop_after_epochs, minutes=stop_after_minutes)
    try:
        if resume:
            result = resume_run(project / name, argv, chunk=chunk)
        elif data is None:
            raise _fail("--data is required unless --resume")
        else:
            callbacks = {}
            if replay is not None:
                # Beside the run folder, not in it: train() refuses a run folder that exists.
                data = replay_data_yaml(data, replay, replay_share, seed, project / f"{name}.replay")
                if hold_replay_labels:
                    callbacks = hold_class_rows(range(len(data_labels(replay))))
            options = TrainOptions(data=data, base=resolve_base(base), name=name, project=project,
                                   epochs=epochs, imgsz=imgsz, batch=batch, freeze=freeze, seed=seed,
                                   device=device, workers=workers, patience=patience, cache=cache,
                                   augment=augment)
            if branch and not (fine_tune and options.base.endswith(".pt")):
                raise _fail("--branch needs --fine-tune from trained weights (an installed model or a .pt)")
            if fine_tune:
                recipe = Recipe() if freeze is None else Recipe(freeze=freeze)
                options = recipe.apply(options)
            result = train(options, argv, callbacks, chunk)
        branched = None
        if branch and result.record.status == "finished":
            from training.branches import compose_checkpoints

            branched = compose_checkpoints(Path(options.base), result.best,
                                           result.best.parent / "branched.pt", shared=options.freeze or 0)
    except (ModelError, ValidationError) as exc:  # TrainingError, UnsafeCheckpointError
        raise _fail(str(exc)) from exc
    typer.echo(json.dumps({"run_dir": str(result.run_dir), "status": result.record.status,
                           "best": str(result.best), "wall_seconds": result.record.wall_seconds,
                           "metrics": result.record.metrics,
                           **({"branched": str(branched)} if branched else {})},
                          indent=2))


def export_command(
    weights: Annotated[Path, typer.Argument(help="Trained weights, e.g. runs/NAME/weights/best.pt.")],
    name: Annotated[str, typer.Option("--name", help="Model name: the folder under --models-dir.")],
    imgsz: Annotated[int | None, typer.Option("--imgsz", min=32, help="Default: the training size.")] = None,
    models_dir: Annotated[Path | None, typer.Option(
        "--models-dir", envvar="PATROL_MODELS_DIR",
        help="Where installed models live (default models/).")] = None,
    samples: Annotated[Path | None, typer.Option(
        "--samples", help="Folder of images for the PyTorch/ONNX check (default: the val split).")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Default: the date and time.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an installed model of that name.")] = False,
) -> None:
    """Export to ONNX (dynamic batch), check it against PyTorch, and install it with its card."""
    from training.export import export_model
    from vision.errors import ModelError

    try:
        result = export_model(weights, name, models_dir, imgsz=imgsz, samples=samples, version=version,
                              overwrite=overwrite)
    except ModelError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(json.dumps({"folder": str(result.folder), "sha256": result.card.sha256,
                           "parity": result.parity.as_dict()}, indent=2))


def rebuild_pt_command(
    model: Annotated[str, typer.Argument(help="Installed model name or folder, e.g. default.")],
    images: Annotated[list[Path], typer.Option(
        "--images", help="Folder of images like the model's own (repeatable): the batch norms' "
                         "statistics are measured on them.")],
    count: Annotated[int, typer.Option("--count", min=8, max=1000, help="Calibration images.")] = 64,
    models_dir: Annotated[Path | None, typer.Option(
        "--models-dir", envvar="PATROL_MODELS_DIR",
        help="Where installed models live (default models/).")] = None,
) -> None:
    """Rebuild an installed model's trainable PyTorch weights from its ONNX file and ship them
    beside it (model.pt, hashed in the card), checked against the ONNX file first."""
    from training.rebuild_pt import rebuild_installed
    from vision.errors import ModelError
    from vision.model_registry import resolve_model

    try:
        installed = rebuild_installed(resolve_model(model, models_dir), images, count)
    except ModelError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(json.dumps({"folder": str(installed.folder),
                           "pytorch": installed.card.model_dump(mode="json")["pytorch"]}, indent=2))


def register(app: typer.Typer) -> None:
    app.command("transplant")(transplant_command)
    app.command("train")(train_command)
    app.command("export")(export_command)
    app.command("rebuild-pt")(rebuild_pt_command)
