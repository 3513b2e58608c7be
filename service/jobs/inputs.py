"""What a survey upload is, decided from its bytes (never its name), and checked before a job exists.

A zip of photos or a georeferenced GeoTIFF (orthomosaic). Everything that can be found
wrong cheaply is found here, so the client gets a 422 at once instead of a failed job
later: unreadable or refused archives (see `archive`), TIFFs without a CRS, unsupported
bands or data types, and files cut short (the last block is read). Surveys beyond
PATROL_MAX_SURVEY_PIXELS (an orthomosaic's size, or the sum its photos' headers declare)
or PATROL_MAX_SURVEY_AREA_KM2 (an orthomosaic's ground) are refused here, before a job
exists: one survey's runner time grows with its pixels.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.jobs.archive import ZipLimits, open_archive
from service.jobs.errors import SurveyInputError
from service.jobs.member_header import read_header
from service.jobs.models import JobKind
from service.settings import Settings

if TYPE_CHECKING:
    from vision.geo.orthomosaic import OrthoGeoreference

ZIP_MAGIC = (b"PK\x03\x04",)
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # TIFF and BigTIFF, both byte orders
ORTHO_DTYPES = ("uint8", "uint16")


@dataclass(frozen=True)
class SurveyInput:
    kind: JobKind
    units: int  # photos in the zip, or pixels of the raster
    detail: str


def zip_limits(settings: Settings) -> ZipLimits:
    return ZipLimits(
        max_members=settings.max_survey_members,
        max_member_bytes=settings.max_upload_bytes,
        max_total_bytes=settings.max_survey_uncompressed_bytes,
    )


def sniff_kind(head: bytes) -> JobKind:
    if head.startswith(ZIP_MAGIC):
        return JobKind.drone_photos
    if head.startswith(TIFF_MAGIC):
        return JobKind.orthomosaic
    if head.startswith(EMPTY_ZIP_MAGIC):
        raise SurveyInputError("zip archive holds no files")
    if head.startswith(b"\xff\xd8\xff"):
        raise SurveyInputError(
            "expected a zip of drone photos or a GeoTIFF orthomosaic, got a single JPEG; "
            "zip the photos, or send one photo to POST /v1/photos"
        )
    raise SurveyInputError(
        f"expected a zip of drone photos or a GeoTIFF orthomosaic, got a file starting {head[:8]!r}"
    )


def inspect_survey(path: Path, settings: Settings) -> SurveyInput:
    with path.open("rb") as fh:
        kind = sniff_kind(fh.read(8))
    if kind is JobKind.drone_photos:
        return inspect_zip(path, settings)
    return inspect_geotiff(path, settings)


def inspect_zip(path: Path, settings: Settings) -> SurveyInput:
    """Refused archives (see `archive`), and archives whose photos' headers declare more pixels in
    all than PATROL_MAX_SURVEY_PIXELS; only each member's header is read, not the member."""
    zf, members = open_archive(path, zip_limits(settings))
    with zf:
        headers = [
            read_header(zf, m, max_pixels=settings.max_image_pixels) for m in members if m.skip_reason is None
        ]
    usable = [h for h in headers if h.skip_reason is None]
    pixels = sum(h.pixels or 0 for h in usable)
    _check_pixels(pixels, f"its {len(usable)} photos' headers declare", settings)
    return SurveyInput(
        JobKind.drone_photos, len(members), f"{len(members)} files, {len(usable)} photos, {pixels:,} px"
    )


def _check_pixels(pixels: int, what: str, settings: Settings) -> None:
    if pixels > settings.max_survey_pixels:
        raise SurveyInputError(
            f"survey too large: {what} {pixels:,} pixels, more than the {settings.max_survey_pixels:,} "
            "allowed per survey (PATROL_MAX_SURVEY_PIXELS); split it into smaller surveys"
        )


def _check_area(georeference: OrthoGeoreference, settings: Settings) -> None:
    area_km2 = georeference.pixel_size_m() ** 2 * georeference.width * georeference.height / 1e6
    if not area_km2 <= settings.max_survey_area_km2:  # NaN (a degenerate transform) is refused too
        raise SurveyInputError(
            f"survey too large: the orthomosaic covers {area_km2:,.1f} km² of ground, more than the "
            f"{settings.max_survey_area_km2:,.1f} km² allowed per survey (PATROL_MAX_SURVEY_AREA_KM2); "
            "split it into smaller surveys"
        )


@contextmanager
def georeferenced_tiff(path: Path, not_georeferenced: str) -> Iterator[Any]:
    """The uploaded TIFF open with rasterio once it has a CRS and a geotransform; SurveyInputError
    with `not_georeferenced` when it has not, and for any read error in the block (the server's
    file name left out of the message)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        with warnings.catch_warnings():
            # A plain TIFF is refused below with a message of ours; rasterio's warning adds nothing.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
        with src:
            if src.crs is None or src.transform.is_identity:
                raise SurveyInputError(not_georeferenced)
            yield src
    except RasterioError as exc:
        # GDAL names the file it read: the server's temp file, which is no business of the client's.
        detail = str(exc).replace(str(path), "upload").replace(path.name, "upload")
        raise SurveyInputError(f"not a readable GeoTIFF: {detail}") from None


def read_last_block(src: Any) -> None:
    """Reading the last block finds files cut short in transfer, the common corruption."""
    from rasterio.windows import Window

    src.read(1, window=Window(src.width - 1, src.height - 1, 1, 1))


def inspect_geotiff(path: Path, settings: Settings) -> SurveyInput:
    from pyproj import CRS

    from vision.geo.orthomosaic import OrthoGeoreference

    not_georeferenced = (
        "TIFF is not georeferenced (no CRS or geotransform): export the orthomosaic "
        "as a GeoTIFF, or send drone photos with their XMP in a zip"
    )
    with georeferenced_tiff(path, not_georeferenced) as src:
        if src.count == 2:
            raise SurveyInputError(f"expected a GeoTIFF with 1 or 3+ bands, got {src.count}")
        _check_pixels(src.width * src.height, f"the orthomosaic is {src.width}x{src.height} =", settings)
        crs = CRS.from_user_input(src.crs.to_wkt())
        _check_area(OrthoGeoreference(crs, src.transform, src.width, src.height), settings)
        dtype = src.dtypes[0]
        if dtype not in ORTHO_DTYPES:
            raise SurveyInputError(
                f"expected uint8 or uint16 bands, got {dtype}; convert the raster "
                "(e.g. gdal_translate -ot Byte -scale)"
            )
        read_last_block(src)
        return SurveyInput(
            JobKind.orthomosaic, src.width * src.height, f"{src.width}x{src.height} px, {src.crs}"
        )
