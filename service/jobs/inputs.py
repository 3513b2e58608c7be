"""What a survey upload is, decided from its bytes (never its name), and checked before a job exists.

A zip of photos or a georeferenced GeoTIFF (orthomosaic). Everything that can be found
wrong cheaply is found here, so the client gets a 422 at once instead of a failed job
later: unreadable or refused archives (see `archive`), TIFFs without a CRS, unsupported
bands or data types, and files cut short (the last block is read).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from service.jobs.archive import ZipLimits, open_archive
from service.jobs.errors import SurveyInputError
from service.jobs.models import JobKind
from service.settings import Settings

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
        zf, members = open_archive(path, zip_limits(settings))
        zf.close()
        usable = sum(m.skip_reason is None for m in members)
        return SurveyInput(kind, len(members), f"{len(members)} files, {usable} within the limits")
    return inspect_geotiff(path)


def inspect_geotiff(path: Path) -> SurveyInput:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError
    from rasterio.windows import Window

    try:
        with warnings.catch_warnings():
            # A plain TIFF is refused below with a message of ours; rasterio's warning adds nothing.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
        with src:
            if src.crs is None or src.transform.is_identity:
                raise SurveyInputError(
                    "TIFF is not georeferenced (no CRS or geotransform): export the orthomosaic "
                    "as a GeoTIFF, or send drone photos with their XMP in a zip"
                )
            if src.count == 2:
                raise SurveyInputError(f"expected a GeoTIFF with 1 or 3+ bands, got {src.count}")
            dtype = src.dtypes[0]
            if dtype not in ORTHO_DTYPES:
                raise SurveyInputError(
                    f"expected uint8 or uint16 bands, got {dtype}; convert the raster "
                    "(e.g. gdal_translate -ot Byte -scale)"
                )
            # Reading the last block finds files cut short in transfer, the common corruption.
            src.read(1, window=Window(src.width - 1, src.height - 1, 1, 1))
            return SurveyInput(
                JobKind.orthomosaic, src.width * src.height, f"{src.width}x{src.height} px, {src.crs}"
            )
    except RasterioError as exc:
        # GDAL names the file it read: the server's temp file, which is no business of the client's.
        detail = str(exc).replace(str(path), "upload").replace(path.name, "upload")
        raise SurveyInputError(f"not a readable GeoTIFF: {detail}") from None
