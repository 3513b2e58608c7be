"""The dataset card: what a built dataset holds, where it came from, and a hash of the whole.

The hash is a sha256 over the sorted lines "<relative path> <sha256 of the file>" of every
image and label file, plus one line with the label names, so two builds with the same
content have the same hash wherever they were written, and any changed pixel, box or
label name changes it. `data.yaml` (it holds the absolute output path) and the card
itself are not part of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from training.datasets.errors import DatasetError
from training.datasets.spec import SPLITS

CARD_JSON = "dataset_card.json"
CARD_MD = "dataset_card.md"
HASHED_FOLDERS = ("images", "labels")
_SPLIT_PAIRS = ("test~train", "test~val", "train~val")
_LEAK_COLUMNS = ("test_images", "test_with_train_duplicate", "val_images", "val_with_train_duplicate")


class SplitCounts(BaseModel):
    """Images and boxes of one split (or one source within a split)."""

    model_config = ConfigDict(extra="forbid")

    images: int = 0
    images_without_boxes: int = Field(default=0, description="No box of any label.")
    images_without_violations: int = Field(
        default=0, description="No box of a label mapped onto a taxonomy key: the negatives that "
                               "false alarms are counted on.")
    boxes: dict[str, int] = Field(default_factory=dict, description="Boxes per model label.")

    def add(self, label_counts: dict[str, int], violation_labels: set[str]) -> None:
        self.images += 1
        if not any(label_counts.values()):
            self.images_without_boxes += 1
        if not any(n for label, n in label_counts.items() if label in violation_labels):
            self.images_without_violations += 1
        for label, n in label_counts.items():
            self.boxes[label] = self.boxes.get(label, 0) + n


class SourceReport(BaseModel):
    """What happened to one source during the build."""

    model_config = ConfigDict(extra="forbid")

    name: str
    path: str
    licence: str
    url: str = ""
    attribution: str = ""
    split_rule: str
    group_rule: str | None = None
    images_read: int = 0
    images_kept: int = 0
    images_unreadable: int = 0
    duplicates_skipped: int = Field(default=0, description="Byte-identical to an image already kept.")
    groups: int = Field(default=0, description="Distinct split units (groups or single images).")
    boxes_kept: dict[str, int] = Field(default_factory=dict, description="Per source class name.")
    boxes_dropped: dict[str, int] = Field(default_factory=dict,
                                          description="Per source class name mapped to null.")
    polygons_converted: int = 0
    label_issues: int = 0


class DatasetCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: int
    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 over all image and label files.")
    spec_sha256: str = Field(description="sha256 of the canonical JSON of the spec.")
    labels: list[str] = Field(description="Model labels by class id (the names in data.yaml).")
    label_map: dict[str, str | None] = Field(description="Model label -> taxonomy key or null.")
    fractions: dict[str, float]
    splits: dict[str, SplitCounts]
    by_source: dict[str, dict[str, SplitCounts]]
    sources: list[SourceReport]
    issues: list[str] = Field(default_factory=list, description="Skipped label lines and images, "
                                                                 "as file:line: reason.")
    duplicates: list[str] = Field(default_factory=list)
    near_duplicates: dict[str, Any] | None = Field(
        default=None, description="Visually near-identical pairs across splits (leak check).")
    spec: dict[str, Any]

    @property
    def violation_labels(self) -> set[str]:
        return {label for label, key in self.label_map.items() if key is not None}

    @classmethod
    def read(cls, path: str | Path) -> DatasetCard:
        path = Path(path)
        if path.is_dir():
            path = path / CARD_JSON
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read dataset card: {exc}") from exc
        except ValidationError as exc:
            raise DatasetError(f"{path}: invalid dataset card: {exc}") from exc

    def write(self, folder: Path) -> None:
        (folder / CARD_JSON).write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        (folder / CARD_MD).write_text(render_card_markdown(self), encoding="utf-8")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json_sha256(value: Any) -> str:
    return sha256_bytes(json.dumps(value, sort_keys=True, separators=(",", ":"),
                                   ensure_ascii=False).encode("utf-8"))


def dataset_hash(files: Iterable[tuple[str, str]], labels: Iterable[str]) -> str:
    """Hash of (relative posix path, file sha256) pairs plus the label names."""
    digest = hashlib.sha256()
    for rel, file_sha in sorted(files):
        digest.update(f"{rel} {file_sha}\n".encode())
    digest.update(("names " + json.dumps(list(labels), ensure_ascii=False) + "\n").encode("utf-8"))
    return digest.hexdigest()


def hash_built_folder(folder: Path, labels: Iterable[str]) -> str:
    """Recompute a built dataset's hash from the files on disk (to verify a card)."""
    files = []
    for sub in HASHED_FOLDERS:
        for path in sorted((folder / sub).rglob("*")):
            # ultralytics writes labels/<split>.cache beside the label folders when it trains on
            # the build; it is derived from the files hashed here, not part of the dataset.
            if path.is_file() and path.suffix != ".cache":
                files.append((path.relative_to(folder).as_posix(), sha256_bytes(path.read_bytes())))
    return dataset_hash(files, labels)


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_card_markdown(card: DatasetCard) -> str:
    labels = card.labels
    header = ["split", "images", "negatives", *labels]
    rows = []
    for split in SPLITS:
        counts = card.splits.get(split, SplitCounts())
        rows.append([split, str(counts.images), str(counts.images_without_violations),
                     *(str(counts.boxes.get(label, 0)) for label in labels)])
    lines = [f"# Dataset {card.name} (v{card.version})", "",
             f"Hash of the whole: `{card.hash}`", "",
             "Images and boxes per split (negatives: images without any violation box, the "
             "denominator of false alarms per 100 negatives).", "",
             *_table(rows, header), "",
             "## Labels", "",
             *_table([[str(i), label, str(card.label_map[label] or "— (helper, no violation)")]
                      for i, label in enumerate(labels)], ["id", "label", "taxonomy key"]), "",
             "## Sources", ""]
    for source in card.sources:
        per_split = card.by_source.get(source.name, {})
        split_text = ", ".join(f"{s} {per_split[s].images}" for s in SPLITS if s in per_split)
        lines += [f"### {source.name}", "",
                  f"- from `{source.path}`; licence {source.licence}"
                  + (f"; {source.url}" if source.url else ""),
                  *( [f"- credit: {source.attribution}"] if source.attribution else []),
                  f"- split rule: {source.split_rule}"
                  + (f"; grouped by `{source.group_rule}` ({source.groups} groups)"
                     if source.group_rule else ""),
                  f"- images read {source.images_read}, kept {source.images_kept} ({split_text}); "
                  f"unreadable {source.images_unreadable}; byte-identical duplicates skipped "
                  f"{source.duplicates_skipped}",
                  f"- boxes kept per source class: {json.dumps(source.boxes_kept, ensure_ascii=False)}; "
                  f"dropped (mapped to null): {json.dumps(source.boxes_dropped, ensure_ascii=False)}; "
                  f"polygons converted to boxes: {source.polygons_converted}; "
                  f"label lines skipped: {source.label_issues}", ""]
    if card.near_duplicates is not None:
        nd = card.near_duplicates
        pairs = nd.get("pairs", {})
        lines += ["## Near-duplicates across splits", "",
                  f"Image pairs in different splits within {nd.get('method', '')}, per source, and "
                  "how many test and val images have a near-identical image in train: figures "
                  "measured on those images are optimistic.", "",
                  *_table([[source, *(str(pairs[source].get(k, 0)) for k in _SPLIT_PAIRS + _LEAK_COLUMNS)]
                           for source in sorted(pairs)], ["source", *_SPLIT_PAIRS, *_LEAK_COLUMNS]), ""]
    lines += ["## Issues", ""]
    if card.issues:
        lines += [f"{len(card.issues)} label lines or images were skipped:", "", "```",
                  *card.issues[:50], *(["..."] if len(card.issues) > 50 else []), "```", ""]
    else:
        lines += ["None: every label line was used.", ""]
    return "\n".join(lines)
