"""Which pending frames a push sends when a daily budget is set: the ranking's choice.

Glue between the ledger and service/review/ranking.py: pending frames and their boxes become
candidates (taxonomy class and score per box, the evidence image's dHash), what reviewers have
already been sent becomes `Reviewed` (boxes per class; the hashes of recent tasks' images), and
the budget left today is the daily budget less the tasks pushed since midnight UTC. Thresholds are
the taxonomy's per class (the ledger keeps taxonomy keys, not the model's labels).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, time
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import Frame, Observation
from service.errors import NotFoundError
from service.evidence import EvidenceStore
from service.review.models import ReviewTask
from service.review.ranking import BoxEvidence, Candidate, Policy, Reviewed, choose
from service.review.tasks import observations_of, pending_frames
from vision.image_hash import dhash64
from vision.taxonomy import Taxonomy

POOL_LIMIT = 2000  # pending frames ranked per push (oldest first beyond it)
RECENT_HASHES = 1000  # tasks whose images a new frame must not nearly repeat


def day_start(now: datetime) -> datetime:
    return datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)


def pushed_since(session: Session, project_id: int, since: datetime) -> int:
    query = select(func.count()).select_from(ReviewTask).where(
        ReviewTask.project_id == project_id, ReviewTask.pushed_at >= since)
    return int(session.scalar(query) or 0)


def evidence_images(store: EvidenceStore) -> Callable[[Frame], Path | None]:
    """A frame's stored image, or None where the evidence is gone."""

    def image_of(frame: Frame) -> Path | None:
        try:
            return store.path_of(frame.image_path)
        except NotFoundError:
            return None

    return image_of


def _hash(image: Path | None) -> int | None:
    try:
        return dhash64(image) if image is not None else None
    except OSError:  # evidence gone or unreadable: rank it without the duplicate check
        return None


def _reviewed(session: Session, project_id: int, image_of: Callable[[Frame], Path | None]) -> Reviewed:
    sent = select(ReviewTask.frame_id).where(ReviewTask.project_id == project_id)
    classes = session.scalars(select(Observation.class_key).where(Observation.frame_id.in_(sent)))
    recent = session.scalars(select(Frame).where(Frame.id.in_(sent)).order_by(Frame.id.desc())
                             .limit(RECENT_HASHES))
    hashes = tuple(h for h in (_hash(image_of(f)) for f in recent) if h is not None)
    return Reviewed(class_counts=Counter(classes), hashes=hashes)


def budgeted_frames(session: Session, size: int, *, project_id: int, daily_budget: int, now: datetime,
                    taxonomy: Taxonomy, image_of: Callable[[Frame], Path | None]) -> list[Frame]:
    """Up to `size` pending frames, best first by the ranking, within what today's budget leaves."""
    left = min(size, daily_budget - pushed_since(session, project_id, day_start(now)))
    if left <= 0:
        return []
    frames = pending_frames(session, project_id, POOL_LIMIT)
    boxes = observations_of(session, [f.id for f in frames])
    candidates = [Candidate(key=f.id, phash=_hash(image_of(f)),
                            boxes=tuple(BoxEvidence(o.class_key, o.score) for o in boxes[f.id]))
                  for f in frames]
    thresholds = {key: taxonomy.get(key).threshold for key in taxonomy.keys}
    chosen = choose(candidates, Policy(budget={"default": left}, thresholds=thresholds),
                    _reviewed(session, project_id, image_of))
    by_id = {f.id: f for f in frames}
    return [by_id[int(str(c.key))] for c in chosen]
