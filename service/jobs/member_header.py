"""A zip member's image header, read before the member is read whole.

A member may unpack to tens of MB; reading, hashing and decoding it costs the runner time
that a fake photo (a valid header on 49 MB of padding, a header declaring more pixels than
any camera makes) should not get. The first `HEADER_BYTES` are enough for the header of
every photo format we take: JPEG's frame header follows its APP segments (EXIF with its
thumbnail, DJI XMP; each at most 64 KB), PNG's IHDR comes first. Only a TIFF may keep its
directory at the end, so a header the prefix does not hold is "inconclusive" and the
member is read whole, as before; `load_image` still checks the pixel cap before decoding.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass

from service.jobs.archive import ZipMember
from vision.errors import ImageLoadError
from vision.image_io import probe_image

HEADER_BYTES = 256 * 1024


@dataclass(frozen=True)
class MemberHeader:
    pixels: int | None  # what the header declares; None when the prefix did not hold the header
    skip_reason: str | None  # set when the member is no usable photo, decided from the header alone


def read_header(zf: zipfile.ZipFile, member: ZipMember, *, max_pixels: int) -> MemberHeader:
    """The member's declared pixels, or why it is skipped, from its first HEADER_BYTES only."""
    try:
        with zf.open(member.info) as fh:
            head = fh.read(HEADER_BYTES)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        return MemberHeader(None, f"corrupt member: {exc}")
    whole = len(head) >= member.info.file_size
    try:
        probe = probe_image(head, name=member.label)
    except ImageLoadError as exc:
        if whole or exc.reason in ("unsupported_format", "empty"):
            return MemberHeader(None, f"{exc.reason}: {exc.detail}")
        return MemberHeader(None, None)  # inconclusive (a TIFF directory at the end): read it whole
    width, height = probe.resolution_wh
    if width * height > max_pixels:
        return MemberHeader(
            width * height,
            f"too_many_pixels: its header declares {width}x{height} = {width * height:,} pixels, more "
            f"than the {max_pixels:,} allowed (PATROL_MAX_IMAGE_PIXELS); not read further",
        )
    return MemberHeader(width * height, None)
