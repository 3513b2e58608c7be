"""POST /v1/surveys: a zip of drone photos or a GeoTIFF orthomosaic in, a job id out (202).

The body streams to a file under the data dir (hashed and counted on the way, 413 past the
limit), is checked (422 for refused archives, non-georeferenced or corrupt TIFFs), and
becomes a job, or returns the job this survey already has under the current model. The
client's filename is never used; the file's type comes from its first bytes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from service.api.deps import AUTHENTICATED, SessionDep, StateDep, require_role
from service.api.routes.jobs import JobPublic, job_public
from service.api.upload_forms import FILE_FIELD, NOTE_FIELD, form_note, single_file_form_doc, upload_responses
from service.api.uploads import single_file_form
from service.auth import Role
from service.db.models import ApiKey
from service.jobs.errors import SurveyInputError
from service.jobs.inputs import inspect_survey
from service.jobs.models import JobState
from service.jobs.store import HashingWriter, JobInputStore, StoredUpload
from service.jobs.submit import JobServices

router = APIRouter(prefix="/v1/surveys", tags=["surveys"], dependencies=AUTHENTICATED)

FORM_FIELDS = (NOTE_FIELD,)
COPY_CHUNK = 1 << 20

_FORM_DOC = single_file_form_doc(
    "A zip of drone photos (DJI XMP pose in each) or a georeferenced GeoTIFF orthomosaic; "
    "at most PATROL_MAX_SURVEY_BYTES."
)


def jobs_of(request: Request) -> JobServices:
    return request.app.state.jobs


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
