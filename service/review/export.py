"""Reviewed frames as a YOLO source folder that `patrol datasets build` reads (issue #10 part 7).

    OUT/images/i<issue>-f<frame>.jpg   the evidence frame as stored (no upload metadata)
    OUT/labels/i<issue>-f<frame>.txt   YOLO boxes, class id = position in the taxonomy; an empty
                                       file is a hard negative (a reviewed false alarm)
    OUT/provenance.jsonl               one object per image: its sha256, source, place, capture
                                       time, reviewers, decision time, and every box's fate
    OUT/export.json                    the classes by id, counts, what was left out and why

A frame is exported only when a reviewer decided every detection in it, because a box nobody
looked at would become background (or a wrong label) in training:
- a frame annotated in Label Studio takes the boxes of its latest annotation (`review_labels`):
  kept, moved, relabelled and added boxes with the reviewer's class and position; removed boxes
  and "not a violation" leave nothing; "cannot tell" alone leaves the frame out;
- any other frame counts when each of its observations was recorded before its issue was
  confirmed or rejected (by a reviewer in Label Studio or the API): confirmed ones are boxes of
  the issue's final class, rejected ones leave nothing. An observation that joined an issue after
  the decision (including a suppressed sighting at a rejected place) was seen by nobody.
The `i<issue>` prefix (the frame's lowest issue id) lets a dataset spec keep the views of one
place in one split (a group rule `^i(?P<key>\\d+)-`); the builder splits by content hash.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import Frame, Issue, IssueEvent, Observation, Region, Source
from service.errors import InvalidInputError, NotFoundError
from service.evidence import EvidenceStore
from service.ledger.states import State
from service.review.models import ReviewLabel
from vision.output_folder import replace_earlier_output
from vision.taxonomy import Taxonomy

EXPORT_JSON = "export.json"
PROVENANCE = "provenance.jsonl"
FORMAT = "patrol-review-export"
BOX_DECISIONS = frozenset({"kept", "moved", "relabelled", "added"})
DECIDED = (State.confirmed.value, State.rejected.value)


@dataclass(frozen=True)
class LabelledBox:
    class_key: str
    xyxy: tuple[float, float, float, float]  # frame pixels
    issue_id: int | None
    observation_id: int | None
    decision: str  # confirmed | rejected (ledger) or the Label Studio decision
    reviewer: str
    at: datetime

    @property
    def is_box(self) -> bool:
        return self.decision == State.confirmed.value or self.decision in BOX_DECISIONS

    def as_json(self) -> dict[str, Any]:
        return {
            "class_key": self.class_key,
            "xyxy": [round(v, 2) for v in self.xyxy],
            "issue_id": self.issue_id,
            "observation_id": self.observation_id,
            "decision": self.decision,
        }


@dataclass
class ExportResult:
    out: Path
    images: int = 0
    hard_negatives: int = 0
    boxes: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> frames


def export_reviewed(
    session: Session, *, store: EvidenceStore, out: Path, taxonomy: Taxonomy, now: datetime
) -> ExportResult:
    """Write every fully reviewed frame of the ledger into `out` (new, empty, or an earlier export)."""
    _prepare_out(out)
    result = ExportResult(out)
    class_ids = {key: i for i, key in enumerate(taxonomy.keys)}
    studio = _studio_labels(session)
    ledger = _ledger_labels(session, exclude=set(studio))
    rows: list[dict[str, Any]] = []
    for frame_id in sorted(set(studio) | set(ledger)):
        labels = studio[frame_id] if frame_id in studio else ledger[frame_id]
        if labels is None:
            result.skipped["a detection in it nobody reviewed"] += 1
            continue
        if not labels:
            result.skipped["Label Studio: cannot tell"] += 1
            continue
        frame = session.get(Frame, frame_id)
        assert frame is not None  # selected through its observations or labels
        try:
            data = store.path_of(frame.image_path).read_bytes()
        except NotFoundError:
            result.skipped["evidence image missing from the data dir"] += 1
            continue
        rows.append(_write_image(session, frame, data, labels, class_ids, out, result))
    (out / PROVENANCE).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    manifest = {
        "format": FORMAT,
        "version": 1,
        "exported_at": now.isoformat(),
        "classes": dict(enumerate(taxonomy.keys)),
        "images": result.images,
        "hard_negatives": result.hard_negatives,
        "boxes": dict(sorted(result.boxes.items())),
        "skipped": dict(sorted(result.skipped.items())),
    }
    (out / EXPORT_JSON).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return result


def _prepare_out(out: Path) -> None:
    replace_earlier_output(
        out,
        marker=EXPORT_JSON,
        earlier="an earlier export",
        folders=("images", "labels"),
        files=(PROVENANCE, EXPORT_JSON),
        make=("images", "labels"),
        error=InvalidInputError,
    )


# -- which boxes a frame has ---------------------------------------------------------------------


def _studio_labels(session: Session) -> dict[int, list[LabelledBox]]:
    """Per frame annotated in Label Studio, its latest annotation's labels (empty: cannot tell)."""
    rows = session.execute(
        select(ReviewLabel, Observation.class_key)
        .outerjoin(Observation, Observation.id == ReviewLabel.observation_id)
        .order_by(ReviewLabel.delivery_id, ReviewLabel.id)
    ).all()
    latest: dict[int, int] = {}
    for row, _ in rows:
        latest[row.frame_id] = row.delivery_id
    found: dict[int, list[LabelledBox]] = {frame_id: [] for frame_id in latest}
    for row, detected_as in rows:
        if row.delivery_id != latest[row.frame_id] or row.decision == "cannot_tell":
            continue
        has_box = row.decision in BOX_DECISIONS and row.class_key is not None and row.x1 is not None
        xyxy = (row.x1, row.y1, row.x2, row.y2) if has_box else (0.0, 0.0, 0.0, 0.0)
        found[row.frame_id].append(
            LabelledBox(
                row.class_key or detected_as or "",  # a removed box: the class the model gave it
                xyxy,  # type: ignore[arg-type]  # has_box: all four set together by the decision code
                row.issue_id,
                row.observation_id,
                row.decision,
                row.reviewer,
                row.at,
            )
        )
    return found


def _ledger_labels(session: Session, *, exclude: set[int]) -> dict[int, list[LabelledBox] | None]:
    """Per frame with a decided issue (not in `exclude`): its boxes, or None when one of its
    observations was not reviewed."""
    is_decision = (
        IssueEvent.kind == "transition",
        IssueEvent.from_state == State.candidate.value,
        IssueEvent.to_state.in_(DECIDED),
    )
    decisions = {e.issue_id: e for e in session.scalars(select(IssueEvent).where(*is_decision))}
    # Subqueries, not lists of ids: a large ledger would pass SQLite's limit of bound parameters.
    decided_issues = select(IssueEvent.issue_id).where(*is_decision)
    decided_frames = select(Observation.frame_id).where(Observation.issue_id.in_(decided_issues))
    recorded = dict(
        session.execute(
            select(IssueEvent.observation_id, IssueEvent.id)
            .join(Observation, Observation.id == IssueEvent.observation_id)
            .where(IssueEvent.kind.in_(("opened", "joined")), Observation.frame_id.in_(decided_frames))
        ).all()
    )
    rows = session.execute(
        select(Observation, Issue.class_key)
        .join(Issue, Issue.id == Observation.issue_id)
        .where(Observation.frame_id.in_(decided_frames))
        .order_by(Observation.id)
    ).all()
    found: dict[int, list[LabelledBox] | None] = {}
    for obs, class_key in rows:
        if obs.frame_id in exclude:
            continue
        boxes = found.setdefault(obs.frame_id, [])
        decision = decisions.get(obs.issue_id)
        seen = recorded.get(obs.id)
        if boxes is None:
            continue
        if decision is None or seen is None or seen > decision.id:
            found[obs.frame_id] = None
            continue
        boxes.append(
            LabelledBox(
                class_key,
                (obs.x1, obs.y1, obs.x2, obs.y2),
                obs.issue_id,
                obs.id,
                decision.to_state or "",
                decision.actor,
                decision.at,
            )
        )
    return found


# -- writing -------------------------------------------------------------------------------------


def _write_image(
    session: Session,
    frame: Frame,
    data: bytes,
    labels: list[LabelledBox],
    class_ids: dict[str, int],
    out: Path,
    result: ExportResult,
) -> dict[str, Any]:
    issue_ids = sorted({b.issue_id for b in labels if b.issue_id is not None})
    stem = f"i{issue_ids[0] if issue_ids else 0}-f{frame.id}"
    (out / "images" / f"{stem}.jpg").write_bytes(data)
    lines = []
    for box in labels:
        if not box.is_box:
            continue
        if box.class_key not in class_ids:
            raise InvalidInputError(
                f"frame {frame.id}: class {box.class_key!r} is not in the taxonomy ({', '.join(class_ids)})"
            )
        lines.append(_yolo_line(class_ids[box.class_key], box.xyxy, frame.width, frame.height))
        result.boxes[box.class_key] += 1
    (out / "labels" / f"{stem}.txt").write_text("".join(f"{line}\n" for line in lines), "utf-8")
    result.images += 1
    result.hard_negatives += int(not lines)
    source = session.get(Source, frame.source_id)
    latest = max(labels, key=lambda b: b.at)
    return {
        "image": f"images/{stem}.jpg",
        "label": f"labels/{stem}.txt",
        "sha256": hashlib.sha256(data).hexdigest(),
        "hard_negative": not lines,
        "frame_id": frame.id,
        "upload_sha256": frame.content_hash,
        "model_version": frame.model_version,
        "source": {
            "kind": source.kind if source else None,
            "name": source.name if source else None,
            "preset": source.preset if source else None,
        },
        "place": _place(session, frame, issue_ids),
        "captured_at": frame.captured_at.isoformat(),
        "received_at": frame.received_at.isoformat(),
        "reviewers": sorted({b.reviewer for b in labels}),
        "decided_at": latest.at.isoformat(),
        "labels_from": "ledger" if latest.decision in DECIDED else "label_studio",
        "boxes": [b.as_json() for b in labels if b.is_box],
        "rejected": [b.as_json() for b in labels if not b.is_box],
    }


def _yolo_line(class_id: int, xyxy: tuple[float, float, float, float], width: int, height: int) -> str:
    """Frame pixels -> a normalised YOLO line, clipped to the frame (normalised coordinates hold for
    the stored image too, whatever size it was stored at)."""
    x1, y1, x2, y2 = (
        min(1.0, max(0.0, v)) for v in (xyxy[0] / width, xyxy[1] / height, xyxy[2] / width, xyxy[3] / height)
    )
    return f"{class_id} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}"


def _place(session: Session, frame: Frame, issue_ids: Iterable[int]) -> dict[str, Any]:
    issues = [i for i in (session.get(Issue, n) for n in issue_ids) if i is not None]
    located = next((i for i in issues if i.lon is not None), None)
    lon = located.lon if located is not None else frame.camera_lon
    lat = located.lat if located is not None else frame.camera_lat
    region_ids = {i.region_id for i in issues if i.region_id is not None}
    names: defaultdict[str, list[str]] = defaultdict(list)
    for region in session.scalars(select(Region).where(Region.id.in_(region_ids)).order_by(Region.id)):
        names[region.kind].append(region.name)
    return {"lon": lon, "lat": lat, "regions": dict(names)}
