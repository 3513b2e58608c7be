"""The YOLO folder layout and `data.yaml`, read the way ultralytics reads them.

An image `.../images/.../name.jpg` has its labels in `.../labels/.../name.txt` (the last
`/images/` in the path becomes `/labels/`). A `data.yaml` has `path` (the root; relative
to the YAML's folder), `train`/`val`/`test` (a folder of images, a .txt list of image
paths, or a list of those) and `names` (a list, or a mapping from class id to name).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from training.datasets.errors import DatasetError
from vision.config_files import read_config_file

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def label_path_for(image_path: Path) -> Path:
    """Where a YOLO image keeps its labels (ultralytics' img2label_paths rule)."""
    text = str(image_path)
    images_part, labels_part = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if images_part in text:
        text = labels_part.join(text.rsplit(images_part, 1))
    return Path(text).with_suffix(".txt")


def list_images(folder: Path) -> list[Path]:
    """Image files under a folder (recursively), sorted by path for a deterministic order."""
    if not folder.is_dir():
        raise DatasetError(f"expected a folder of images at {folder}, found none")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


@dataclass(frozen=True)
class DataYaml:
    """A parsed data.yaml: class names and, per split it names, where the images are.

    Split entries are resolved when asked for, so a data.yaml naming a split whose folder is
    absent can still be used for the splits that exist.
    """

    path: Path
    root: Path
    names: tuple[str, ...]
    split_entries: dict[str, object]

    def images(self, split: str) -> tuple[Path, ...]:
        if split not in self.split_entries:
            raise DatasetError(f"{self.path} has no {split!r} split; it has {sorted(self.split_entries)}")
        return _split_images(self.split_entries[split], self.root, self.path)

    def existing_splits(self) -> dict[str, tuple[Path, ...]]:
        """The images of every split whose entries all exist."""
        found = {}
        for split in self.split_entries:
            try:
                found[split] = self.images(split)
            except DatasetError:
                continue
        return found


def _names(raw: object, path: Path) -> tuple[str, ...]:
    if isinstance(raw, list) and all(isinstance(n, str) for n in raw):
        return tuple(raw)
    if isinstance(raw, dict):
        try:
            by_id = {int(k): str(v) for k, v in raw.items()}
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: expected `names` keys to be class ids, got {list(raw)}") from exc
        if sorted(by_id) != list(range(len(by_id))):
            raise DatasetError(f"{path}: expected class ids 0..{len(by_id) - 1} in `names`, "
                               f"got {sorted(by_id)}")
        return tuple(by_id[i] for i in range(len(by_id)))
    raise DatasetError(f"{path}: expected `names` as a list or an id->name mapping, got {raw!r}")


def _split_images(entry: object, root: Path, yaml_path: Path) -> tuple[Path, ...]:
    entries = entry if isinstance(entry, list) else [entry]
    found: list[Path] = []
    for item in entries:
        if not isinstance(item, str):
            raise DatasetError(f"{yaml_path}: expected split entries to be paths, got {item!r}")
        target = Path(item) if Path(item).is_absolute() else root / item
        if target.is_dir():
            found.extend(list_images(target))
        elif target.is_file() and target.suffix == ".txt":
            for line in target.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line:
                    listed = Path(line)
                    found.append(listed if listed.is_absolute() else (target.parent / listed))
        else:
            raise DatasetError(f"{yaml_path}: split entry {item!r} is neither a folder of images nor "
                               f"a .txt list (looked at {target})")
    return tuple(found)


def read_data_yaml(path: str | Path) -> DataYaml:
    path = Path(path)
    if path.is_dir():
        path = path / "data.yaml"
    raw = read_config_file(path, "data.yaml", DatasetError, fmt="YAML")
    if not isinstance(raw, dict) or "names" not in raw:
        raise DatasetError(f"{path}: expected a mapping with `names` and split folders")
    root_raw = raw.get("path") or "."
    root = Path(root_raw)
    if not root.is_absolute():
        root = (path.parent / root).resolve()
    names = _names(raw["names"], path)
    entries = {split: raw[split] for split in ("train", "val", "test") if raw.get(split)}
    return DataYaml(path=path, root=root, names=names, split_entries=entries)
