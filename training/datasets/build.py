"""Build a YOLO dataset from a spec: `OUT/images/<split>/`, `OUT/labels/<split>/`, `OUT/data.yaml`
and the dataset card.

Images are hard-linked from the sources when the file system allows it (copied otherwise),
so a build of the shared data takes seconds and no disk. Output names are
`<source>__<original stem><suffix>`, so every file says where it came from. Labels are
rewritten with model label ids; polygons become boxes. The build is deterministic: the
same sources and spec give byte-identical label files and the same hash.

A source folder may hold a `provenance.jsonl` (`patrol review export` writes one: where each
reviewed image came from and who decided its labels), one JSON object per image whose
`image` is its path in the folder; each kept image's object is carried into
`OUT/provenance.jsonl` with its new path and split.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from PIL import Image, UnidentifiedImageError

from training.datasets.card import (
    CARD_JSON,
    CARD_MD,
    HASHED_FOLDERS,
    DatasetCard,
    SourceReport,
    SplitCounts,
    canonical_json_sha256,
    dataset_hash,
    sha256_bytes,
)
from training.datasets.errors import DatasetError
from training.datasets.labels import LabelIssue, read_label_file
from training.datasets.near_duplicates import near_duplicate_report
from training.datasets.spec import SPLITS, DatasetSpec, SourceSpec, SplitName
from training.datasets.split import assign_split
from training.datasets.yolo import label_path_for, list_images
from vision.output_folder import replace_earlier_output
from vision.taxonomy import Taxonomy

SHARED_DATA_ENV = "PATROL_SHARED_DATA"
PROVENANCE = "provenance.jsonl"
REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_root() -> Path:
    """$PATROL_SHARED_DATA, else ../shared/datasets beside the repository."""
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env)
    return (REPO_ROOT.parent / "shared" / "datasets").resolve()


@dataclass(frozen=True)
class BuildResult:
    out: Path
    card: DatasetCard
    seconds: float
    linked: int
    copied: int


@dataclass
class _PlannedImage:
    source: str
    src_path: Path
    out_name: str
    sha256: str
    split: SplitName
    label_text: str
    label_counts: dict[str, int]
    provenance: dict[str, object] | None = None


@dataclass
class _SourceScan:
    report: SourceReport
    images: list[_PlannedImage] = field(default_factory=list)
    issues: list[LabelIssue] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


def _display(path: Path, data_root: Path) -> str:
    try:
        return path.relative_to(data_root).as_posix()
    except ValueError:
        return str(path)


def _source_folders(source: SourceSpec, root: Path) -> list[Path]:
    if not root.is_dir():
        raise DatasetError(f"source {source.name!r}: folder {root} does not exist; set the data root "
                           f"with --data-root or ${SHARED_DATA_ENV}")
    if source.folders is not None:
        folders = [root / f for f in source.folders]
    else:
        folders = sorted(p for p in root.iterdir() if (p / "images").is_dir())
        if (root / "images").is_dir():
            folders.insert(0, root)
    missing = [str(f) for f in folders if not (f / "images").is_dir()]
    if missing or not folders:
        raise DatasetError(f"source {source.name!r}: expected images/ and labels/ folders under "
                           f"{missing or [str(root)]}")
    return folders


def _probe(data: bytes) -> str | None:
    """None when the bytes open as an image, else the reason they do not."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return f"cannot read image: {exc}"
    if width < 1 or height < 1:
        return f"image has no pixels ({width}x{height})"
    return None


def _scan_source(spec: DatasetSpec, source: SourceSpec, data_root: Path,
                 seen: dict[str, str], used_names: set[str]) -> _SourceScan:
    root = Path(source.path) if Path(source.path).is_absolute() else data_root / source.path
    report = SourceReport(name=source.name, path=source.path, licence=source.licence, url=source.url,
                          attribution=source.attribution,
                          split_rule="content hash" if source.split == "hash" else f"all in {source.split}",
                          group_rule=source.group.pattern if source.group else None)
    scan = _SourceScan(report)
    label_ids = {name: i for i, name in enumerate(spec.label_names)}
    group_units: set[str] = set()
    for folder in _source_folders(source, root):
        provenance = _read_provenance(folder / PROVENANCE)
        for image_path in list_images(folder / "images"):
            report.images_read += 1
            shown = _display(image_path, data_root)
            data = image_path.read_bytes()
            problem = _probe(data)
            if problem is not None:
                report.images_unreadable += 1
                scan.issues.append(LabelIssue(shown, 0, problem))
                continue
            sha = sha256_bytes(data)
            if sha in seen:
                report.duplicates_skipped += 1
                scan.duplicates.append(f"{shown} is byte-identical to {seen[sha]}")
                continue
            seen[sha] = shown
            label_path = label_path_for(image_path)
            boxes, issues = read_label_file(label_path, source.classes.keys(),
                                            _display(label_path, data_root))
            scan.issues.extend(issues)
            report.label_issues += len(issues)
            lines: list[str] = []
            counts = dict.fromkeys(spec.label_names, 0)
            for box in boxes:
                source_class = source.classes[box.class_id]
                label = source.class_map[source_class]
                report.polygons_converted += int(box.from_polygon)
                if label is None:
                    report.boxes_dropped[source_class] = report.boxes_dropped.get(source_class, 0) + 1
                    continue
                report.boxes_kept[source_class] = report.boxes_kept.get(source_class, 0) + 1
                lines.append(box.yolo_line(label_ids[label]))
                counts[label] += 1
            if source.split == "hash":
                group_key = source.group.group_key(image_path.name) if source.group else None
                split = assign_split(sha, spec.fractions, source=source.name, group_key=group_key)
                group_units.add(f"g:{group_key}" if group_key is not None else f"i:{sha}")
            else:
                split = source.split
                group_units.add(f"i:{sha}")
            out_name = f"{source.name}__{image_path.stem}{image_path.suffix.lower()}"
            if out_name in used_names:
                out_name = f"{source.name}__{sha[:12]}__{image_path.stem}{image_path.suffix.lower()}"
            used_names.add(out_name)
            scan.images.append(_PlannedImage(
                source=source.name, src_path=image_path, out_name=out_name, sha256=sha, split=split,
                label_text="\n".join(lines) + "\n" if lines else "", label_counts=counts,
                provenance=provenance.get(image_path.relative_to(folder).as_posix())))
            report.images_kept += 1
    report.groups = len(group_units)
    return scan


def _read_provenance(path: Path) -> dict[str, dict[str, object]]:
    """A folder's provenance.jsonl by image path; empty when it has none."""
    if not path.is_file():
        return {}
    found: dict[str, dict[str, object]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: expected one JSON object per line: {exc}") from exc
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            raise DatasetError(f"{path}:{number}: expected an object with the image's path as `image`")
        found[entry["image"]] = entry
    return found


def _prepare_out(out: Path) -> None:
    replace_earlier_output(
        out,
        marker=CARD_JSON,
        earlier="a previous build",
        folders=HASHED_FOLDERS,
        files=("data.yaml", CARD_JSON, CARD_MD, PROVENANCE),
        make=[f"{sub}/{split}" for sub in HASHED_FOLDERS for split in SPLITS],
        error=DatasetError,
    )


def _place_image(src: Path, dst: Path) -> bool:
    """Hard-link src to dst; copy when linking is impossible. True when linked."""
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copyfile(src, dst)
        return False


def _iter_planned(scans: list[_SourceScan]) -> Iterator[_PlannedImage]:
    for scan in scans:
        yield from scan.images


def build_dataset(spec: DatasetSpec, out: Path, data_root: Path | None = None, *,
                  taxonomy: Taxonomy | None = None, check_near_duplicates: bool = True,
                  near_duplicate_hamming: int = 4) -> BuildResult:
    """Write the dataset described by `spec` into `out` and return its card."""
    started = time.perf_counter()
    spec.check_taxonomy(taxonomy or Taxonomy.default())
    data_root = (data_root or default_data_root()).resolve()
    out = Path(out).resolve()
    seen: dict[str, str] = {}
    used_names: set[str] = set()
    scans = [_scan_source(spec, source, data_root, seen, used_names) for source in spec.sources]
    if not any(scan.images for scan in scans):
        raise DatasetError(f"dataset {spec.name!r}: no readable images in any source under {data_root}")

    _prepare_out(out)
    linked = copied = 0
    hashed_files: list[tuple[str, str]] = []
    violation_labels = {label for label, key in spec.label_map.items() if key is not None}
    splits = {split: SplitCounts(boxes=dict.fromkeys(spec.label_names, 0)) for split in SPLITS}
    by_source: dict[str, dict[str, SplitCounts]] = {}
    paths_by_source: dict[str, dict[str, list[Path]]] = {}
    provenance: list[str] = []
    for planned in _iter_planned(scans):
        image_rel = f"images/{planned.split}/{planned.out_name}"
        label_rel = f"labels/{planned.split}/{Path(planned.out_name).stem}.txt"
        if planned.provenance is not None:
            provenance.append(json.dumps({"image": image_rel, "label": label_rel, "split": planned.split,
                                          "source": planned.source, "provenance": planned.provenance},
                                         ensure_ascii=False, sort_keys=True))
        if _place_image(planned.src_path, out / image_rel):
            linked += 1
        else:
            copied += 1
        label_bytes = planned.label_text.encode("utf-8")
        (out / label_rel).write_bytes(label_bytes)
        hashed_files += [(image_rel, planned.sha256), (label_rel, sha256_bytes(label_bytes))]
        splits[planned.split].add(planned.label_counts, violation_labels)
        per_source = by_source.setdefault(planned.source, {})
        per_source.setdefault(planned.split, SplitCounts(boxes=dict.fromkeys(spec.label_names, 0))).add(
            planned.label_counts, violation_labels)
        source_paths = paths_by_source.setdefault(planned.source, {})
        source_paths.setdefault(planned.split, []).append(planned.src_path)

    data_yaml = {"path": str(out), "train": "images/train", "val": "images/val", "test": "images/test",
                 "names": dict(enumerate(spec.label_names))}
    if provenance:
        (out / PROVENANCE).write_text("".join(f"{line}\n" for line in provenance), encoding="utf-8")
    (out / "data.yaml").write_text(yaml.safe_dump(data_yaml, sort_keys=False, allow_unicode=True),
                                   encoding="utf-8")
    near = None
    if check_near_duplicates:
        near = near_duplicate_report(paths_by_source, near_duplicate_hamming)
    spec_json = spec.model_dump(mode="json")
    card = DatasetCard(
        name=spec.name, version=spec.version,
        hash=dataset_hash(hashed_files, spec.label_names),
        spec_sha256=canonical_json_sha256(spec_json),
        labels=list(spec.label_names), label_map=spec.label_map,
        fractions=spec.fractions.model_dump(),
        splits=splits, by_source=by_source,
        sources=[scan.report for scan in scans],
        issues=[str(issue) for scan in scans for issue in scan.issues],
        duplicates=[d for scan in scans for d in scan.duplicates],
        near_duplicates=near, spec=spec_json)
    card.write(out)
    return BuildResult(out=out, card=card, seconds=time.perf_counter() - started,
                       linked=linked, copied=copied)
