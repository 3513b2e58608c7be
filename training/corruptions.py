"""The corruption suite: what a new place's cameras do to a picture, applied to a test split.

Each corruption is a small function `(pixels BGR uint8, boxes xyxy pixels, rng) -> (pixels,
boxes)`: photometric ones leave the boxes as they are, geometric ones (scale, rotation) move
them with the image. Every random choice comes from the `rng` it is given, seeded per image
(`image_rng`), so a corrupted split is the same on every run and machine.

Strengths are fixed, moderate and chosen to resemble real footage, not to break the model:
a defocused lens, a small sensor at dusk, a village camera's heavy JPEG, haze, rain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

Pixels = npt.NDArray[np.uint8]
Boxes = npt.NDArray[np.float64]
Corruption = Callable[[Pixels, Boxes, np.random.Generator], tuple[Pixels, Boxes]]

ROTATION_MAX_DEG = 8.0
MIN_BOX_PX = 1.0  # a box narrower than this after a corruption has left the frame


def _clip_u8(values: npt.NDArray[np.float64]) -> Pixels:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def blur(pixels: Pixels, boxes: Boxes, rng: np.random.Generator) -> tuple[Pixels, Boxes]:
    """Defocus or motion: Gaussian blur, sigma 2 px on a 640 px side, scaled with the image."""
    sigma = 2.0 * max(pixels.shape[:2]) / 640.0
    return np.asarray(cv2.GaussianBlur(pixels, (0, 0), sigmaX=sigma), np.uint8), boxes


def sensor_noise(pixels: Pixels, boxes: Boxes, rng: np.random.Generator) -> tuple[Pixels, Boxes]:
    """A small sensor's noise: Gaussian, sigma 12 grey levels, independent per channel."""
    noise = rng.normal(0.0, 12.0, size=pixels.shape)
    return _clip_u8(pixels.astype(np.float64) + noise), boxes


def jpeg_q30(pixels: Pixels, boxes: Boxes, rng: np.random.Generator) -> tuple[Pixels, Boxes]:
    """A camera or messaging app compressing hard: re-encoded as JPEG quality 30."""
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 30])
    if not ok:
        raise ValueError("OpenCV could not encode the image as JPEG")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return np.asarray(decoded, dtype=np.uint8), boxes


def low_light(pixels: Pixels, boxes: Boxes, rng: np.random.Generator) -> tuple[Pixels, Boxes]:
    """Dusk: a quarter of the light (gamma 1.5 after scaling by 0.4), with the shot noise of a
    sensor pushed to a high gain (sigma 4 levels)."""
    dark = 255.0 * (pixels.astype(np.float64) * 0.4 / 255.0) ** 1.5
    return _clip_u8(dark + rng.normal(0.0, 4.0, size=pixels.shape)), boxes


def haze(pixels: Pixels, boxes: Boxes, rng: np.random.Generator) -> tuple[Pixels, Boxes]:
    """Haze or fog: the atmospheric scattering model with a grey-white airlight (220) and a
    transmission of 0.55 at the top of the frame (far) rising to 0.75 at the bottom (near)."""
    height = pixels.shape[0]
    transmission = np.linspace(0.55, 0.75, height)[:, None, None]
    return _clip_u8(pixels.astype(np.float64) * transmission + 220.0 * (1.0 - transmission)), boxes


def rain(pixels: Pixels, boxes: Boxes, rng: np.random.Generator) -> tuple[Pixels, Boxes]:
    """Rain streaks: thin bright slanted lines (one per ~600 px², 8-20 px long on a 640 px
    side), softened by a small blur and blended over a slightly darkened scene."""
    height, width = pixels.shape[:2]
    scale = max(height, width) / 640.0
    layer = np.zeros((height, width), np.uint8)
    n_drops = int(height * width / (600.0 * scale * scale))
    xs = rng.integers(0, width, n_drops)
    ys = rng.integers(0, height, n_drops)
    lengths = rng.uniform(8.0, 20.0, n_drops) * scale
    angle = np.deg2rad(rng.uniform(-20.0, 20.0))  # one wind direction per image
    dx, dy = np.sin(angle), np.cos(angle)
    for x, y, length in zip(xs, ys, lengths, strict=True):
        end = (int(x + dx * length), int(y + dy * length))
        cv2.line(layer, (int(x), int(y)), end, 200, max(1, int(round(scale))))
    streaks = cv2.GaussianBlur(layer, (0, 0), sigmaX=0.8 * scale).astype(np.float64)[:, :, None] / 255.0
    darker = pixels.astype(np.float64) * 0.85
    return _clip_u8(darker * (1.0 - streaks) + 230.0 * streaks), boxes


def _rescale(factor: float) -> Corruption:
    def rescale(pixels: Pixels, boxes: Boxes, rng: np.random.Generator) -> tuple[Pixels, Boxes]:
        height, width = pixels.shape[:2]
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(pixels, size, interpolation=interpolation)
        scale = np.array([size[0] / width, size[1] / height] * 2)
        return np.asarray(resized, np.uint8), boxes * scale
    rescale.__doc__ = f"The same scene {factor:g}x as many pixels across (a farther or nearer camera)."
    return rescale


def rotate_boxes(boxes: Boxes, matrix: npt.NDArray[np.float64], width: int, height: int) -> Boxes:
    """Each box's four corners through the affine `matrix`, the enclosing axis-aligned box,
    clipped to the image (a box pushed out of the frame is left with no area)."""
    if len(boxes) == 0:
        return boxes.reshape(0, 4)
    x1, y1, x2, y2 = boxes.T
    corners = np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1),
                        np.stack([x2, y2], 1), np.stack([x1, y2], 1)], axis=1)  # (n, 4, 2)
    moved = corners @ matrix[:, :2].T + matrix[:, 2]
    out = np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)
    return np.asarray(np.clip(out, 0.0, [width, height, width, height]), dtype=np.float64)


def rotation(pixels: Pixels, boxes: Boxes, rng: np.random.Generator) -> tuple[Pixels, Boxes]:
    """A tilted camera: rotated about the centre by 3-8 degrees either way, borders reflected so
    no black wedge tells the model where the frame ends; boxes enclose their rotated corners."""
    height, width = pixels.shape[:2]
    degrees = float(rng.uniform(3.0, ROTATION_MAX_DEG)) * float(rng.choice([-1.0, 1.0]))
    matrix = np.asarray(cv2.getRotationMatrix2D((width / 2.0, height / 2.0), degrees, 1.0), np.float64)
    rotated = cv2.warpAffine(pixels, matrix, (width, height), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT_101)
    return np.asarray(rotated, np.uint8), rotate_boxes(boxes, matrix, width, height)


CORRUPTIONS: dict[str, Corruption] = {
    "blur": blur,
    "noise": sensor_noise,
    "jpeg_q30": jpeg_q30,
    "low_light": low_light,
    "haze": haze,
    "rain": rain,
    "scale_0.5": _rescale(0.5),
    "scale_2": _rescale(2.0),
    "rotation": rotation,
}


def parse_corruptions(text: str) -> tuple[str, ...]:
    """`all`, or names separated by commas, in the suite's order; unknown names are an error."""
    if text.strip() == "all":
        return tuple(CORRUPTIONS)
    wanted = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in CORRUPTIONS]
    if unknown or not wanted:
        raise ValueError(f"unknown corruptions {unknown or [text]}; choose 'all' or from "
                         f"{', '.join(CORRUPTIONS)}")
    return tuple(name for name in CORRUPTIONS if name in wanted)


def describe(name: str) -> str:
    """A corruption's docstring on one line, for the card."""
    return " ".join((CORRUPTIONS[name].__doc__ or "").split())


def image_rng(seed: int, corruption: str, image_name: str) -> np.random.Generator:
    """A generator for one image under one corruption: the same whatever order images run in."""
    digest = hashlib.sha256(f"{seed}\0{corruption}\0{image_name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def corrupt(name: str, pixels: Pixels, boxes: Boxes, *, seed: int, image_name: str
            ) -> tuple[Pixels, Boxes, npt.NDArray[np.bool_]]:
    """One corruption applied to one image. Returns the pixels, the boxes that are still in the
    frame, and which input boxes those are (rotation can push a box at the edge out)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out, moved = CORRUPTIONS[name](pixels, boxes, image_rng(seed, name, image_name))
    keep = (moved[:, 2] - moved[:, 0] > MIN_BOX_PX) & (moved[:, 3] - moved[:, 1] > MIN_BOX_PX)
    return out, moved[keep], keep
