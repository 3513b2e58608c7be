"""What one camera preset has seen before, read from the ledger: known issues and false alarms.

A fixed view sees the same garbage pile every few seconds for weeks. A detection that
overlaps (IoU >= `match_iou`) a box this preset recorded for an issue still open is not
recorded again until `refresh_s` has passed (then it joins its issue, keeping its last-seen
time current, and alerts nobody). A detection overlapping a box of an issue a reviewer
rejected is a false alarm this preset has made before (a chimney, a red roof at dusk) and
is never recorded again from here. Both are derived from the ledger's rows, so they
survive restarts and a reviewer's rejection counts from the next reload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import Frame, Issue, Observation, Source
from vision.postprocess import box_iou

Verdict = Literal["false_alarm", "known"]
QUIET_STATES = frozenset({"candidate", "confirmed", "dispatched", "rebound"})  # open: no need to re-record
REJECTED = "rejected"
LOAD_LIMIT = 500  # the most recent observations of a preset; older ones are long covered by newer


@dataclass
class _Seen:
    class_key: str
    box: np.ndarray
    state: str
    at: datetime


@dataclass
class ViewMemory:
    camera_id: str
    preset: str
    refresh_s: float = 3600.0
    match_iou: float = 0.3
    seen: list[_Seen] = field(default_factory=list)

    def reload(self, session: Session) -> None:
        rows = session.execute(
            select(
                Observation.class_key,
                Observation.x1,
                Observation.y1,
                Observation.x2,
                Observation.y2,
                Issue.state,
                Frame.received_at,
            )
            .join(Frame, Observation.frame_id == Frame.id)
            .join(Source, Frame.source_id == Source.id)
            .join(Issue, Observation.issue_id == Issue.id)
            .where(Source.kind == "camera", Source.name == self.camera_id, Source.preset == self.preset)
            .order_by(Observation.id.desc())
            .limit(LOAD_LIMIT)
        ).all()
        self.seen = [
            _Seen(key, np.array([x1, y1, x2, y2], np.float64), state, at)
            for key, x1, y1, x2, y2, state, at in rows
        ]

    def verdict(self, class_key: str, box_xyxy: np.ndarray, now: datetime) -> Verdict | None:
        """false_alarm, known (recorded lately for an open issue), or None: record it."""
        same = [s for s in self.seen if s.class_key == class_key]
        if not same:
            return None
        overlaps = box_iou(np.asarray(box_xyxy, np.float64), np.stack([s.box for s in same]))
        hits = [s for s, overlap in zip(same, overlaps.tolist(), strict=True) if overlap >= self.match_iou]
        if any(s.state == REJECTED for s in hits):
            return "false_alarm"
        if any(s.state in QUIET_STATES and (now - s.at).total_seconds() < self.refresh_s for s in hits):
            return "known"
        return None

    def remember(self, class_key: str, box_xyxy: np.ndarray, state: str, at: datetime) -> None:
        self.seen.insert(0, _Seen(class_key, np.asarray(box_xyxy, np.float64), state, at))
        del self.seen[LOAD_LIMIT:]
