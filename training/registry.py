"""Writing models into the registry: `models/<name>/{model.onnx, card.json, card.md}`.

Reading and verifying installed models is vision.model_registry's job (the serving side);
this module is the training side: install an exported ONNX file with its card (the sha256
is computed here, never typed in), record evaluation metrics and chosen thresholds in the
card, and render `card.md` for people from `card.json`.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from training.card_generalisation import generalisation_lines
from vision.errors import ModelError
from vision.model_card import ModelCard, PytorchWeights
from vision.model_registry import InstalledModel, default_models_dir, sha256_file
from vision.taxonomy import Taxonomy

MODEL_FILE = "model.onnx"
PT_FILE = "model.pt"
CARD_JSON = "card.json"
CARD_MD = "card.md"


def write_card(folder: Path, card: ModelCard, taxonomy: Taxonomy | None = None) -> None:
    """card.json and the card.md rendered from it."""
    card.write(folder / CARD_JSON)
    markdown = render_card_markdown(card, taxonomy or Taxonomy.default())
    (folder / CARD_MD).write_text(markdown, encoding="utf-8")


def install_model(onnx_path: Path, card_fields: Mapping[str, Any], *, models_dir: Path | None = None,
                  overwrite: bool = False, taxonomy: Taxonomy | None = None,
                  checkpoint: Path | None = None, checkpoint_origin: str = "") -> InstalledModel:
    """Copy an exported ONNX file to `<models_dir>/<card name>/model.onnx` and write its card.

    `card_fields` are ModelCard fields without `sha256` and `file` (both set here from the
    copied file). `checkpoint`, the PyTorch weights the ONNX file was exported from, is shipped
    beside it as model.pt (hashed in the card's `pytorch`), so fine-tuning can start from the
    model that serves. Refuses to replace an installed model unless `overwrite`.
    """
    taxonomy = taxonomy or Taxonomy.default()
    fields = {k: v for k, v in card_fields.items() if k not in ("sha256", "file")}
    name = fields.get("name")
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ModelError(f"expected a model name usable as a folder name, got {name!r}")
    if not Path(onnx_path).is_file():
        raise ModelError(f"exported model {onnx_path} does not exist")
    root = models_dir or default_models_dir()
    folder = root / name
    if folder.exists() and not overwrite:
        raise ModelError(f"model {name!r} is already installed at {folder}; choose another name or "
                         f"version, or pass overwrite")
    try:
        digest = sha256_file(Path(onnx_path))
        card = ModelCard.model_validate({**fields, "file": MODEL_FILE, "sha256": digest})
    except ValidationError as exc:
        raise ModelError(f"invalid model card for {name!r}: {exc}") from exc
    card.check_taxonomy(taxonomy)
    staging = root / f".{name}.installing"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copyfile(onnx_path, staging / MODEL_FILE)
    if checkpoint is not None:
        shipped = _ship_checkpoint(checkpoint, staging, checkpoint_origin or "exported from", None)
        card = card.model_copy(update={"pytorch": shipped})
    write_card(staging, card, taxonomy)
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    model = InstalledModel(name, folder, card)
    model.verify()
    return model


def attach_pytorch_weights(model: InstalledModel, checkpoint: Path, origin: str,
                           details: Mapping[str, Any] | None = None,
                           taxonomy: Taxonomy | None = None) -> InstalledModel:
    """Copy a trainable checkpoint into an installed model's folder and hash it in the card."""
    if not checkpoint.is_file():
        raise ModelError(f"checkpoint {checkpoint} does not exist")
    shipped = _ship_checkpoint(checkpoint, model.folder, origin, details)
    return update_card(model, taxonomy, pytorch=shipped.model_dump())


def _ship_checkpoint(checkpoint: Path, folder: Path, origin: str,
                     details: Mapping[str, Any] | None) -> PytorchWeights:
    """Copy the checkpoint in as PT_FILE (whole or not at all) and describe it for the card."""
    staged = folder / f".{PT_FILE}.installing"
    shutil.copyfile(checkpoint, staged)
    shipped = PytorchWeights(file=PT_FILE, sha256=sha256_file(staged), origin=origin,
                             details=dict(details or {}))
    staged.replace(folder / PT_FILE)
    return shipped


def update_card(model: InstalledModel, taxonomy: Taxonomy | None = None, **changes: Any) -> InstalledModel:
    """Rewrite an installed model's card with some fields changed (validated again)."""
    try:
        card = ModelCard.model_validate({**model.card.model_dump(), **changes})
    except ValidationError as exc:
        raise ModelError(f"model {model.name!r}: the updated card is invalid: {exc}") from exc
    write_card(model.folder, card, taxonomy)
    return InstalledModel(model.name, model.folder, card)


def record_metrics(model: InstalledModel, summary: Mapping[str, Any],
                   taxonomy: Taxonomy | None = None) -> InstalledModel:
    """Store what `patrol evaluate --json` printed on the test split as the card's `metrics`."""
    if summary.get("split") != "test":
        raise ModelError(f"a card's metrics are measured on the test split, got {summary.get('split')!r}")
    if summary.get("model_sha256") != model.card.sha256:
        raise ModelError(f"these metrics were measured on weights {summary.get('model_sha256')}, not on "
                         f"model {model.name!r} ({model.card.sha256})")
    dataset = dict(model.card.dataset)
    dataset.setdefault("hash", summary.get("dataset_hash"))
    dataset.setdefault("name", summary.get("dataset"))
    return update_card(model, taxonomy, metrics=dict(summary), dataset=dataset)


def record_thresholds(model: InstalledModel, thresholds: Mapping[str, float], selection: Mapping[str, Any],
                      taxonomy: Taxonomy | None = None) -> InstalledModel:
    """New operating thresholds, and how they were chosen (in `dataset.threshold_selection`).

    Metrics measured at the old thresholds no longer describe the model and are removed:
    evaluate on test again and record them.
    """
    merged = {**model.card.thresholds, **{k: round(float(v), 4) for k, v in thresholds.items()}}
    dataset = {**model.card.dataset, "threshold_selection": dict(selection)}
    return update_card(model, taxonomy, thresholds=merged, dataset=dataset, metrics={})


# -- card.md ------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _training_lines(card: ModelCard) -> list[str]:
    """The dataset, the training run (training.run_record) and the export check, when recorded."""
    lines: list[str] = []
    dataset = {k: v for k, v in card.dataset.items() if k != "threshold_selection"}
    if dataset:
        lines.append(f"- dataset: {_fmt(dataset.get('name'))} v{_fmt(dataset.get('version'))}, "
                     f"hash `{_fmt(dataset.get('hash'))}`")
    training = card.training or {}
    run = training.get("run") or {}
    if run:
        hardware = run.get("hardware") or {}
        device = hardware.get("gpu") or (f"CPU ({hardware.get('cpu_model', '?')}, "
                                         f"{hardware.get('cpu_cores', '?')} cores)")
        epochs = (run.get("metrics") or {}).get("epochs_completed")
        lines += [f"- command: `{run.get('command_line', '')}`",
                  f"- trained on {device}; {_fmt(run.get('wall_seconds'))} s wall; epochs completed "
                  f"{_fmt(epochs)}"]
        base = run.get("base") or {}
        if base:
            lines.append(f"- started from: {base.get('path')} ({base.get('kind')})")
        code = run.get("code") or {}
        if code:
            lines.append(f"- code: `{code.get('commit')}`"
                         + (" (with uncommitted changes)" if code.get("dirty") else ""))
    elif training:
        for key in ("command", "base_weights", "epochs", "seed", "hardware", "code"):
            if key in training:
                lines.append(f"- {key}: `{training[key]}`")
    for note in training.get("notes") or []:
        lines.append(f"- note: {note}")
    if training.get("weights_sha256"):
        lines.append(f"- PyTorch weights sha256 `{training['weights_sha256']}`")
    if card.pytorch is not None:
        lines.append(f"- shipped for fine-tuning (`patrol train --base` with this model's folder name): "
                     f"`{card.pytorch.file}`, sha256 `{card.pytorch.sha256}`, {card.pytorch.origin}")
    export = training.get("export") or {}
    parity = export.get("parity") or {}
    if parity:
        lines.append(f"- ONNX export (opset {export.get('opset')}) checked against PyTorch on "
                     f"{parity.get('images')} images: {parity.get('boxes_compared')} detections matched, "
                     f"worst IoU {_fmt(parity.get('worst_box_iou'))}, worst score difference "
                     f"{_fmt(parity.get('worst_score_diff'))}")
    return lines or ["Not recorded."]


def render_card_markdown(card: ModelCard, taxonomy: Taxonomy) -> str:
    """The card for people: what the model finds, how well, on what data, from where."""
    metrics = card.metrics or {}
    per_class: dict[str, dict[str, Any]] = metrics.get("per_class", {}) if metrics else {}
    measured = [k for k, v in per_class.items() if v.get("ap50") is not None]
    claimed = sorted({k for k in card.label_map.values() if k is not None} | set(card.trained_classes),
                     key=lambda k: taxonomy.keys.index(k) if k in taxonomy else len(taxonomy))
    not_claimed = [spec.key for spec in taxonomy if spec.key not in claimed]
    lines = [f"# Model {card.name} ({card.version})", "",
             f"- weights: `{card.file}`, sha256 `{card.sha256}`",
             f"- architecture: {card.architecture or 'unknown'}; input {card.input_size}x{card.input_size}"
             + ("; NMS in the graph" if card.end2end else ""),
             f"- licence: {card.licence}", ""]
    lines += ["## What it reports", "",
              "| label | reported as | operating threshold |", "|---|---|---|"]
    for label in card.labels:
        key = card.label_map[label]
        if key is None:
            lines.append(f"| {label} | — (helper label, never reported) | – |")
        else:
            name = taxonomy.get(key).name_zh if key in taxonomy else ""
            lines.append(f"| {label} | {key} {name} | {card.threshold_for(label, taxonomy):.3f} |")
    lines += ["", f"Trained on: {', '.join(card.trained_classes) or 'not recorded'}. "
              f"Measured on: {', '.join(measured) or 'not measured yet'}."]
    if not_claimed:
        lines += ["", f"**Not claimed:** {', '.join(not_claimed)}. This model was not trained on these "
                  "classes and never reports them; label your own data to add them."]
    selection = card.dataset.get("threshold_selection")
    if selection:
        lines += ["", f"Thresholds chosen on the {selection.get('split', '?')} split of "
                  f"{selection.get('dataset', '?')} ({str(selection.get('dataset_hash', ''))[:12]}), rule: "
                  f"{selection.get('rule', '?')}."]
    lines += ["", "## Accuracy on the test split", ""]
    if not per_class:
        lines += ["Not measured yet: run `patrol evaluate MODEL --data DATASET --split test "
                  "--write-card`.", ""]
    else:
        lines += [f"Dataset {metrics.get('dataset')} (hash `{metrics.get('dataset_hash', '')}`), "
                  f"{metrics.get('n_images')} images, {metrics.get('evaluator', '')}. "
                  "AP from predictions down to the score floor; precision and recall at the operating "
                  "thresholds, IoU 0.5.", "",
                  "| class | AP50 | AP50-95 | precision | recall | images | boxes |",
                  "|---|---|---|---|---|---|---|"]
        for key, row in per_class.items():
            lines.append(f"| {key} | {_fmt(row.get('ap50'))} | {_fmt(row.get('ap50_95'))} | "
                         f"{_fmt(row.get('precision'))} | {_fmt(row.get('recall'))} | "
                         f"{_fmt(row.get('n_images'))} | {_fmt(row.get('n_boxes'))} |")
        false_alarms = _fmt(metrics.get("false_alarms_per_100_negatives"))
        lines += ["", f"mAP50 {_fmt(metrics.get('map50'))}, mAP50-95 {_fmt(metrics.get('map50_95'))}; "
                  f"false alarms per 100 negative images {false_alarms} "
                  f"({metrics.get('n_negative_images')} images without any violation).", ""]
    lines += generalisation_lines(metrics)
    if card.quantization:
        lines += [f"Quantization: {card.quantization}.", ""]
        quantized = (card.training or {}).get("quantization") or {}
        cost = quantized.get("accuracy") or {}
        if cost:  # written by training.quantize
            lines += [f"Accuracy cost on {cost.get('dataset')} [{cost.get('split')}], {cost.get('n_images')} "
                      f"images: mAP50 {_fmt(cost.get('int8_map50'))} int8 vs "
                      f"{_fmt(cost.get('source_map50'))} "
                      f"for the float source {quantized.get('source_model')} "
                      f"(sha256 `{str(quantized.get('source_sha256', ''))[:12]}`).", ""]
    lines += ["## Data and training", ""]
    lines += _training_lines(card)
    lines += ["", "## Credits", ""]
    lines += [f"- {credit}" for credit in card.attribution] or ["None recorded."]
    return "\n".join(lines) + "\n"
