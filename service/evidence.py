"""Evidence images on disk: the full frame and one crop per observation.

Names are generated here (content hash for frames, uuid4 for crops); client filenames are
never used as paths. What reviewers download carries none of the upload's metadata (a
citizen's phone model, GPS, other EXIF): a JPEG keeps its full-size image data with every
metadata segment but its orientation cut out (`frame_jpeg`, vision.jpeg_strip: no second lossy
pass, no encoding cost, and full size even when the detector saw it decoded reduced),
anything else is re-encoded as JPEG from the decoded pixels. Reads resolve inside the data
dir or fail.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from service.errors import NotFoundError
from vision.image_io import LoadedImage
from vision.jpeg_strip import strip_metadata

JPEG_QUALITY = 90
CROP_MARGIN = 0.15  # of the box size on each side: some context around the object
MIN_CROP_PX = 32


@dataclass
class EvidenceStore:
    root: Path
    written: list[Path] = field(default_factory=list, repr=False)  # this unit of work, for rollback

    def save_frame(
        self, pixels: npt.NDArray[np.uint8], content_hash: str, encoded: bytes | None = None
    ) -> str:
        """The full frame; `encoded`: its JPEG made beforehand (`frame_jpeg`), else encoded here."""
        if len(content_hash) != 64 or not all(c in "0123456789abcdef" for c in content_hash):
            raise ValueError(f"expected a sha256 hex digest, got {content_hash!r}")
        return self._write(f"frames/{content_hash[:2]}/{content_hash}.jpg", pixels, encoded)

    def save_crop(
        self,
        pixels: npt.NDArray[np.uint8],
        box_xyxy: tuple[float, float, float, float],
        frame_wh: tuple[int, int] | None = None,
    ) -> str:
        """The box's crop; `frame_wh`: the size the box is in when `pixels` are smaller (a
        reduced decode: the crop then shows as much as the detector saw, the full frame more)."""
        if frame_wh is not None:
            sx, sy = pixels.shape[1] / frame_wh[0], pixels.shape[0] / frame_wh[1]
            x1, y1, x2, y2 = box_xyxy
            box_xyxy = (x1 * sx, y1 * sy, x2 * sx, y2 * sy)
        return self._write(f"crops/{uuid.uuid4().hex}.jpg", crop(pixels, box_xyxy))

    def path_of(self, relative: str) -> Path:
        """Absolute path of a stored image; NotFoundError when missing or outside the data dir."""
        root = self.root.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise NotFoundError(f"evidence file {relative!r} is missing from the data dir")
        return path

    def discard_written(self) -> None:
        """Delete what this store wrote since the last `commit_written` (the transaction failed)."""
        for path in self.written:
            path.unlink(missing_ok=True)
        self.written.clear()

    def commit_written(self) -> None:
        self.written.clear()

    def _write(self, relative: str, pixels: npt.NDArray[np.uint8], encoded: bytes | None = None) -> str:
        path = self.root / relative
        if path.exists():  # frames are content-addressed: the same bytes are already there
            return relative
        data = encode_jpeg(pixels) if encoded is None else encoded
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_bytes(data)
        except FileNotFoundError:  # the folder's first file: mkdir then, not a syscall every write
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
        os.replace(tmp, path)  # readers never see half a file
        self.written.append(path)
        return relative


def encode_jpeg(pixels: npt.NDArray[np.uint8]) -> bytes:
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"could not encode a {pixels.shape} image as JPEG")
    return encoded.tobytes()


def frame_jpeg(image: LoadedImage, data: bytes) -> bytes:
    """The frame's evidence JPEG, made before the recording's transaction (so the ledger lock is
    never held while a frame is encoded): for a JPEG, `data`, the upload, at full size with its
    metadata cut out but its EXIF orientation kept (so it shows upright, in the frame's size
    that boxes are in), even when the detector saw it decoded reduced; else `image.pixels`
    encoded (a JPEG this cannot copy is then stored at its decoded size, which review scales to).
    """
    if image.format == "JPEG":
        stripped = strip_metadata(data, orientation=image.metadata.orientation)
        if stripped is not None and stripped.resolution_wh == image.metadata.stored_wh:
            return stripped.data
    return encode_jpeg(image.pixels)


def crop(pixels: npt.NDArray[np.uint8], box_xyxy: tuple[float, float, float, float]) -> npt.NDArray[np.uint8]:
    """The box plus a margin, clipped to the image, at least MIN_CROP_PX wide and high where possible."""
    height, width = pixels.shape[:2]
    x1, y1, x2, y2 = box_xyxy
    mx = max((x2 - x1) * CROP_MARGIN, (MIN_CROP_PX - (x2 - x1)) / 2, 0)
    my = max((y2 - y1) * CROP_MARGIN, (MIN_CROP_PX - (y2 - y1)) / 2, 0)
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(width, int(np.ceil(x2 + mx))), min(height, int(np.ceil(y2 + my)))
    if right <= left or bottom <= top:
        raise ValueError(f"box {box_xyxy} lies outside the {width}x{height} image")
    return np.ascontiguousarray(pixels[top:bottom, left:right])
