"""Reading the YAML and JSON files the project is configured by: taxonomy, model cards, camera
configs, dataset definitions, YOLO data.yaml.

One reader, so that every such file fails the same way: the error (a PatrolVisionError the
caller names) starts with the path and says what the file was meant to be and what is
wrong: unreadable, not valid YAML/JSON, or (for a pydantic model) invalid.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Format = Literal["JSON", "YAML"]


def read_config_file(
    path: Path, what: str, error: Callable[[str], Exception], *, fmt: Format | None = None
) -> Any:
    """The parsed content of `path`: `fmt`, or by suffix JSON for .json and YAML otherwise."""
    fmt = fmt or ("JSON" if path.suffix.lower() == ".json" else "YAML")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from exc
    try:
        return json.loads(text) if fmt == "JSON" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise error(f"{path}: {what} is not valid {fmt}: {exc}") from exc


def load_config_file(
    model: type[M], path: Path, what: str, error: Callable[[str], Exception], *, fmt: Format | None = None
) -> M:
    """`read_config_file`, validated as `model`."""
    raw = read_config_file(path, what, error, fmt=fmt)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise error(f"{path}: invalid {what}: {exc}") from exc


def require_unique(names: Sequence[str], what: str) -> None:
    """For a config model's validator: raise ValueError naming the repeated `names` ("class keys")."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"expected unique {what}, got duplicates {repeated}")
