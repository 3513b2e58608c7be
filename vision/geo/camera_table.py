"""Sensor sizes by EXIF Make/Model (vision/data/cameras.yaml): millimetres of focal length to pixels.

EXIF FocalLength is in millimetres; a pinhole model needs pixels, so the sensor width is needed.
The table is data: a camera is added to the YAML, not to code.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field


class CameraSpec(BaseModel):
    """One camera's sensor, as its maker states it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    make: str = Field(min_length=1)
    model: str = Field(min_length=1)
    sensor_width_mm: float = Field(gt=0, le=100)
    sensor_height_mm: float = Field(gt=0, le=100)
    note: str = ""


class CameraTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cameras: tuple[CameraSpec, ...]

    @classmethod
    def from_yaml_text(cls, text: str) -> CameraTable:
        return cls.model_validate(yaml.safe_load(text))

    def lookup(self, make: str | None, model: str | None) -> CameraSpec | None:
        """The camera whose Make and Model match (case and spacing ignored; a Model that
        repeats the Make, as "Canon PowerShot S110" does, matches too); None when unknown."""
        if not make or not model:
            return None
        want_make, want_model = _key(make), _key(model)
        for spec in self.cameras:
            spec_make = _key(spec.make)
            if spec_make == want_make and want_model in (_key(spec.model), f"{spec_make} {_key(spec.model)}"):
                return spec
        return None


def _key(text: str) -> str:
    return " ".join(text.replace("\x00", " ").split()).casefold()


@cache
def default_camera_table() -> CameraTable:
    """The bundled table (vision/data/cameras.yaml), read once."""
    return CameraTable.from_yaml_text(
        resources.files("vision.data").joinpath("cameras.yaml").read_text(encoding="utf-8")
    )
