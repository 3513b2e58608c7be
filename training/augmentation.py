"""Named augmentation settings for `patrol train --augment`, passed to ultralytics as they are.

`ultralytics` (the default) changes nothing: ultralytics' own defaults, as every model before
issue #11 was trained. `generalise` is chosen from what the corruption suite
(training/corruptions.py) showed the shipped model losing on (models/default/card.md, its
Generalisation section): low light and haze (brightness and saturation), 0.5x and 2x scale,
small rotations, and other places' backgrounds (mosaic, mixup, cutmix put one source's objects
on another source's image).

What ultralytics 8.4 cannot do here, and so is not set:
- blur: only through albumentations (Blur and MedianBlur at p=0.01), which is not installed;
- copy_paste: pastes segment polygons only, and our labels are boxes (a no-op on them): cutmix,
  which pastes a rectangle of another image with its boxes, stands in for it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AugmentName = Literal["ultralytics", "generalise"]


class Augmentation(BaseModel):
    """ultralytics' augmentation arguments (same names); None leaves ultralytics' default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hsv_h: float | None = Field(default=None, ge=0.0, le=1.0)
    hsv_s: float | None = Field(default=None, ge=0.0, le=1.0)
    hsv_v: float | None = Field(default=None, ge=0.0, le=1.0)
    degrees: float | None = Field(default=None, ge=0.0, le=180.0)
    scale: float | None = Field(default=None, ge=0.0, le=0.95)
    mosaic: float | None = Field(default=None, ge=0.0, le=1.0)
    mixup: float | None = Field(default=None, ge=0.0, le=1.0)
    cutmix: float | None = Field(default=None, ge=0.0, le=1.0)
    close_mosaic: int | None = Field(default=None, ge=0)

    def as_args(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


AUGMENTATIONS: dict[str, Augmentation] = {
    "ultralytics": Augmentation(),
    "generalise": Augmentation(
        hsv_s=0.7,
        hsv_v=0.6,  # ultralytics 0.4: low light cost straw_burning 0.21 AP50
        degrees=5.0,  # the suite rotates by a few degrees; ultralytics trains none
        scale=0.6,  # gains 0.4 to 1.6 cover the suite's 0.5x and 2x (ultralytics 0.5)
        mosaic=1.0,
        mixup=0.1,  # haze and rain are translucent layers over the scene
        cutmix=0.2,  # another source's objects on this image's background (copy-paste for boxes)
        close_mosaic=10,
    ),
}


def augmentation_args(name: AugmentName) -> dict[str, Any]:
    return AUGMENTATIONS[name].as_args()
