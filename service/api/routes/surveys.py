"""POST /v1/surveys: a zip of drone photos or a GeoTIFF orthomosaic in, a job id out (202);
POST /v1/surveys/{id}/changes: what is new since an earlier orthomosaic survey, as a job too;
PUT /v1/surveys/{id}/dsm: an orthomosaic survey's surface model, for comparisons by height.

The body streams to a file under the data dir (hashed and counted on the way, 413 past the
limit), is checked (422 for refused archives, non-georeferenced or corrupt TIFFs), and
becomes a job, or returns the job this survey already has under the current model. The
client's filename is never used; the file's type comes from its first bytes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from service.api.deps import AUTHENTICATED, SessionDep, StateDep, require_role
from service.api.routes.jobs import JobId, JobPublic, job_public, owned_job
from service.api.schemas import StoredText
from service.api.upload_forms import (
    FILE_FIELD,
    MAX_NOTE_CHARS,
    NOTE_FIELD,
    form_note,
    single_file_form_doc,
    upload_responses,
)
from service.api.uploads import single_file_form
from service.auth import Role
from service.db.models import ApiKey
from service.jobs.change_request import change_detector_version, change_request, stored_request
from service.jobs.errors import SurveyInputError
from service.jobs.inputs import inspect_survey
from service.jobs.models import JobKind, JobState
from service.jobs.store import HashingWriter, JobInputStore, StoredUpload
from service.jobs.submit import JobServices, Submission
from service.jobs.survey_dsm import DsmInfo, inspect_dsm, store_dsm

router = APIRouter(prefix="/v1/surveys", tags=["surveys"], dependencies=AUTHENTICATED)

FORM_FIELDS = (NOTE_FIELD,)
COPY_CHUNK = 1 << 20

_FORM_DOC = single_file_form_doc(
    "A zip of drone photos (DJI XMP pose in each) or a georeferenced GeoTIFF orthomosaic; "
    "at most PATROL_MAX_SURVEY_BYTES."
)


def jobs_of(request: Request) -> JobServices:
    return request.app.state.jobs


JobsDep = Annotated[JobServices, Depends(jobs_of)]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    name="submit_survey",
    openapi_extra=_FORM_DOC,
    responses={
        **upload_responses(
            earlier="This survey was analysed with this model before; its job.",
            unusable="Not a usable survey (refused zip, TIFF without a CRS, corrupt file).",
        ),
        503: {"description": "No detection model is installed, or the job broker is unreachable."},
    },
)
async def submit_survey(
    request: Request,
    response: Response,
    state: StateDep,
    session: SessionDep,
    key: Annotated[ApiKey, require_role(Role.ingest)],
) -> JobPublic:
    jobs = jobs_of(request)
    upload, fields = await receive_upload(request, jobs.store, limit=state.settings.max_survey_bytes)
    try:
        note = form_note(fields)
        try:
            survey = await run_in_threadpool(inspect_survey, upload.path, state.settings)
        except SurveyInputError:  # answered by service.api.errors, like every deliberate error
            state.metrics.rejected_uploads.labels("survey").inc()
            raise
        model_version = await run_in_threadpool(jobs.model_version)  # ModelError: 503
        submission = await run_in_threadpool(  # BrokerUnavailableError: 503 with Retry-After
            jobs.submit,
            upload,
            kind=survey.kind,
            model_version=model_version,
            key=key,
            note=note,
            now=state.clock(),
        )
    finally:
        upload.path.unlink(missing_ok=True)  # kept only when a job adopted it (moved away)
    return answer(response, session, submission)


class ChangesCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    before: str = Field(pattern=r"^[0-9a-f]{32}$", description="The earlier orthomosaic survey's job id.")
    note: StoredText = Field(default="", max_length=MAX_NOTE_CHARS)


@router.post(
    "/{job_id}/changes",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    name="submit_survey_changes",
    responses={
        200: {"description": "These two surveys were compared before under these thresholds; its job."},
        404: {"description": "No such survey that this key may see (either of the two)."},
        422: {
            "description": "Not comparable: the same survey twice, not orthomosaics, a GeoTIFF no longer "
            "stored, rasters that do not overlap, the earlier survey captured after the later."
        },
        503: {"description": "The job broker is unreachable."},
    },
)
def submit_changes(
    job_id: JobId,
    body: ChangesCreate,
    jobs: JobsDep,
    key: Annotated[ApiKey, require_role(Role.ingest)],
    response: Response,
    state: StateDep,
    session: SessionDep,
) -> JobPublic:
    """Compare survey `job_id` with the earlier survey `before` (two orthomosaics of one area, and
    their DSMs when both have one): each new structure becomes an illegal_structure candidate with
    before/after crops (service.jobs.survey_changes). A job like a survey's: GET /v1/jobs/{id}."""
    after = owned_job(session, job_id, key)
    before = owned_job(session, body.before, key)
    comparison = change_request(before, after, jobs.store)  # SurveyInputError: 422
    session.rollback()  # end the read: submit writes in its own transaction (SQLite's one writer)
    submission = jobs.submit(  # BrokerUnavailableError: 503 with Retry-After
        stored_request(comparison, jobs.store),
        kind=JobKind.changes,
        model_version=change_detector_version(),
        key=key,
        note=body.note,
        now=state.clock(),
    )
    return answer(response, session, submission)


_DSM_FORM_DOC = single_file_form_doc(
    "The survey's digital surface model: a georeferenced one-band GeoTIFF of heights in metres, as "
    "photogrammetry tools export it beside the orthomosaic; at most PATROL_MAX_SURVEY_BYTES."
)


@router.put(
    "/{job_id}/dsm",
    response_model=DsmInfo,
    name="put_survey_dsm",
    openapi_extra=_DSM_FORM_DOC,
    responses={
        404: {"description": "No such survey that this key may see."},
        413: {"description": "Larger than PATROL_MAX_SURVEY_BYTES."},
        422: {
            "description": "Not a DSM (no CRS, not one band of heights, corrupt), or no orthomosaic survey."
        },
    },
)
async def put_survey_dsm(
    job_id: JobId,
    request: Request,
    state: StateDep,
    session: SessionDep,
    key: Annotated[ApiKey, require_role(Role.ingest)],
) -> DsmInfo:
    """Store (or replace) an orthomosaic survey's DSM: comparisons asked from then on, when both
    surveys have one, find new structures by their height gain (POST /v1/surveys/{id}/changes)."""
    jobs = jobs_of(request)
    job = owned_job(session, job_id, key)
    session.rollback()  # nothing is written here: end the read before the upload streams
    upload, _ = await receive_upload(request, jobs.store, limit=state.settings.max_survey_bytes)
    try:
        info = await run_in_threadpool(inspect_dsm, upload.path, state.settings, upload.content_hash)
        await run_in_threadpool(store_dsm, jobs.store, job, upload)
    finally:
        upload.path.unlink(missing_ok=True)  # moved when stored
    return info


def answer(response: Response, session: Session, submission: Submission) -> JobPublic:
    """The job a submission made or found: 202, or 200 when it had finished already; where to poll it."""
    if submission.job.state == JobState.succeeded:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/jobs/{submission.job.id}"
    return job_public(session, submission.job)


async def receive_upload(
    request: Request, store: JobInputStore, *, limit: int
) -> tuple[StoredUpload, dict[str, str]]:
    """The file part streamed to a server-named file (hashed, counted) and the small text fields."""
    async with single_file_form(
        request, limit=limit, file_field=FILE_FIELD, allowed_fields=FORM_FIELDS
    ) as (part, fields):
        # Starlette spooled the file part to a temporary file; copy it to a server-named one.
        upload = await run_in_threadpool(_copy, part.file, store)
    if upload.size == 0:
        upload.path.unlink(missing_ok=True)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the file part is empty")
    return upload, fields


def _copy(source: Any, store: JobInputStore) -> StoredUpload:
    writer = HashingWriter(store.incoming_path())
    try:
        source.seek(0)
        while chunk := source.read(COPY_CHUNK):
            writer.write(chunk)
    except BaseException:
        writer.discard()
        raise
    return writer.close()
