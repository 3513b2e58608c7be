"""The review bridge's tables: tasks pushed to Label Studio, deliveries processed, reviewers' labels.

- `review_tasks`: one Label Studio task per frame and project, so a frame is never pushed twice.
- `review_deliveries`: each annotation revision applied once (id + revision unique), whether it
  came by webhook or by reconcile; a replayed delivery finds its row and changes nothing.
- `review_labels`: the boxes a reviewer left, in pixels of the frame, with what became of the
  model's box (kept, moved, relabelled, added, removed): the corrected labels training reads.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base, UTCDateTime, one_of

LABEL_DECISIONS = ("kept", "moved", "relabelled", "added", "removed", "not_a_violation", "cannot_tell")


class ReviewTask(Base):
    __tablename__ = "review_tasks"
    __table_args__ = (UniqueConstraint("project_id", "frame_id"), UniqueConstraint("task_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id"), index=True)
    project_id: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[int] = mapped_column(Integer, doc="Label Studio's task id.")
    pushed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReviewDelivery(Base):
    __tablename__ = "review_deliveries"
    __table_args__ = (UniqueConstraint("annotation_id", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    annotation_id: Mapped[int] = mapped_column(Integer)
    revision: Mapped[str] = mapped_column(String(64), doc="The annotation's updated_at, or 'deleted'.")
    task_id: Mapped[int] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(32))
    reviewer: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(Text, default="")
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReviewLabel(Base):
    __tablename__ = "review_labels"
    __table_args__ = (one_of("decision", LABEL_DECISIONS),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("review_deliveries.id"), index=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id"), index=True)
    observation_id: Mapped[int | None] = mapped_column(ForeignKey("observations.id"))
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id"))
    decision: Mapped[str] = mapped_column(String(16))
    class_key: Mapped[str | None] = mapped_column(String(64), doc="None for a verdict on the whole frame.")
    x1: Mapped[float | None] = mapped_column(Float)
    y1: Mapped[float | None] = mapped_column(Float)
    x2: Mapped[float | None] = mapped_column(Float)
    y2: Mapped[float | None] = mapped_column(Float)
    reviewer: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
