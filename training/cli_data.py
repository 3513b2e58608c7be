"""`patrol datasets build`, `patrol evaluate` and `patrol promote`.

Heavy modules (onnxruntime through the Pipeline, pycocotools, matplotlib) are imported inside
the commands. Nothing here imports torch or ultralytics.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

datasets_app = typer.Typer(help="Build YOLO datasets from definitions in datasets/*.yaml.",
                           no_args_is_help=True)

ModelsDirOption = Annotated[Path | None, typer.Option(
    "--models-dir", envvar="PATROL_MODELS_DIR", help="Where installed models live (default models/).")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


@datasets_app.command("build")
def build_command(
    spec: Annotated[Path, typer.Argument(help="Dataset definition, e.g. datasets/patrol-public.yaml.")],
    out: Annotated[Path, typer.Argument(help="Output folder (new, empty, or a previous build).")],
    data_root: Annotated[Path | None, typer.Option(
        "--data-root", envvar="PATROL_SHARED_DATA",
        help="Folder the definition's source paths are relative to (default ../shared/datasets).")] = None,
    near_duplicates: Annotated[bool, typer.Option(
        "--near-duplicates/--no-near-duplicates",
        help="Count visually near-identical images across splits (decodes every image small).")] = True,
) -> None:
    """Build a YOLO dataset (images, labels, data.yaml) and its dataset card."""
    from training.datasets.build import build_dataset
    from training.datasets.errors import DatasetError
    from training.datasets.spec import SPLITS, DatasetSpec

    try:
        result = build_dataset(DatasetSpec.from_yaml(spec), out, data_root,
                               check_near_duplicates=near_duplicates)
    except DatasetError as exc:
        raise _fail(str(exc)) from exc
    card = result.card
    for issue in card.issues:
        typer.echo(f"skipped: {issue}", err=True)
    for duplicate in card.duplicates:
        typer.echo(f"duplicate: {duplicate}", err=True)
    typer.echo(f"built {card.name} v{card.version} in {result.out} in {result.seconds:.1f} s "
               f"({result.linked} images linked, {result.copied} copied)")
    width = max(len(label) for label in card.labels)
    typer.echo(f"{'split':<7}{'images':>8}{'negatives':>11}  "
               + "  ".join(f"{lb:>{width}}" for lb in card.labels))
    for split in SPLITS:
        counts = card.splits[split]
        typer.echo(f"{split:<7}{counts.images:>8}{counts.images_without_violations:>11}  "
                   + "  ".join(f"{counts.boxes.get(lb, 0):>{width}}" for lb in card.labels))
    if card.near_duplicates:
        for source, pairs in card.near_duplicates["pairs"].items():
            if pairs.get("test_images"):
                typer.echo(f"near-duplicates {source}: {pairs['test_with_train_duplicate']} of "
                           f"{pairs['test_images']} test images have a near-identical train image")
    typer.echo(f"{len(card.issues)} label lines or images skipped; hash {card.hash}")


def evaluate_command(
    model: Annotated[str, typer.Argument(help="Installed model name (e.g. default) or model folder.")],
    data: Annotated[Path, typer.Option(
        "--data", help="A dataset built by `patrol datasets build`, or a YOLO data.yaml whose class "
                       "names are taxonomy keys.")],
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "test",
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the result as one JSON object on the last line.")] = False,
    plots: Annotated[Path | None, typer.Option(
        "--plots", help="Write pr_curves.png and confusion_matrix.png into this folder.")] = None,
    write_card: Annotated[bool, typer.Option(
        "--write-card", help="Store the result as the model card's metrics (test split only).")] = False,
    choose_thresholds: Annotated[bool, typer.Option(
        "--choose-thresholds",
        help="Pick each label's threshold maximising F1 (IoU 0.5) and write it into the card "
             "(not on test).")] = False,
    min_threshold: Annotated[float, typer.Option(
        "--min-threshold", min=0.0, max=1.0, help="Lowest threshold --choose-thresholds may pick.")] = 0.05,
    workers: Annotated[int, typer.Option("--workers", min=1, max=32, help="Image loading threads.")] = 2,
    per_source: Annotated[bool, typer.Option(
        "--per-source", help="Also score each source of a built dataset on its own (per_source).")] = False,
    corruptions: Annotated[str | None, typer.Option(
        "--corruptions", help="Run the split again under these corruptions (comma-separated, or 'all': "
                              "blur, noise, jpeg_q30, low_light, haze, rain, scale_0.5, scale_2, "
                              "rotation); one model pass each, slow on a CPU.")] = None,
    corruption_images: Annotated[int | None, typer.Option(
        "--corruption-images", min=1, help="A seeded sample of this many images for --corruptions "
                                           "(default: the whole split).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the corruptions and the sample.")] = 0,
    merge_piles: Annotated[bool, typer.Option(
        "--merge-piles", help="Merge touching or overlapping garbage_pile ground truth into piles "
                              "before scoring (for data labelled per bag).")] = False,
    engine: Annotated[str, typer.Option(
        "--engine", help="Runtime of the ONNX model: onnxruntime (the default: the cards' figures are "
                         "its), openvino or auto (the serving default); the JSON says which ran.")
    ] = "onnxruntime",
    models_dir: ModelsDirOption = None,
) -> None:
    """Measure an installed ONNX model on a dataset split through the serving pipeline."""
    from training import registry
    from training.corruptions import parse_corruptions
    from training.datasets.errors import DatasetError
    from training.evaluate import build_report, collect, format_table, open_eval_data
    from training.evaluate import choose_thresholds as choose
    from training.generalisation import extend_summary, format_generalisation
    from vision.errors import BackendUnavailableError, ModelError
    from vision.model_registry import resolve_model
    from vision.taxonomy import Taxonomy

    if split not in ("train", "val", "test"):
        raise _fail(f"expected --split train, val or test, got {split!r}")
    if write_card and split != "test":
        raise _fail("--write-card records test-split metrics; use --split test")
    if choose_thresholds and split == "test":
        raise _fail("choose thresholds on val (--split val), not on the test split the card reports")
    try:
        corruption_names = parse_corruptions(corruptions) if corruptions is not None else ()
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    taxonomy = Taxonomy.default()
    try:
        installed = resolve_model(model, models_dir)
        eval_data = open_eval_data(data, split, installed.card, taxonomy)
    except (ModelError, DatasetError) as exc:
        raise _fail(str(exc)) from exc

    interactive = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if done == total or done % 50 == 0:
            ending = "\n" if done == total or not interactive else ""
            print(f"\r{done}/{total} images", end=ending, file=sys.stderr, flush=True)

    try:
        collected = collect(installed, eval_data, taxonomy, workers=workers, progress=progress, engine=engine)
    except BackendUnavailableError as exc:
        raise _fail(str(exc)) from exc
    for issue in collected.label_issues:
        typer.echo(f"skipped label line: {issue}", err=True)
    for problem in collected.unreadable:
        typer.echo(f"unreadable image: {problem}", err=True)
    if not collected.images:
        raise _fail("no image of the split could be read")
    merged = None
    if merge_piles:
        from training.generalisation import merge_piles as merge

        collected, merged = merge(collected)

    if choose_thresholds:
        choices = choose(collected, installed.card, floor=min_threshold)
        chosen = {label: c.threshold for label, c in choices.items() if c is not None}
        for label, c in choices.items():
            if c is None:
                typer.echo(f"{label}: no ground truth or no prediction above {min_threshold}; "
                           f"threshold unchanged", err=True)
            else:
                typer.echo(f"{label}: threshold {c.threshold:.4f} (F1 {c.f1:.3f}, P {c.precision:.3f}, "
                           f"R {c.recall:.3f})", err=True)
        selection = {"split": split, "dataset": eval_data.name, "dataset_hash": eval_data.hash,
                     "rule": f"per label, the score maximising F1 at IoU 0.5; ties to the higher score; "
                             f"not below {min_threshold}",
                     "per_label": {label: None if c is None else
                                   {"threshold": round(c.threshold, 4), "f1": round(c.f1, 4),
                                    "precision": round(c.precision, 4), "recall": round(c.recall, 4)}
                                   for label, c in choices.items()}}
        had_metrics = bool(installed.card.metrics)
        installed = registry.record_thresholds(installed, chosen, selection, taxonomy)
        typer.echo(f"wrote thresholds into {installed.folder / 'card.json'}", err=True)
        if had_metrics:
            typer.echo("the card's test metrics were measured at the old thresholds and were removed; "
                       "run `patrol evaluate ... --split test --write-card` again", err=True)

    report = build_report(collected, installed, taxonomy)
    extend_summary(report, collected, installed, taxonomy, per_source=per_source, merged=merged,
                   corruptions=corruption_names, corruption_images=corruption_images, seed=seed,
                   workers=workers, progress=progress)
    if plots is not None:
        from training.plots import write_plots

        for path in write_plots(report, plots):
            typer.echo(f"wrote {path}", err=True)
    if write_card:
        registry.record_metrics(installed, report.summary, taxonomy)
        typer.echo(f"wrote metrics into {installed.folder / 'card.json'}", err=True)
    if as_json:
        typer.echo(json.dumps(report.summary, ensure_ascii=False, separators=(",", ":")))
    else:
        typer.echo(format_table(report.summary))
        extra = format_generalisation(report.summary)
        if extra:
            typer.echo(extra)


def promote_command(
    candidate: Annotated[str, typer.Argument(help="Installed model name or model folder to promote.")],
    local_data: Annotated[Path | None, typer.Option(
        "--local-data", help="A dataset of this township's reviewed images (`patrol review export`, "
                             "then `patrol datasets build`): the candidate must also be better on its "
                             "test split.")] = None,
    models_dir: ModelsDirOption = None,
) -> None:
    """Make CANDIDATE the default model if it is not worse on the fixed public test split (and, with
    --local-data, better on the local one)."""
    from training.datasets.errors import DatasetError
    from training.promote import format_decision, promote
    from vision.errors import ModelError

    try:
        decision = promote(candidate, models_dir=models_dir, local_data=local_data)
    except (ModelError, DatasetError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(format_decision(decision))
    if not decision.accepted:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
    app.command("evaluate")(evaluate_command)
    app.command("promote")(promote_command)
