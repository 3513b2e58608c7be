"""Violation classes as data: loaded from YAML, validated, looked up by key.

The taxonomy is what the office reports in (English key, Chinese name, colour). A model
has its own labels; its card maps each label onto a taxonomy key (or onto nothing, for
helper labels such as `garbage_bin` that are not violations).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vision.config_files import load_config_file, require_unique
from vision.errors import TaxonomyError
from vision.sources import SourceKind

GroundAnchor = Literal["center", "bottom_center"]


class HeightPrior(BaseModel):
    """How tall a standing class typically is: the footprint of a box seen obliquely (or from
    nearly above, where the top leans outward) depends on it, and its spread on the area's
    uncertainty."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    typical_m: float = Field(gt=0, le=200, description="Typical height above the ground in metres.")
    sigma_m: float = Field(ge=0, le=200, description="One-sigma spread of that height in metres.")


class ClassSpec(BaseModel):
    """One violation class."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(description="Stable English key, snake_case; used in APIs, files and labels.")
    name_zh: str = Field(min_length=1, description="Chinese display name, e.g. 垃圾堆.")
    name_en: str = Field(default="", description="English display name.")
    colour: str = Field(default="#FF0000", description="Display colour as #RRGGBB.")
    threshold: float = Field(default=0.35, ge=0.0, le=1.0,
                             description="Default score threshold when a model card sets none.")
    sources: tuple[SourceKind, ...] = Field(default=("camera", "drone", "citizen"),
                                            description="Imagery kinds the class applies to.")
    ground_anchor: GroundAnchor = Field(
        default="center",
        description="Which point of a box touches the ground: bottom_center for standing "
                    "objects seen obliquely, center for flat ones.")
    height_m: HeightPrior | None = Field(
        default=None,
        description="Typical height of a standing class (bottom_center anchor); none for flat ones.")
    dedup_radius_m: float = Field(default=25.0, gt=0, le=10_000,
                                  description="Observations closer than this join one issue.")
    min_size_m: float | None = Field(
        default=None, gt=0, le=1000,
        description="The smallest object of the class worth reporting, in metres across; aerial "
                    "images are shrunk to the ground sampling distance that still shows it "
                    "(vision.ground_sampling). None: the class asks for no particular resolution.")

    @field_validator("key")
    @classmethod
    def _key_is_snake_case(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", value):
            raise ValueError(f"expected a snake_case key like 'garbage_pile', got {value!r}")
        return value

    @field_validator("colour")
    @classmethod
    def _colour_is_hex(cls, value: str) -> str:
        if not re.fullmatch(r"#[0-9A-Fa-f]{6}", value):
            raise ValueError(f"expected a colour like '#1F77B4', got {value!r}")
        return value.upper()

    @property
    def bgr(self) -> tuple[int, int, int]:
        """The colour as an OpenCV BGR triple."""
        r, g, b = (int(self.colour[i:i + 2], 16) for i in (1, 3, 5))
        return (b, g, r)


class Taxonomy(BaseModel):
    """An ordered, validated set of classes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    classes: tuple[ClassSpec, ...]

    @model_validator(mode="after")
    def _keys_unique(self) -> Taxonomy:
        keys = [c.key for c in self.classes]
        require_unique(keys, "class keys")
        if not keys:
            raise ValueError("expected at least one class")
        return self

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, path: str | Path) -> Taxonomy:
        return load_config_file(cls, Path(path), "taxonomy", TaxonomyError, fmt="YAML")

    @classmethod
    def from_mapping(cls, raw: object, origin: str = "<mapping>") -> Taxonomy:
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise TaxonomyError(f"{origin}: invalid taxonomy: {exc}") from exc

    @classmethod
    def default(cls) -> Taxonomy:
        """The five patrol classes shipped with the package."""
        text = resources.files("vision.data").joinpath("taxonomy.yaml").read_text(encoding="utf-8")
        return cls.from_mapping(yaml.safe_load(text), origin="vision/data/taxonomy.yaml")

    # -- lookup -------------------------------------------------------------------------

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.classes)

    def __iter__(self) -> Iterator[ClassSpec]:  # type: ignore[override]  # the classes, not pydantic's fields
        return iter(self.classes)

    def __len__(self) -> int:
        return len(self.classes)

    def __contains__(self, key: object) -> bool:
        return key in self.keys

    def get(self, key: str) -> ClassSpec:
        for spec in self.classes:
            if spec.key == key:
                return spec
        raise TaxonomyError(f"unknown class key {key!r}; known keys: {', '.join(self.keys)}")

    def index(self, key: str) -> int:
        """Position of a class: the class id used in datasets built for this taxonomy."""
        return self.keys.index(self.get(key).key)
