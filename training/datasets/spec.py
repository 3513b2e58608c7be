"""A dataset definition (datasets/*.yaml): which sources, how their classes map, how to split.

A spec names the model labels in class-id order, each mapped onto a taxonomy key or onto
nothing (`taxonomy: null`, a helper label such as `garbage_bin` that is no violation).
Every source lists its own class ids and maps each of its class names onto a model label,
or onto null to drop those boxes (the image stays, as a negative where nothing else is
in it). Every source class must be mapped explicitly, so a new class in an export cannot
slip in unnoticed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from training.datasets.errors import DatasetError
from vision.config_files import load_config_file, require_unique
from vision.taxonomy import Taxonomy

SPLITS: tuple[str, ...] = ("train", "val", "test")
SplitName = Literal["train", "val", "test"]

_SNAKE = re.compile(r"[a-z][a-z0-9_]*")
_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]*")


def _matching(pattern: re.Pattern[str], expected: str) -> AfterValidator:
    """A text field that must fully match `pattern`; the error says `expected` and what it got."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"expected {expected}, got {value!r}")
        return value

    return AfterValidator(check)


class LabelSpec(BaseModel):
    """One model label (class id = position in `DatasetSpec.labels`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, _matching(_SNAKE, "a snake_case label like 'garbage_pile'")] = Field(
        description="Model label, snake_case, e.g. garbage_pile or smoke.")
    taxonomy: str | None = Field(description="Taxonomy key it reports as; null for a helper label.")
    description: str = Field(default="", description="What a box of this label contains.")


class SplitFractions(BaseModel):
    """Share of images (or image groups) per split; test takes the lowest hash values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train: float = Field(default=0.70, ge=0.0, le=1.0)
    val: float = Field(default=0.15, ge=0.0, le=1.0)
    test: float = Field(default=0.15, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitFractions:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"expected split fractions to sum to 1, got {total:g}")
        return self


class GroupRule(BaseModel):
    """Images whose file names give the same group key always land in the same split.

    Near-duplicates (frames of one video, a burst of photos) would otherwise leak between
    train and test and make test figures look better than they are.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: str = Field(description="Regular expression searched in the file name; its named "
                                     "group `key` is the group key. Names it does not match are "
                                     "their own group.")
    numeric_block: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description="When set, the key must be an integer and keys in the same block of this many "
                    "consecutive numbers form one group (photos shot in a burst are numbered "
                    "consecutively).")
    reason: str = Field(default="", description="Why these images belong together.")

    @field_validator("pattern")
    @classmethod
    def _compiles_with_key(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"expected a valid regular expression, got {value!r}: {exc}") from exc
        if "key" not in compiled.groupindex:
            raise ValueError(f"expected the pattern to have a named group (?P<key>...), got {value!r}")
        return value

    def group_key(self, file_name: str) -> str | None:
        """The group key of a file name, or None when the pattern does not match."""
        match = re.search(self.pattern, file_name)
        if match is None:
            return None
        key = match.group("key")
        if self.numeric_block is None:
            return key
        if not key.isdigit():
            raise DatasetError(f"group rule {self.pattern!r} with numeric_block expects a number as "
                               f"the key, got {key!r} from {file_name!r}")
        return f"block{int(key) // self.numeric_block}"


class SourceSpec(BaseModel):
    """One folder of YOLO-labelled images and how its classes map onto the model labels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, _matching(_SLUG, "a lower-case slug like 'cn-garbage-overflow'")] = Field(
        description="Short slug, used as the prefix of every output file name.")
    path: str = Field(description="Folder relative to the data root (or absolute).")
    folders: tuple[str, ...] | None = Field(
        default=None, description="Subfolders holding images/ and labels/; default: every "
                                  "subfolder that has an images/ folder.")
    classes: dict[int, str] = Field(min_length=1, description="Source class id -> source class name.")
    class_map: dict[str, str | None] = Field(
        description="Source class name -> model label; null drops those boxes (the image stays).")
    split: Literal["hash", "train", "val", "test"] = Field(
        default="hash", description="'hash': by content hash (or group); otherwise every image of "
                                    "this source goes into that split.")
    group: GroupRule | None = Field(default=None, description="Keep near-duplicates together.")
    licence: str = Field(min_length=1, description="Licence of the images and labels.")
    url: str = Field(default="", description="Where the data comes from.")
    attribution: str = Field(default="", description="Credit line for model cards.")
    notes: str = Field(default="", description="Why the mapping and split rule are what they are.")

    @model_validator(mode="after")
    def _every_class_mapped(self) -> SourceSpec:
        names = set(self.classes.values())
        unmapped = sorted(names - set(self.class_map))
        if unmapped:
            raise ValueError(f"source {self.name!r}: expected class_map to map every source class, "
                             f"missing {unmapped} (map to null to drop those boxes)")
        unknown = sorted(set(self.class_map) - names)
        if unknown:
            raise ValueError(f"source {self.name!r}: class_map names classes the source lacks: "
                             f"{unknown}; source classes: {sorted(names)}")
        return self


class DatasetSpec(BaseModel):
    """A whole dataset definition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, _matching(_SLUG, "a lower-case slug like 'patrol-public'")] = Field(
        description="Dataset name, a slug.")
    version: int = Field(default=1, ge=1, description="Bump when the definition changes meaning.")
    description: str = Field(default="")
    labels: tuple[LabelSpec, ...] = Field(min_length=1, description="Model labels by class id.")
    fractions: SplitFractions = Field(default_factory=SplitFractions)
    sources: tuple[SourceSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        label_names = [label.name for label in self.labels]
        require_unique(label_names, "label names")
        require_unique([source.name for source in self.sources], "source names")
        for source in self.sources:
            unknown = sorted({v for v in source.class_map.values() if v is not None} - set(label_names))
            if unknown:
                raise ValueError(f"source {source.name!r} maps onto labels {unknown} that the spec "
                                 f"does not define; labels: {label_names}")
        return self

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.labels)

    @property
    def label_map(self) -> dict[str, str | None]:
        """Model label -> taxonomy key (None for helper labels)."""
        return {label.name: label.taxonomy for label in self.labels}

    def check_taxonomy(self, taxonomy: Taxonomy) -> None:
        unknown = sorted({label.taxonomy for label in self.labels
                          if label.taxonomy is not None and label.taxonomy not in taxonomy})
        if unknown:
            raise DatasetError(f"dataset {self.name!r} maps labels onto unknown taxonomy keys {unknown}; "
                               f"known: {', '.join(taxonomy.keys)}")

    # -- files --------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, path: str | Path) -> DatasetSpec:
        return load_config_file(cls, Path(path), "dataset definition", DatasetError, fmt="YAML")
