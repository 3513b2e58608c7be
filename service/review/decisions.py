"""Reviewers' decisions into the ledger: one annotation revision, applied once.

An annotation of a task (one frame) is compared with the model's boxes of that frame
(result ids `obs-<observation id>`, see service/review/tasks.py):

- a box kept where the model put it → the observation is confirmed: a `reviewed` event, and
  its issue `candidate → confirmed` with the reviewer as actor (the ledger's transition code);
- a box moved or relabelled → the same, plus the corrected label (relabelled: the issue takes
  the reviewer's class, said in its history);
- a model's box the reviewer removed → that issue `candidate → rejected`, unless another of its
  boxes was kept;
- "not a violation" → every candidate issue of the frame rejected; "cannot tell" → recorded only;
- a box the reviewer added → a corrected label `added` and a new issue of its class, opened and
  confirmed by the reviewer, with the box's crop as evidence; it has no ground position (the frame's
  camera model is not kept), so it waits for a reviewer to place it, as the ledger's other
  located-nowhere issues do. Without an evidence store (none given) only the label is kept.

Every box decision is a `review_labels` row and a `reviewed` event in the issue's history.
Deliveries are keyed by (annotation id, revision = its updated_at): a replayed webhook or a
reconcile pass over an annotation already applied changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth import Role
from service.db.models import Frame, Issue, Observation
from service.db.session import lock_ledger
from service.errors import ServiceError
from service.evidence import EvidenceStore
from service.ledger.events import Actor, record_event, transition
from service.ledger.states import State
from service.review.labelling import BOXES, VERDICT, Verdict, class_of_label
from service.review.models import ReviewDelivery, ReviewLabel, ReviewTask
from service.review.tasks import RESULT_PREFIX
from vision.taxonomy import Taxonomy

# A reviewer's box within this many percent of the frame of the model's, on every edge, is "kept".
KEPT_TOLERANCE_PCT = 0.5
DELETED_REVISION = "deleted"


class AnnotationIn(BaseModel):
    """The part of Label Studio's annotation we read (webhook payload or task API alike)."""

    model_config = ConfigDict(extra="ignore")

    id: int
    task: int
    result: list[dict[str, Any]] = Field(default_factory=list)
    updated_at: str = Field(min_length=1, max_length=64)
    completed_by: int | dict[str, Any] | None = None
    was_cancelled: bool = False

    @property
    def reviewer_id(self) -> int | None:
        by = self.completed_by
        if isinstance(by, dict):
            value = by.get("id")
            return value if isinstance(value, int) else None
        return by


@dataclass(frozen=True)
class Box:
    class_key: str
    x: float  # percent of the frame, Label Studio's coordinates
    y: float
    width: float
    height: float

    def pixels(self, frame: Frame) -> tuple[float, float, float, float]:
        w, h = frame.width / 100.0, frame.height / 100.0
        return (self.x * w, self.y * h, (self.x + self.width) * w, (self.y + self.height) * h)

    def near(self, other: Box) -> bool:
        pairs = ((self.x, other.x), (self.y, other.y), (self.width, other.width), (self.height, other.height))
        return all(abs(a - b) <= KEPT_TOLERANCE_PCT for a, b in pairs)


@dataclass
class Applied:
    """What one delivery did (also its `outcome` text)."""

    replayed: bool = False
    confirmed: list[int] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        if self.replayed:
            return "already applied"
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.labels.items())) or "no labels"
        return f"confirmed issues {self.confirmed}, rejected issues {self.rejected}; {counts}"


class UnknownTask(ServiceError, LookupError):
    """The annotation's task is not one this service pushed."""


def reviewer_actor(reviewer_id: int | None) -> Actor:
    return Actor(f"labelstudio:user:{reviewer_id if reviewer_id is not None else '?'}", Role.reviewer, None)


def box_of(item: dict[str, Any], taxonomy: Taxonomy) -> Box:
    value = item["value"]
    return Box(
        class_of_label(taxonomy, value["rectanglelabels"][0]),
        float(value["x"]), float(value["y"]), float(value["width"]), float(value["height"]),
    )


def predicted_box(observation: Observation, frame: Frame) -> Box:
    w, h = frame.width / 100.0, frame.height / 100.0
    return Box(
        observation.class_key,
        observation.x1 / w, observation.y1 / h, (observation.x2 - observation.x1) / w,
        (observation.y2 - observation.y1) / h,
    )


def already_applied(session: Session, annotation_id: int, revision: str) -> bool:
    found = session.scalars(
        select(ReviewDelivery.id).where(
            ReviewDelivery.annotation_id == annotation_id, ReviewDelivery.revision == revision
        )
    ).first()
    return found is not None


def apply_annotation(
    session: Session,
    annotation: AnnotationIn,
    *,
    taxonomy: Taxonomy,
    now: datetime,
    action: str,
    store: EvidenceStore | None = None,
) -> Applied:
    """Apply one annotation revision to the ledger in `session` (the caller commits, and then
    commits or discards what `store` wrote: the crops of added boxes)."""
    lock_ledger(session, now)  # serialises deliveries: a replay racing its original finds its row
    if already_applied(session, annotation.id, annotation.updated_at):
        return Applied(replayed=True)
    task = session.scalars(select(ReviewTask).where(ReviewTask.task_id == annotation.task)).first()
    if task is None:
        raise UnknownTask(f"Label Studio task {annotation.task} is no task this service pushed")
    frame = session.get(Frame, task.frame_id)
    assert frame is not None  # a foreign key
    actor = reviewer_actor(annotation.reviewer_id)
    delivery = ReviewDelivery(
        annotation_id=annotation.id, revision=annotation.updated_at, task_id=annotation.task, action=action,
        reviewer=actor.label, outcome="", processed_at=now,
    )
    session.add(delivery)
    session.flush()
    applied = Applied()
    if not annotation.was_cancelled:  # a skipped task decides nothing
        _Decider(session, frame, delivery, actor, taxonomy, now, applied, store).decide(annotation.result)
    delivery.outcome = applied.text()
    session.flush()
    return applied


@dataclass
class _Decider:
    session: Session
    frame: Frame
    delivery: ReviewDelivery
    actor: Actor
    taxonomy: Taxonomy
    now: datetime
    applied: Applied
    store: EvidenceStore | None

    def decide(self, result: Sequence[dict[str, Any]]) -> None:
        observations = {
            o.id: o
            for o in self.session.scalars(select(Observation).where(Observation.frame_id == self.frame.id))
        }
        verdicts = {
            choice
            for item in result
            if item.get("from_name") == VERDICT
            for choice in item.get("value", {}).get("choices", [])
        }
        boxes = [i for i in result if i.get("from_name") == BOXES and i.get("type") == "rectanglelabels"]
        if Verdict.not_a_violation.value in verdicts:
            for observation in observations.values():
                self._label(observation, "not_a_violation", None)
                self._move(observation.issue_id, State.rejected, "reviewer: not a violation", observation)
            return
        if Verdict.cannot_tell.value in verdicts and not boxes:
            self._label(None, "cannot_tell", None)
            return
        kept_issues: set[int] = set()
        seen: set[int] = set()
        for item in boxes:
            box = box_of(item, self.taxonomy)
            predicted = observations.get(_observation_id(item))
            if predicted is None:
                added = self._open(box) if self.store is not None else None
                self._label(added, "added", box)
                if added is not None:
                    self._move(added.issue_id, State.confirmed, "reviewer: box added", added)
                continue
            observation = predicted
            seen.add(observation.id)
            kept_issues.add(observation.issue_id)
            before = predicted_box(observation, self.frame)
            decision = (
                "relabelled" if box.class_key != before.class_key else "kept" if box.near(before) else "moved"
            )
            self._label(observation, decision, box)
            if decision == "relabelled":
                self._relabel(observation, box.class_key)
            self._move(observation.issue_id, State.confirmed, f"reviewer: box {decision}", observation)
        for observation in observations.values():
            if observation.id in seen:
                continue
            self._label(observation, "removed", None)
            if observation.issue_id not in kept_issues:
                self._move(observation.issue_id, State.rejected, "reviewer: box removed", observation)

    def _label(self, observation: Observation | None, decision: str, box: Box | None) -> None:
        x1, y1, x2, y2 = box.pixels(self.frame) if box is not None else (None, None, None, None)
        self.session.add(
            ReviewLabel(
                delivery_id=self.delivery.id, frame_id=self.frame.id,
                observation_id=observation.id if observation else None,
                issue_id=observation.issue_id if observation else None, decision=decision,
                class_key=box.class_key if box else None, x1=x1, y1=y1, x2=x2, y2=y2,
                reviewer=self.actor.label, at=self.now,
            )
        )
        self.applied.labels[decision] = self.applied.labels.get(decision, 0) + 1
        if observation is not None:
            issue = self.session.get(Issue, observation.issue_id)
            assert issue is not None
            record_event(
                self.session, issue, kind="reviewed", actor=self.actor, at=self.now,
                reason=f"Label Studio annotation {self.delivery.annotation_id}: box {decision}",
                observation_id=observation.id, frame_id=self.frame.id,
            )

    def _open(self, box: Box) -> Observation:
        """A new issue for a box the model missed, with its crop; placed later by a reviewer."""
        assert self.store is not None
        x1, y1, x2, y2 = box.pixels(self.frame)
        image = cv2.imread(str(self.store.path_of(self.frame.image_path)), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"frame {self.frame.id}'s evidence image cannot be read")
        pixels = np.ascontiguousarray(image, dtype=np.uint8)
        sx, sy = pixels.shape[1] / self.frame.width, pixels.shape[0] / self.frame.height  # stored smaller?
        issue = Issue(
            class_key=box.class_key, state=State.candidate.value, needs_location=True, max_score=1.0,
            first_seen_at=self.frame.captured_at, last_seen_at=self.frame.captured_at,
            state_changed_at=self.now, created_at=self.now, updated_at=self.now,
        )
        self.session.add(issue)
        self.session.flush()
        observation = Observation(
            frame_id=self.frame.id, issue_id=issue.id, class_key=box.class_key, score=1.0,
            x1=x1, y1=y1, x2=x2, y2=y2, location_reason="added by a reviewer in Label Studio",
            crop_path=self.store.save_crop(pixels, (x1 * sx, y1 * sy, x2 * sx, y2 * sy)),
            observed_at=self.frame.captured_at,
        )
        self.session.add(observation)
        self.session.flush()
        record_event(
            self.session, issue, kind="opened", actor=self.actor, at=self.now, to_state=State.candidate.value,
            observation_id=observation.id, frame_id=self.frame.id,
            reason=f"new {box.class_key} box drawn by the reviewer (Label Studio annotation "
            f"{self.delivery.annotation_id}); a reviewer must place it",
        )
        return observation

    def _relabel(self, observation: Observation, class_key: str) -> None:
        issue = self.session.get(Issue, observation.issue_id)
        assert issue is not None
        if issue.class_key != class_key:
            record_event(
                self.session, issue, kind="reviewed", actor=self.actor, at=self.now,
                reason=f"class corrected by the reviewer: {issue.class_key} → {class_key}",
                observation_id=observation.id, frame_id=self.frame.id,
            )
            issue.class_key = class_key

    def _move(self, issue_id: int, target: State, reason: str, observation: Observation) -> None:
        issue = self.session.get(Issue, issue_id)
        assert issue is not None
        if issue.state != State.candidate.value:
            return  # decided before (another box of it, an earlier annotation, a reviewer in the API)
        transition(
            self.session, issue, target, actor=self.actor, at=self.now, reason=reason,
            observation_id=observation.id, frame_id=self.frame.id,
        )
        (self.applied.confirmed if target == State.confirmed else self.applied.rejected).append(issue_id)


def _observation_id(item: dict[str, Any]) -> int:
    raw = str(item.get("id", ""))
    if raw.startswith(RESULT_PREFIX) and raw[len(RESULT_PREFIX):].isdigit():
        return int(raw[len(RESULT_PREFIX):])
    return -1


def record_deletion(session: Session, annotation_id: int, *, now: datetime, task_id: int = 0) -> Applied:
    """A deleted annotation: noted once; the decisions it made stand (a rejection is final)."""
    lock_ledger(session, now)
    if already_applied(session, annotation_id, DELETED_REVISION):
        return Applied(replayed=True)
    session.add(
        ReviewDelivery(
            annotation_id=annotation_id, revision=DELETED_REVISION, task_id=task_id,
            action="ANNOTATIONS_DELETED", reviewer="labelstudio", processed_at=now,
            outcome="annotation deleted in Label Studio; the decisions it made stand",
        )
    )
    session.flush()
    return Applied()
