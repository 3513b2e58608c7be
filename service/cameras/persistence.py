"""The smoke persistence rule: k of the last n samples within t seconds, growing or moving.

One detection of smoke is not yet an event: a cloud, a chimney's steam, mist over a pond
or the sun on a roof all fool a detector now and then. A plume becomes an event when it is
seen in at least `k` of its last `n` analysed samples, those hits span at most `window_s`
seconds, and it is not a fixed shape: its box grew (area ratio >= `min_growth`) or moved
(IoU of its first and latest boxes <= `max_static_iou`). A cloud parked over the hill
passes the first tests and fails the last.

Pure and deterministic: boxes and sample times in, confirmed tracks out. Detections are
associated with tracks by IoU (smoke drifts and spreads, so the bar is low); a track not
hit for `window_s` is forgotten, and a confirmed track confirms once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vision.postprocess import box_iou


class PersistenceRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    classes: tuple[str, ...] = Field(
        default=("straw_burning",),
        description="Classes held back until the rule is met; others record at once.",
    )
    k: int = Field(default=3, ge=1, le=100, description="Hits needed among the last n samples.")
    n: int = Field(default=5, ge=1, le=100, description="Samples looked at.")
    window_s: float = Field(default=30.0, gt=0, le=3600, description="The k hits span at most this long.")
    min_growth: float = Field(
        default=1.15, ge=1.0, description="Area of the latest box / the first, to count as growth."
    )
    max_static_iou: float = Field(
        default=0.9, gt=0, le=1.0, description="IoU of the first and latest box at or below which it moved."
    )
    match_iou: float = Field(default=0.1, gt=0, le=1.0, description="IoU that joins a detection to a track.")

    @model_validator(mode="after")
    def _k_within_n(self) -> PersistenceRule:
        if self.k > self.n:
            raise ValueError(f"expected k <= n, got k={self.k}, n={self.n}")
        return self


@dataclass
class Track:
    """One plume followed across samples: (time, box or None for a miss), newest last."""

    id: int
    samples: deque[tuple[float, np.ndarray | None]]
    confirmed: bool = False

    def hits(self) -> list[tuple[float, np.ndarray]]:
        return [(t, box) for t, box in self.samples if box is not None]

    @property
    def last_box(self) -> np.ndarray | None:
        hits = self.hits()
        return hits[-1][1] if hits else None


@dataclass(frozen=True)
class Confirmed:
    track_id: int
    index: int  # the detection (in this sample) that met the rule
    first_seen_s: float


@dataclass
class PersistenceTracker:
    """Tracks of one (camera, preset, class); feed every analysed sample, hits or not."""

    rule: PersistenceRule
    tracks: list[Track] = field(default_factory=list)
    _next_id: int = 0

    def update(self, time_s: float, boxes_xyxy: np.ndarray) -> list[Confirmed]:
        """Add one sample's boxes; the detections whose track met the rule just now."""
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        self.tracks = [t for t in self.tracks if _last_hit_s(t) >= time_s - self.rule.window_s]
        assigned = _associate(self.tracks, boxes, self.rule.match_iou)
        hit_tracks = set(assigned.values())
        for i, track in enumerate(self.tracks):
            if i not in hit_tracks:
                track.samples.append((time_s, None))
        for det, track_index in assigned.items():
            self.tracks[track_index].samples.append((time_s, boxes[det]))
        for det in range(len(boxes)):
            if det not in assigned:
                self.tracks.append(Track(self._next_id, deque([(time_s, boxes[det])], maxlen=self.rule.n)))
                assigned[det] = len(self.tracks) - 1
                self._next_id += 1
        out = []
        for det, track_index in sorted(assigned.items()):
            track = self.tracks[track_index]
            if not track.confirmed and meets_rule(track, self.rule):
                track.confirmed = True
                out.append(Confirmed(track.id, det, track.hits()[0][0]))
        return out


def meets_rule(track: Track, rule: PersistenceRule) -> bool:
    """k hits in the last n samples, spanning at most window_s, and grown or moved."""
    hits = track.hits()
    if len(hits) < rule.k:
        return False
    recent = hits[-rule.k :]
    if recent[-1][0] - recent[0][0] > rule.window_s:
        return False
    first, last = hits[0][1], hits[-1][1]
    grown = _area(last) >= rule.min_growth * max(_area(first), 1e-9)
    moved = iou(first, last) <= rule.max_static_iou
    return grown or moved


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(box_iou(a, b.reshape(1, 4))[0])


def _area(box: np.ndarray) -> float:
    return max(0.0, float(box[2] - box[0])) * max(0.0, float(box[3] - box[1]))


def _last_hit_s(track: Track) -> float:
    hits = track.hits()
    return hits[-1][0] if hits else float("-inf")


def _associate(tracks: list[Track], boxes: np.ndarray, min_iou: float) -> dict[int, int]:
    """detection index -> track index, greedy by IoU with each track's latest box."""
    pairs = []
    for ti, track in enumerate(tracks):
        last = track.last_box
        if last is None or not len(boxes):
            continue
        for di, overlap in enumerate(box_iou(last, boxes).tolist()):
            if overlap >= min_iou:
                pairs.append((overlap, di, ti))
    assigned: dict[int, int] = {}
    taken: set[int] = set()
    for _, di, ti in sorted(pairs, reverse=True):
        if di not in assigned and ti not in taken:
            assigned[di] = ti
            taken.add(ti)
    return assigned
