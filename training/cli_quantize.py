"""`patrol quantize`: an int8 (static) copy of an installed model, installed beside it with its
accuracy cost in the card. onnxruntime only; imported inside the command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from training.quantize_choices import ActivationName, CalibrationName, QuantFormatName


def quantize_command(
    model: Annotated[str, typer.Argument(help="Installed model name or model folder (float weights).")],
    calib: Annotated[Path, typer.Option(
        "--calib", help="Calibration images: a dataset folder (with data.yaml), a data.yaml, or a "
                        "folder of images.")],
    name: Annotated[str, typer.Option(
        "--name", help="Name of the int8 model: its folder under --models-dir.")],
    split: Annotated[str, typer.Option("--split", help="Dataset split to calibrate on.")] = "train",
    n: Annotated[int, typer.Option(
        "--n", min=1, max=10_000, help="Calibration images (the same share per source, spread evenly).")
    ] = 300,
    eval_data: Annotated[Path | None, typer.Option(
        "--eval-data", help="Dataset to measure the accuracy cost on (default: --calib when it is a "
                            "dataset).")] = None,
    eval_split: Annotated[str, typer.Option(
        "--eval-split", help="Split for the accuracy cost: the one the float card's figures come from.")
    ] = "test",
    no_eval: Annotated[bool, typer.Option(
        "--no-eval", help="Skip measuring the accuracy cost (the card then says nothing about it).")] = False,
    max_map50_drop: Annotated[float | None, typer.Option(
        "--max-map50-drop", min=0.0, max=1.0,
        help="Refuse to install when int8 mAP50 is lower than the source's by more than this.")] = None,
    quant_format: Annotated[QuantFormatName, typer.Option("--format")] = "qdq",
    activations: Annotated[ActivationName, typer.Option(
        "--activations", help="uint8 (fast u8s8 kernels on x86) or int8.")] = "uint8",
    symmetric_activations: Annotated[bool, typer.Option("--symmetric-activations")] = False,
    reduce_range: Annotated[bool, typer.Option(
        "--reduce-range/--full-range",
        help="7-bit weights (default): u8s8 kernels saturate on x86 CPUs without VNNI; --full-range "
             "only for CPUs with VNNI/AMX.")] = True,
    calibration: Annotated[CalibrationName, typer.Option("--calibration")] = "minmax",
    # A list of Literals is more than typer parses: the names are checked by QuantizeOptions (exit 2).
    keep_float: Annotated[list[str] | None, typer.Option(
        "--keep-float", help="Also leave these layers in float (repeatable): stem (the first conv), "
                             "head_outputs (the box and class branches' last convs), pyramid_pool (SPPF).")
    ] = None,
    quantize_head: Annotated[bool, typer.Option(
        "--quantize-head", help="Also quantise the head's box decode and sigmoid (kept float by default).")
    ] = False,
    models_dir: Annotated[Path | None, typer.Option(
        "--models-dir", envvar="PATROL_MODELS_DIR", help="Where installed models live (default models/).")
    ] = None,
    version: Annotated[str | None, typer.Option("--version", help="Default: the source's version + '-int8'.")
                       ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an installed model of that name.")
                         ] = False,
) -> None:
    """INT8 static quantisation (onnxruntime), calibrated on letterboxed images as served."""
    from pydantic import ValidationError

    from training.datasets.errors import DatasetError
    from training.quantize import QuantizeOptions, quantize_model
    from vision.errors import ModelError

    try:
        options = QuantizeOptions(
            n_images=n, quant_format=quant_format, activation_type=activations,
            symmetric_activations=symmetric_activations, reduce_range=reduce_range,
            calibration=calibration, keep_head_float=not quantize_head,
            # Not given: QuantizeOptions' measured default groups.
            **({} if keep_float is None else {"float_groups": tuple(keep_float)}))
        if no_eval and (eval_data is not None or max_map50_drop is not None):
            raise ModelError("--no-eval cannot be combined with --eval-data or --max-map50-drop")
        result = quantize_model(
            model, calib, name, split=split, eval_data=eval_data, eval_split=eval_split,
            models_dir=models_dir, options=options, max_map50_drop=max_map50_drop, version=version,
            overwrite=overwrite, evaluate=not no_eval)
    except (ModelError, DatasetError, ValidationError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    installed = result.model
    typer.echo(json.dumps({
        "folder": str(installed.folder), "sha256": installed.card.sha256,
        "quantization": installed.card.quantization,
        "accuracy": None if result.accuracy is None else result.accuracy.as_dict(),
        "report": result.report.as_dict(),
    }, indent=2))


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize_command)
