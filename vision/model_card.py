"""Model cards: what a shipped model is, what it was trained and measured on, and how to use it.

`models/<name>/card.json` sits beside `model.onnx`. The pipeline reads `labels`,
`label_map` and `thresholds` from it; people read `card.md`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vision.config_files import load_config_file
from vision.errors import ModelError
from vision.taxonomy import Taxonomy


class PytorchWeights(BaseModel):
    """The trainable checkpoint shipped beside the ONNX file, so fine-tuning starts from the
    model that serves (`patrol train --base <model name>`)."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(default="model.pt", description="Checkpoint file beside the card.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the checkpoint file.")
    origin: str = Field(description="Where it came from: the training run's weights, or rebuilt "
                                    "from the ONNX file (training/rebuild_pt.py).")
    details: dict[str, Any] = Field(default_factory=dict,
                                    description="The origin's facts: rebuild report and parity check.")


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Registry name, the folder under models/.")
    version: str = Field(description="Model version, e.g. 2026.11.23-1.")
    file: str = Field(default="model.onnx", description="Weights file beside the card.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the weights file.")
    architecture: str = Field(default="", description="e.g. yolov5nu.")
    input_size: int = Field(ge=32, le=4096, description="Square network input in pixels.")
    end2end: bool = Field(default=False, description="True when the graph already does NMS.")
    labels: list[str] = Field(min_length=1, description="Model labels by class id.")
    label_map: dict[str, str | None] = Field(
        description="Model label -> taxonomy key; null for helper labels that are no violation.")
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Operating score threshold per model label.")
    trained_classes: list[str] = Field(
        default_factory=list, description="Taxonomy keys this model was trained and measured on.")
    dataset: dict[str, Any] = Field(default_factory=dict, description="Dataset card hash and summary.")
    training: dict[str, Any] = Field(default_factory=dict,
                                     description="Command, code version, hardware, base weights, seed.")
    metrics: dict[str, Any] = Field(default_factory=dict,
                                    description="Exactly what `patrol evaluate --json` printed on test.")
    quantization: str | None = Field(default=None, description="e.g. int8-static; cost in metrics.")
    pytorch: PytorchWeights | None = Field(default=None, description="Trainable weights beside the ONNX.")
    licence: str = Field(default="AGPL-3.0-or-later")
    attribution: list[str] = Field(default_factory=list, description="Data sources to credit.")

    @model_validator(mode="after")
    def _maps_cover_labels(self) -> ModelCard:
        missing = [label for label in self.labels if label not in self.label_map]
        if missing:
            raise ValueError(f"expected label_map to cover every label, missing {missing}")
        unknown = [label for label in self.thresholds if label not in self.labels]
        if unknown:
            raise ValueError(f"thresholds name labels the model lacks: {unknown}")
        return self

    def check_taxonomy(self, taxonomy: Taxonomy) -> None:
        """Every mapped key and trained class must exist in the taxonomy."""
        keys = {k for k in self.label_map.values() if k is not None} | set(self.trained_classes)
        unknown = sorted(k for k in keys if k not in taxonomy)
        if unknown:
            raise ModelError(f"model {self.name!r} maps onto unknown taxonomy keys {unknown}; "
                             f"known: {', '.join(taxonomy.keys)}")

    def threshold_for(self, label: str, taxonomy: Taxonomy) -> float:
        """The card's threshold for a label, else its taxonomy class default, else 0.25."""
        if label in self.thresholds:
            return self.thresholds[label]
        key = self.label_map.get(label)
        return taxonomy.get(key).threshold if key is not None else 0.25

    # -- files --------------------------------------------------------------------------

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        return load_config_file(cls, Path(path), "model card", ModelError, fmt="JSON")

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
