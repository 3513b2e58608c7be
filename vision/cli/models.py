"""`patrol models list`: installed models, their cards, and whether their weights are intact."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from vision.taxonomy import Taxonomy

# Metrics shown in the table when a card has them (as `patrol evaluate --json` names them).
KEY_METRICS = ("map50", "mAP50", "map50_95", "mAP50-95", "precision", "recall")


def model_summary(folder: Path, taxonomy: Taxonomy) -> dict[str, Any]:
    """What `models list` says about one model folder; a broken card is an error entry."""
    from vision.errors import ModelError
    from vision.model_card import ModelCard
    from vision.model_registry import InstalledModel, sha256_file

    try:
        card = ModelCard.read(folder / "card.json")
    except ModelError as exc:
        return {"name": folder.name, "folder": str(folder), "error": str(exc)}
    model = InstalledModel(folder.name, folder, card)
    if not model.weights.is_file():
        sha_status = "missing"
    else:
        sha_status = "ok" if sha256_file(model.weights) == card.sha256 else "mismatch"
    trained = list(card.trained_classes)
    return {
        "name": model.name,
        "folder": str(folder),
        "version": card.version,
        "architecture": card.architecture,
        "input_size": card.input_size,
        "labels": list(card.labels),
        "label_map": dict(card.label_map),
        "trained_classes": trained,
        "not_trained_classes": [key for key in taxonomy.keys if key not in trained],
        "unknown_classes": sorted({k for k in card.label_map.values() if k and k not in taxonomy}
                                  | {k for k in trained if k not in taxonomy}),
        "sha256": sha_status,
        "metrics": {k: card.metrics[k] for k in KEY_METRICS if k in card.metrics},
        "error": None,
    }


def list_command(
    models_dir: Annotated[Path | None, typer.Option(
        "--models-dir", envvar="PATROL_MODELS_DIR", help="Where installed models live.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """Show installed models and their cards."""
    from rich.console import Console

    from vision.cli.output import folding_table, print_json
    from vision.model_registry import default_models_dir
    from vision.taxonomy import Taxonomy

    taxonomy = Taxonomy.default()
    root = models_dir or default_models_dir()
    folders = sorted(p.parent for p in root.glob("*/card.json")) if root.is_dir() else []
    summaries = [model_summary(folder, taxonomy) for folder in folders]
    if as_json:
        print_json(summaries)
    else:
        console = Console()
        if not summaries:
            console.print(f"no models installed in {root} (a model folder holds model.onnx and card.json)")
            return
        table = folding_table(f"models in {root}", ("name", "version", "input", "trained classes",
                                                     "not trained on", "sha256", "metrics"))
        for s in summaries:
            if s["error"]:
                table.add_row(s["name"], "-", "-", "-", "-", "-", f"[red]{s['error']}[/red]")
                continue
            sha_style = "green" if s["sha256"] == "ok" else "red"
            metrics = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in s["metrics"].items()) or "-"
            table.add_row(
                s["name"], s["version"], f"{s['input_size']} px",
                ", ".join(f"{k} {taxonomy.get(k).name_zh}" if k in taxonomy else k
                          for k in s["trained_classes"]) or "-",
                ", ".join(s["not_trained_classes"]) or "-",
                f"[{sha_style}]{s['sha256']}[/{sha_style}]",
                metrics,
            )
        console.print(table)
    if any(s["error"] or s["sha256"] != "ok" for s in summaries):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(help="Installed models and their cards.", no_args_is_help=True)
    models_app.command("list")(list_command)
    app.add_typer(models_app, name="models")
