"""Candidates as Label Studio tasks: one task per frame, the model's boxes as its prediction.

A task carries the frame's signed evidence URL (never the signing secret), the frame's id, and
one prediction: the model's name and version (the frame's `model_version`, name:version:hash),
and per box its class label, score and position in Label Studio's percent coordinates. Each
box's result id is `obs-<observation id>`, so the reviewer's annotation says which box it kept.
A change between surveys (an observation with a before crop) also carries the earlier crop's
signed URL (`before_url`) and the HTML that shows it beside the later one (`before_html`); other
tasks carry both empty, since Label Studio wants every task to have the config's data keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import Frame, Issue, Observation
from service.ledger.states import State
from service.review.labelling import BEFORE_HTML, BOXES, IMAGE, label_value
from service.review.models import ReviewTask
from service.review.signing import UrlSigner, before_path, frame_path
from vision.taxonomy import Taxonomy

RESULT_PREFIX = "obs-"
FRAME_KEY = "frame_id"  # the task's data key for our frame id (push asks Label Studio by it)
BEFORE_URL = "before_url"  # the task's data key for the earlier crop's signed URL ("" when none)


@dataclass(frozen=True)
class UrlPolicy:
    """How task image URLs are made: this service's public URL, the signer, their lifetime."""

    public_url: str
    signer: UrlSigner
    ttl_s: int

    def frame_url(self, frame_id: int, now_s: float) -> str:
        return self._signed(frame_path(frame_id), now_s)

    def before_url(self, frame_id: int, now_s: float) -> str:
        """The frame's change candidate's earlier-survey crop (GET …/frames/{id}/before.jpg)."""
        return self._signed(before_path(frame_id), now_s)

    def _signed(self, path: str, now_s: float) -> str:
        return self.public_url.rstrip("/") + self.signer.sign(path, now_s=now_s, ttl_s=self.ttl_s)


def pending_frames(session: Session, project_id: int, limit: int) -> list[Frame]:
    """Frames with a candidate issue's observation that are no task of the project yet, oldest first."""
    pushed = select(ReviewTask.frame_id).where(ReviewTask.project_id == project_id)
    candidate = (
        select(Observation.frame_id)
        .join(Issue, Issue.id == Observation.issue_id)
        .where(Issue.state == State.candidate.value)
    )
    query = (
        select(Frame)
        .where(Frame.id.in_(candidate), Frame.id.not_in(pushed))
        .order_by(Frame.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def box_result(
    observation: Observation, frame: Frame, taxonomy: Taxonomy, *, from_name: str = BOXES
) -> dict[str, Any]:
    """One box as Label Studio's rectanglelabels result (percent of the frame's width and height)."""
    width, height = float(frame.width), float(frame.height)
    x1, y1 = max(0.0, observation.x1), max(0.0, observation.y1)
    x2, y2 = min(width, observation.x2), min(height, observation.y2)
    return {
        "id": f"{RESULT_PREFIX}{observation.id}",
        "from_name": from_name,
        "to_name": IMAGE,
        "type": "rectanglelabels",
        "original_width": frame.width,
        "original_height": frame.height,
        "image_rotation": 0,
        "score": round(observation.score, 4),
        "value": {
            "x": 100.0 * x1 / width,
            "y": 100.0 * y1 / height,
            "width": 100.0 * (x2 - x1) / width,
            "height": 100.0 * (y2 - y1) / height,
            "rotation": 0,
            "rectanglelabels": [label_value(taxonomy.get(observation.class_key))],
        },
    }


def has_before(observations: Sequence[Observation]) -> bool:
    """Whether the frame is a change between surveys: an observation kept the earlier crop."""
    return any(o.before_crop_path is not None for o in observations)


def before_html(url: str) -> str:
    """The earlier crop, labelled, above the later image (which carries the boxes)."""
    return (
        '<div style="display:flex;gap:8px;align-items:flex-start">'
        f'<figure style="margin:0"><img src="{escape(url)}" alt="before" style="max-width:320px"/>'
        "<figcaption>前一期 earlier survey</figcaption></figure>"
        "<p>↓ 本期 later survey (boxes below)</p></div>"
    )


def task_of(
    frame: Frame,
    observations: Sequence[Observation],
    taxonomy: Taxonomy,
    image_url: str,
    before_url: str | None = None,
) -> dict[str, Any]:
    """`before_url`: the earlier crop's signed URL for a change candidate (see has_before)."""
    results = [box_result(o, frame, taxonomy) for o in observations if o.class_key in taxonomy]
    return {
        "data": {
            IMAGE: image_url,
            FRAME_KEY: frame.id,
            "captured_at": frame.captured_at.isoformat(),
            BEFORE_URL: before_url or "",
            BEFORE_HTML: before_html(before_url) if before_url else "",
        },
        "predictions": [
            {
                "model_version": frame.model_version,
                "score": max((r["score"] for r in results), default=0.0),
                "result": results,
            }
        ],
    }


def tasks_of(
    session: Session, frames: Sequence[Frame], taxonomy: Taxonomy, urls: UrlPolicy, now_s: float
) -> list[dict[str, Any]]:
    """The frames as tasks, in order: signed URLs valid from `now_s`, a before URL for changes."""
    boxes = observations_of(session, [f.id for f in frames])
    return [
        task_of(
            f, boxes[f.id], taxonomy, urls.frame_url(f.id, now_s),
            urls.before_url(f.id, now_s) if has_before(boxes[f.id]) else None,
        )
        for f in frames
    ]


def observations_of(session: Session, frame_ids: Sequence[int]) -> dict[int, list[Observation]]:
    found: dict[int, list[Observation]] = {i: [] for i in frame_ids}
    rows = session.scalars(
        select(Observation).where(Observation.frame_id.in_(frame_ids)).order_by(Observation.id)
    )
    for observation in rows:
        found[observation.frame_id].append(observation)
    return found
