"""Label Studio's two ways in, neither with an API key (PUBLIC_ROUTES says why):

- GET /v1/review/frames/{frame_id}.jpg?expires=…&sig=…: a frame's evidence image for a task,
  authorised by its HMAC signature over the path and expiry (service/review/signing.py): 403 when
  the signature is bad or expired, and no other file can be reached with it (the path names a
  frame id; the file is the one the ledger holds for that frame).
- GET /v1/review/frames/{frame_id}/before.jpg?expires=…&sig=…: the earlier survey's crop of a
  change candidate's frame (observations.before_crop_path), signed the same way over its own path;
  404 for a frame that is no change between surveys.
- POST /v1/review/webhook: annotation created, updated or deleted, authorised by a shared secret
  header compared in constant time (401 without it); each annotation revision is applied once.
"""

from __future__ import annotations

import hmac
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from fastapi.responses import FileResponse
from pydantic import ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from service.api.deps import NowDep, SessionDep, StateDep
from service.db.models import Frame, Observation
from service.review.decisions import AnnotationIn, UnknownTask, apply_annotation, record_deletion
from service.review.settings import ReviewSettings
from service.review.signing import BadSignature, UrlSigner, before_path, frame_path
from service.runtime import Runtime

router = APIRouter(prefix="/v1/review", tags=["review"])

CREATED_OR_UPDATED = frozenset({"ANNOTATION_CREATED", "ANNOTATION_UPDATED"})
DELETED = frozenset({"ANNOTATIONS_DELETED", "ANNOTATION_DELETED"})
MAX_WEBHOOK_BYTES = 5 * 1024 * 1024


def review_settings(request: Request) -> ReviewSettings:
    settings: ReviewSettings = request.app.state.review_settings
    return settings


SIGNED: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}}},
    403: {"description": "Bad or expired signature."},
}


@dataclass(frozen=True)
class SignedQuery:
    """A signed URL's query (expires, sig), checked against the path the route serves."""

    request: Request
    expires: int
    sig: str

    def check(self, path: str) -> None:
        """403 unless signed URLs are on and `sig` signs (path, expires) with an expiry ahead."""
        secret = review_settings(self.request).review_url_secret
        if secret is None:
            off = "signed URLs are off (no PATROL_REVIEW_URL_SECRET)"
            raise HTTPException(status.HTTP_403_FORBIDDEN, off)
        signer = UrlSigner(secret.get_secret_value().encode())
        try:
            signer.check(path, self.expires, self.sig, now_s=time.time())
        except BadSignature as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None


def signed_query(
    request: Request,
    expires: Annotated[int, Query(ge=0, le=2**40)],
    sig: Annotated[str, Query(max_length=128)],
) -> SignedQuery:
    return SignedQuery(request, expires, sig)


SignedDep = Annotated[SignedQuery, Depends(signed_query)]


def _jpeg(state: Runtime, relative: str) -> FileResponse:
    # Label Studio's editor loads the image cross-origin (an <img crossorigin> and an XHR from its
    # own origin): without this header the browser hides it. Any origin may read it: the signature
    # in the URL is the authorisation, no cookie or key is involved.
    return FileResponse(
        state.evidence_store().path_of(relative),
        media_type="image/jpeg",
        headers={"Access-Control-Allow-Origin": "*"},
    )


@router.get("/frames/{frame_id}.jpg", name="review_frame", response_class=FileResponse, responses=SIGNED)
def review_frame(frame_id: int, state: StateDep, session: SessionDep, signed: SignedDep) -> FileResponse:
    signed.check(frame_path(frame_id))
    frame = session.get(Frame, frame_id)
    if frame is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no frame {frame_id}")
    return _jpeg(state, frame.image_path)


@router.get(
    "/frames/{frame_id}/before.jpg", name="review_before", response_class=FileResponse, responses=SIGNED
)
def review_before(frame_id: int, state: StateDep, session: SessionDep, signed: SignedDep) -> FileResponse:
    """A change candidate's earlier-survey crop (the first of the frame's observations that kept one)."""
    signed.check(before_path(frame_id))
    relative = session.scalars(
        select(Observation.before_crop_path)
        .where(Observation.frame_id == frame_id, Observation.before_crop_path.is_not(None))
        .order_by(Observation.id)
        .limit(1)
    ).first()
    if relative is None:
        detail = f"frame {frame_id} is no change between surveys: no before"
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail)
    return _jpeg(state, relative)


@router.post(
    "/webhook",
    name="review_webhook",
    responses={401: {"description": "Missing or wrong secret header."}},
)
async def review_webhook(
    request: Request,
    state: StateDep,
    now: NowDep,
    x_patrol_webhook_secret: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    secret = review_settings(request).review_webhook_secret
    given = (x_patrol_webhook_secret or "").encode()
    if secret is None or not hmac.compare_digest(given, secret.get_secret_value().encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong X-Patrol-Webhook-Secret header")
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BYTES:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "webhook body too large")
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the body is no JSON") from None
    # The ledger work blocks (database, lock): off the event loop, as FastAPI does for a plain def.
    return await run_in_threadpool(_apply, state, payload, now)


def _apply(state: Runtime, payload: Any, now: datetime) -> dict[str, Any]:
    action = str(payload.get("action", "")) if isinstance(payload, dict) else ""
    if action in DELETED:
        return _deleted(state, payload, now)
    if action not in CREATED_OR_UPDATED:
        return {"action": action, "applied": False, "outcome": "ignored: not an annotation change"}
    try:
        annotation = AnnotationIn.model_validate(payload.get("annotation"))
    except ValidationError as exc:
        detail = f"no usable annotation: {exc.errors(include_url=False)[:3]}"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from None
    store = state.evidence_store()
    with state.session_factory() as session:
        try:
            applied = apply_annotation(
                session, annotation, taxonomy=state.taxonomy, now=now, action=action, store=store
            )
            session.commit()
        except (UnknownTask, KeyError) as exc:
            session.rollback()
            store.discard_written()
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        except BaseException:
            session.rollback()
            store.discard_written()
            raise
        store.commit_written()
    return {"action": action, "applied": not applied.replayed, "outcome": applied.text()}


def _deleted(state: Runtime, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    ids = [a.get("id") for a in payload.get("annotations") or [] if isinstance(a, dict)]
    noted = []
    with state.session_factory() as session:
        for annotation_id in ids:
            if isinstance(annotation_id, int):
                noted.append(not record_deletion(session, annotation_id, now=now).replayed)
        session.commit()
    outcome = f"{sum(noted)} deletions noted"
    return {"action": payload.get("action"), "applied": any(noted), "outcome": outcome}
