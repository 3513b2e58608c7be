"""What a change job compares: two orthomosaic surveys of one area, checked before a job exists.

A change job has no upload of its own: its input is this request, a small JSON file naming the
earlier and the later survey jobs and where their GeoTIFFs are stored (and their DSMs, when both
epochs have one). The file is written canonically (sorted keys, no spaces), so the same pair of
surveys gives the same bytes, hence the same content hash, hence the same job (jobs are unique on
content hash and thresholds' version): asking twice returns the first job.

Everything that can be found wrong cheaply is found here, so the client gets a 4xx at once:
the same survey twice, a survey that is no orthomosaic, a GeoTIFF no longer stored, rasters that
do not overlap, an earlier survey captured after the later one.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from service.jobs.errors import SurveyInputError
from service.jobs.models import Job, JobKind
from service.jobs.store import HashingWriter, JobInputStore, StoredUpload
from service.jobs.survey_dsm import dsm_hash, dsm_path


class EpochRef(BaseModel):
    """One survey epoch: its job and its stored rasters (paths relative to the data dir)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="The orthomosaic's sha256.")
    ortho_path: str
    dsm_path: str | None = None  # service.jobs.survey_dsm
    dsm_hash: str | None = Field(
        default=None, description="The DSM's sha256: another DSM, another comparison."
    )


class ChangeRequest(BaseModel):
    """The earlier and the later epoch; DSMs are compared only when both have one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    before: EpochRef
    after: EpochRef

    @property
    def uses_dsm(self) -> bool:
        return self.before.dsm_path is not None and self.after.dsm_path is not None

    def canonical(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def read(cls, path: Path) -> ChangeRequest:
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValueError as exc:
            raise SurveyInputError(f"the change job's request is unreadable: {exc}") from None

    def paths(self, store: JobInputStore) -> tuple[Path, Path, Path | None, Path | None]:
        """(earlier ortho, later ortho, earlier DSM, later DSM), the DSMs only when both exist;
        SurveyInputError for a raster that is no longer stored."""
        found = []
        for name, ref in (("earlier", self.before), ("later", self.after)):
            path = store.path_of(ref.ortho_path)
            if not path.is_file():
                raise SurveyInputError(
                    f"the {name} survey's GeoTIFF (job {ref.job_id}) is no longer stored; submit it again"
                )
            found.append(path)
        if not self.uses_dsm:
            return found[0], found[1], None, None
        dsms = [store.path_of(p) for p in (self.before.dsm_path or "", self.after.dsm_path or "")]
        if not all(p.is_file() for p in dsms):
            raise SurveyInputError("a survey's DSM is no longer stored; upload it again")
        return found[0], found[1], dsms[0], dsms[1]


@cache
def change_detector_version() -> str:
    """The change job's 'model version': the change detector's thresholds (vision/change/change.yaml)."""
    from vision.change.detector import ChangeDetector

    return ChangeDetector().name


def _epoch(job: Job, store: JobInputStore) -> EpochRef:
    dsm = dsm_path(job)
    stored = store.path_of(dsm)
    has_dsm = stored.is_file()
    return EpochRef(
        job_id=job.id,
        content_hash=job.content_hash,
        ortho_path=job.input_path,
        dsm_path=dsm if has_dsm else None,
        dsm_hash=dsm_hash(stored) if has_dsm else None,
    )


def change_request(before: Job, after: Job, store: JobInputStore) -> ChangeRequest:
    """The request to compare `after` with the earlier `before`; SurveyInputError (422) when they
    cannot be compared (see the module docstring). Opens both rasters' headers, reads no pixels."""
    if before.id == after.id or before.content_hash == after.content_hash:
        raise SurveyInputError("expected two different surveys, got the same one twice")
    for name, job in (("earlier", before), ("later", after)):
        if job.kind != JobKind.orthomosaic.value:
            raise SurveyInputError(
                f"the {name} survey {job.id} is {job.kind}, not an orthomosaic: changes are found "
                "between two GeoTIFF orthomosaics of one area"
            )
    request = ChangeRequest(before=_epoch(before, store), after=_epoch(after, store))
    check_comparable(request, store)
    return request


def check_comparable(request: ChangeRequest, store: JobInputStore) -> None:
    """Both rasters open, georeferenced and overlapping; the earlier captured before the later
    when both carry a capture time."""
    from rasterio.errors import RasterioError

    from vision.change.epochs import EpochFiles, EpochPair
    from vision.errors import GeoError
    from vision.geo.orthomosaic import OrthoGeoreference

    before, after, dsm_before, dsm_after = request.paths(store)
    try:
        with EpochPair(EpochFiles.of(before, after, dsm_before, dsm_after)):
            pass  # opening computes the overlap: OrthomosaicError when there is none
        taken = [OrthoGeoreference.from_path(p).captured_at for p in (before, after)]
    except (GeoError, RasterioError) as exc:
        detail = str(exc).replace(str(store.data_dir.resolve()), "data dir")
        raise SurveyInputError(f"the surveys cannot be compared: {detail}") from None
    if taken[0] is not None and taken[1] is not None and taken[0] >= taken[1]:
        raise SurveyInputError(
            f"the earlier survey was captured at {_when(taken[0])}, not before the later one "
            f"({_when(taken[1])}): swap them"
        )


def _when(taken: datetime) -> str:
    return taken.isoformat(sep=" ")


def stored_request(request: ChangeRequest, store: JobInputStore) -> StoredUpload:
    """The request written as a job input would be uploaded (hashed, counted), for JobServices.submit."""
    writer = HashingWriter(store.incoming_path())
    try:
        writer.write(request.canonical())
    except BaseException:
        writer.discard()
        raise
    return writer.close()
