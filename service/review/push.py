"""Pushing candidates to Label Studio, and pulling back what reviewers did while we were away.

`push_pending` sends the frames of candidate issues that are no task yet, in batches (one import
request each), and records each task as it is made, so a second run sends only what is new. Before
each import it asks Label Studio which of the batch's frames it already holds (the task's
data.frame_id): a run that died between the import and our commit left those, and they are
recorded instead of sent again.
`reconcile` reads every annotation of the project and applies those not applied yet (the same
code and the same once-only key as the webhook), for deliveries lost while the service was down.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy.orm import Session, sessionmaker

from service.db.models import Frame
from service.evidence import EvidenceStore
from service.review.decisions import AnnotationIn, UnknownTask, apply_annotation
from service.review.models import ReviewTask
from service.review.tasks import FRAME_KEY, UrlPolicy, pending_frames, tasks_of
from vision.taxonomy import Taxonomy

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

Progress = Callable[[int], None]
Pick = Callable[[Session, int], list[Frame]]


@dataclass(frozen=True)
class PushReport:
    """`tasks`: imported by this run; `adopted`: frames Label Studio already held as tasks (a run
    that died after the import, before recording them), recorded now instead of sent again."""

    tasks: int
    batches: int
    seconds: float
    adopted: int = 0

    @property
    def tasks_per_s(self) -> float:
        return self.tasks / self.seconds if self.seconds > 0 else 0.0


def push_pending(
    ls: LabelStudio,
    session_factory: sessionmaker[Session],
    *,
    project_id: int,
    taxonomy: Taxonomy,
    urls: UrlPolicy,
    batch: int,
    now: Callable[[], datetime],
    limit: int | None = None,
    progress: Progress | None = None,
    pick: Pick | None = None,
) -> PushReport:
    """`pick(session, n)`: the next at most n frames to send; default the oldest pending
    (`budgeted_frames` chooses by the active-learning ranking within a daily budget)."""
    started = time.perf_counter()
    pushed = batches = imported = adopted = 0
    while limit is None or pushed < limit:
        size = batch if limit is None else min(batch, limit - pushed)
        with session_factory() as session:
            frames = pick(session, size) if pick is not None else pending_frames(session, project_id, size)
            if not frames:
                break
            # A run that died between Label Studio's import and our commit left these as tasks there.
            held = tasks_holding(ls, project_id, [f.id for f in frames])
            fresh = [f for f in frames if f.id not in held]
            made = held | (_import(ls, session, project_id, fresh, taxonomy, urls) if fresh else {})
            at = now()
            session.add_all(
                ReviewTask(frame_id=f.id, project_id=project_id, task_id=made[f.id], pushed_at=at)
                for f in frames
            )
            session.commit()
        imported += len(fresh)
        adopted += len(held)
        pushed += len(frames)
        batches += 1
        if progress is not None:
            progress(pushed)
    return PushReport(imported, batches, time.perf_counter() - started, adopted)


def _import(
    ls: LabelStudio,
    session: Session,
    project_id: int,
    frames: list[Frame],
    taxonomy: Taxonomy,
    urls: UrlPolicy,
) -> dict[int, int]:
    """Frame id → Label Studio's id of the new task made for it (one import request)."""
    tasks = tasks_of(session, frames, taxonomy, urls, time.time())
    # Plain dicts: the SDK's request models would only be dumped back to the same JSON.
    answer = ls.projects.import_tasks(id=project_id, request=cast(Any, tasks), return_task_ids=True)
    task_ids = list(getattr(answer, "task_ids", None) or [])  # an extra field of the response
    if len(task_ids) != len(frames):
        raise RuntimeError(f"Label Studio made {len(task_ids)} tasks of {len(frames)} sent")
    # Label Studio creates a request's tasks in the order sent (one bulk insert).
    return {f.id: int(t) for f, t in zip(frames, task_ids, strict=True)}


def tasks_holding(ls: LabelStudio, project_id: int, frame_ids: list[int]) -> dict[int, int]:
    """Frame id → task id of the project's tasks whose data.frame_id is one of `frame_ids` (the
    lowest task id where a frame was sent twice before this check existed). One filtered list:
    the range of the ids, narrowed here (a ranked pick's ids need not be contiguous)."""
    wanted = set(frame_ids)
    if not wanted:
        return {}
    span = {"min": min(wanted), "max": max(wanted)}
    item = {"filter": "filter:tasks:data.frame_id", "operator": "in", "type": "Number", "value": span}
    query = json.dumps({"filters": {"conjunction": "and", "items": [item]}})
    held: dict[int, int] = {}
    pager: Iterable[Any] = ls.tasks.list(project=project_id, query=query, fields="task_only")
    for task in pager:
        frame_id = (task.data or {}).get(FRAME_KEY)
        if isinstance(frame_id, int) and frame_id in wanted:
            held[frame_id] = min(held.get(frame_id, task.id), task.id)
    return held


@dataclass(frozen=True)
class ReconcileReport:
    annotations: int
    applied: int
    skipped: list[str]


def project_annotations(ls: LabelStudio, project_id: int) -> Iterable[dict[str, Any]]:
    pager: Iterable[Any] = ls.tasks.list(project=project_id, fields="all")
    for task in pager:
        for annotation in task.annotations or []:
            yield {**annotation, "task": task.id} if isinstance(annotation, dict) else annotation


def reconcile(
    ls: LabelStudio,
    session_factory: sessionmaker[Session],
    *,
    project_id: int,
    taxonomy: Taxonomy,
    now: Callable[[], datetime],
    data_dir: Path | None = None,
) -> ReconcileReport:
    """`data_dir`: where evidence lives, for the crops of boxes reviewers added (else labels only)."""
    seen = applied = 0
    skipped: list[str] = []
    for raw in project_annotations(ls, project_id):
        seen += 1
        annotation = AnnotationIn.model_validate(raw)
        store = EvidenceStore(data_dir) if data_dir is not None else None
        with session_factory() as session:
            try:
                result = apply_annotation(
                    session, annotation, taxonomy=taxonomy, now=now(), action="RECONCILE", store=store
                )
                session.commit()
            except (UnknownTask, KeyError) as exc:
                session.rollback()
                if store is not None:
                    store.discard_written()
                skipped.append(f"annotation {annotation.id}: {exc}")
                continue
        if store is not None:
            store.commit_written()
        applied += not result.replayed
    return ReconcileReport(seen, applied, skipped)
