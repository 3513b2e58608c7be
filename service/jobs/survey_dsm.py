"""An orthomosaic survey's digital surface model: checked, then stored beside the survey's GeoTIFF.

Photogrammetry tools export a DSM with the orthomosaic (heights in metres, one band). A change
job compares the heights of two epochs when both surveys have one (a new structure is a height
gain: vision.change), else their appearance. The DSM is stored as `jobs/<survey id>/dsm`; a new
upload replaces it. Its content hash goes into a change request, so comparing again after a DSM
arrived or changed is another comparison, not the finished one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from service.jobs.errors import SurveyInputError
from service.jobs.inputs import georeferenced_tiff, read_last_block
from service.jobs.models import Job, JobKind
from service.jobs.store import JobInputStore, StoredUpload
from service.settings import Settings

DSM_NAME = "dsm"
DSM_DTYPES = ("float32", "float64", "int16", "int32", "uint16")


class DsmInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int
    height: int
    crs: str
    content_hash: str


def dsm_path(job: Job) -> str:
    """Where a survey's DSM is kept, relative to the data dir (beside its input)."""
    return Path(job.input_path).with_name(DSM_NAME).as_posix()


def dsm_hash(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def inspect_dsm(path: Path, settings: Settings, content_hash: str) -> DsmInfo:
    """A georeferenced one-band GeoTIFF of heights, within the survey size limit; SurveyInputError else."""
    not_georeferenced = "the DSM is not georeferenced (no CRS or geotransform): export it as a GeoTIFF"
    with georeferenced_tiff(path, not_georeferenced) as src:
        if src.count != 1 or src.dtypes[0] not in DSM_DTYPES:
            raise SurveyInputError(
                f"expected a DSM: one band of heights ({', '.join(DSM_DTYPES)}), got {src.count} "
                f"band(s) of {src.dtypes[0]}"
            )
        if src.width * src.height > settings.max_survey_pixels:
            raise SurveyInputError(
                f"DSM too large: {src.width}x{src.height} pixels, more than the "
                f"{settings.max_survey_pixels:,} allowed per survey (PATROL_MAX_SURVEY_PIXELS)"
            )
        read_last_block(src)
        return DsmInfo(width=src.width, height=src.height, crs=str(src.crs), content_hash=content_hash)


def store_dsm(store: JobInputStore, job: Job, upload: StoredUpload) -> None:
    """Move a checked DSM upload beside the survey's GeoTIFF (replacing an earlier DSM)."""
    if job.kind != JobKind.orthomosaic.value:
        raise SurveyInputError(f"survey {job.id} is {job.kind}: only an orthomosaic survey has a DSM")
    target = store.path_of(dsm_path(job))
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(upload.path, target)
