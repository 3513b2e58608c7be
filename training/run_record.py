"""What a training run was: the exact command, data hash, code version, hardware and time.

Written as `run_record.json` beside ultralytics' own `args.yaml` in the run folder, once
when the run starts and again when it ends, so that a run killed half-way still says what
it was. The model card copies it into its `training` field, so the record keeps no absolute
path of the machine that trained: the run is named by its id (the run folder's name), and
paths are relative to the run folder (the command's to its `cwd`, itself relative to the run
folder).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from training.datasets.card import dataset_hash
from vision.model_registry import sha256_file

RECORD_JSON = "run_record.json"
DATASET_CARD_JSON = "dataset_card.json"   # written by `patrol dataset build` beside data.yaml
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class DataRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_yaml: str = Field(description="Relative to the run folder (as given when described alone).")
    hash: str = Field(description="Dataset hash: the dataset card's, else one computed from the files.")
    hash_source: Literal["dataset_card", "files"]
    name: str | None = None
    version: int | None = None
    labels: list[str]
    label_map: dict[str, str | None] | None = Field(
        default=None, description="From the dataset card when there is one.")
    attribution: list[str] = Field(default_factory=list, description="Sources to credit (CC BY).")


class CodeRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    commit: str = Field(description="git HEAD of the project, or 'unknown' outside a checkout.")
    dirty: bool | None = Field(description="Tracked files differ from the commit; None if unknown.")


class HardwareRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpu_model: str
    cpu_cores: int
    memory_gb: float | None
    gpu: str | None
    device: str
    python: str
    torch: str
    ultralytics: str
    platform: str


class RunRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str | None = Field(default=None, description="The run folder's name (`--name`).")
    command: list[str] = Field(description="argv of the process that trained, its absolute paths made "
                                           "relative to `cwd`.")
    command_line: str = Field(description="The same, shell-quoted, to paste and rerun in `cwd`.")
    cwd: str = Field(description="Working directory the command ran in, relative to the run folder.")
    # paused: stopped on purpose after a chunk of epochs (`patrol train --stop-after-*`); resumable.
    status: Literal["running", "paused", "finished", "failed"]
    started_at: str
    finished_at: str | None = None
    wall_seconds: float | None = Field(default=None, description="All sessions, resumes included.")
    resumed_at: list[str] = Field(default_factory=list)
    seed: int
    base: dict[str, Any] = Field(description="Starting weights: path (a checkpoint's relative to the run "
                                             "folder), sha256, kind.")
    train_args: dict[str, Any] = Field(description="What was passed to ultralytics' train(); its data and "
                                                   "project relative to the run folder.")
    data: DataRecord
    code: CodeRecord
    hardware: HardwareRecord
    offline: dict[str, Any] = Field(default_factory=dict,
                                    description="How downloads were kept out (AMP mode, fonts, plots).")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Final validation metrics.")
    error: str | None = None

    def write(self, run_dir: Path) -> Path:
        path = run_dir / RECORD_JSON
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, run_dir: Path) -> RunRecord:
        return cls.model_validate_json((run_dir / RECORD_JSON).read_text(encoding="utf-8"))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def command_line(argv: list[str]) -> str:
    return shlex.join(argv)


def relative_path(path: str | Path, start: Path) -> str:
    """`path` relative to the folder `start`, with / separators: what a record keeps instead of
    an absolute path of the machine that wrote it."""
    return Path(os.path.relpath(Path(path).resolve(), start.resolve())).as_posix()


def portable_command(argv: list[str], cwd: Path) -> list[str]:
    """argv with each absolute path in it (also in `--option=/path`) made relative to `cwd`."""
    portable = []
    for arg in argv:
        head, sep, value = arg.partition("=")
        if not (sep and arg.startswith("-")):
            head, sep, value = "", "", arg
        portable.append(head + sep + (relative_path(value, cwd) if os.path.isabs(value) else value))
    return portable


def _split_dirs(data: dict[str, Any], data_yaml: Path) -> list[Path]:
    root = Path(data.get("path") or data_yaml.parent)
    if not root.is_absolute():
        root = (data_yaml.parent / root).resolve()
    dirs = []
    for split in ("train", "val", "test"):
        entries = data.get(split) or []
        for entry in [entries] if isinstance(entries, str) else entries:
            path = Path(entry)
            dirs.append(path if path.is_absolute() else root / path)
    return dirs


def _labels_dir(images_dir: Path) -> Path:
    # ultralytics' rule: the last "images" folder in the path becomes "labels".
    parts = list(images_dir.parts)
    if "images" in parts:
        index = len(parts) - 1 - parts[::-1].index("images")
        parts[index] = "labels"
    return Path(*parts)


def hash_dataset_files(data_yaml: Path, labels: list[str]) -> str:
    """sha256 over sorted '<path relative to data.yaml's folder> <sha256>' of every image and label
    file of every split, plus the label names (the same rule as the dataset card's hash)."""
    data = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
    base = data_yaml.parent.resolve()
    files: dict[Path, str] = {}
    for images_dir in _split_dirs(data, data_yaml):
        if images_dir.is_file():  # a .txt list of image paths
            files[images_dir] = sha256_file(images_dir)
            continue
        for folder, keep in ((images_dir, _IMAGE_SUFFIXES), (_labels_dir(images_dir), {".txt"})):
            if folder.is_dir():
                for path in folder.rglob("*"):
                    if path.is_file() and path.suffix.lower() in keep:
                        files[path] = sha256_file(path)
    pairs = []
    for path, file_sha in files.items():
        resolved = path.resolve()
        rel = resolved.relative_to(base).as_posix() if resolved.is_relative_to(base) else resolved.as_posix()
        pairs.append((rel, file_sha))
    return dataset_hash(pairs, labels)


def data_labels(data_yaml: Path) -> list[str]:
    data = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
    names = data.get("names")
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise ValueError(f"{data_yaml}: expected 'names' as a list or an id -> name mapping, got {names!r}")


def describe_data(data_yaml: Path, run_dir: Path | None = None) -> DataRecord:
    """The dataset card's hash and label map when `patrol dataset build` wrote one, else hash the files.

    With `run_dir`, data_yaml is recorded relative to it."""
    labels = data_labels(data_yaml)
    recorded = relative_path(data_yaml, run_dir) if run_dir is not None else str(data_yaml)
    card_path = data_yaml.parent / DATASET_CARD_JSON
    if card_path.is_file():
        card = json.loads(card_path.read_text(encoding="utf-8"))
        credits = [s.get("attribution") or f"{s.get('name')} ({s.get('licence')}) {s.get('url', '')}".strip()
                   for s in card.get("sources", [])]
        return DataRecord(data_yaml=recorded, hash=card["hash"], hash_source="dataset_card",
                          name=card.get("name"), version=card.get("version"), labels=labels,
                          label_map=card.get("label_map"), attribution=credits)
    return DataRecord(data_yaml=recorded, hash=hash_dataset_files(data_yaml, labels),
                      hash_source="files", labels=labels)


def describe_code(project_root: Path | None = None) -> CodeRecord:
    root = project_root or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return CodeRecord(commit="unknown", dirty=None)
    return CodeRecord(commit=commit, dirty=bool(status.strip()))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def describe_hardware(device: str) -> HardwareRecord:
    import torch
    import ultralytics

    gpu = None
    if device not in ("cpu", "mps") and torch.cuda.is_available():
        index = int(device.split(":")[-1]) if device.split(":")[-1].isdigit() else 0
        gpu = torch.cuda.get_device_name(index)
    return HardwareRecord(
        cpu_model=_cpu_model(), cpu_cores=os.cpu_count() or 1, memory_gb=_memory_gb(), gpu=gpu,
        device=device, python=sys.version.split()[0], torch=torch.__version__,
        ultralytics=ultralytics.__version__, platform=platform.platform())
