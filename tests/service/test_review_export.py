"""`patrol review export` (issue #10 part 7): a ledger made through the API (photos, a reviewer's
confirm and reject), exported, then built by `patrol datasets build`'s builder beside a public-like
source, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from patrol_cli.main import app as patrol
from service.db.models import Frame, Observation
from service.db.session import make_engine, make_session_factory, session_scope
from service.review.decisions import AnnotationIn, apply_annotation
from service.review.labelling import BOXES, IMAGE, VERDICT, label_value
from service.review.models import ReviewTask
from service.review.tasks import box_result
from tests.service.helpers import move, upload_ok
from tests.service.images import BASE_LAT, BASE_LON, GARBAGE, SMOKE, offset, painted, png
from tests.training.synthetic import make_synthetic_dataset
from training.datasets.build import build_dataset
from training.datasets.spec import DatasetSpec
from training.datasets.split import assign_split
from vision.taxonomy import Taxonomy

runner = CliRunner()
LOCAL_SPEC = Path(__file__).resolve().parents[2] / "datasets" / "patrol-local.yaml"


def _at(east_m: float) -> dict[str, float]:
    lon, lat = offset(BASE_LON, BASE_LAT, east_m=east_m)
    return {"lon": lon, "lat": lat}


def _ok(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text


@pytest.fixture
def reviewed_ledger(client, keys, clock):  # type: ignore[no-untyped-def]
    """Frames: confirmed (exported with its box), rejected (a hard negative), and three that are not
    fully reviewed: a sighting after the confirmation, a suppressed one, a frame with a candidate."""
    confirmed = upload_ok(client, keys, png(painted([GARBAGE], shade=1)), **_at(0))
    rejected = upload_ok(client, keys, png(painted([GARBAGE], shade=2)), **_at(400))
    mixed = upload_ok(client, keys, png(painted([GARBAGE, SMOKE], shade=3)), **_at(800))
    upload_ok(client, keys, png(painted([SMOKE], shade=4)), **_at(1600))  # a candidate nobody reviewed
    clock.advance(hours=2)
    decided_at = clock()
    _ok(move(client, keys, confirmed["issues"][0]["id"], "confirmed", who="reviewer"))
    _ok(move(client, keys, rejected["issues"][0]["id"], "rejected", who="reviewer", reason="a haystack"))
    garbage_of_mixed = next(i for i in mixed["issues"] if i["class_key"] == "garbage_pile")
    _ok(move(client, keys, garbage_of_mixed["id"], "confirmed", who="reviewer"))
    clock.advance(hours=1)
    later = upload_ok(client, keys, png(painted([GARBAGE], shade=5)), **_at(5))
    assert later["issues"][0]["outcome"] == "joined"
    suppressed = upload_ok(client, keys, png(painted([GARBAGE], shade=6)), **_at(405))
    assert suppressed["issues"][0]["outcome"] == "suppressed"
    return {
        "confirmed": confirmed,
        "rejected": rejected,
        "mixed": mixed,
        "later": later,
        "decided_at": decided_at,
    }


def _export(settings, out: Path, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATROL_DATA_DIR", str(settings.data_dir))
    result = runner.invoke(patrol, ["review", "export", str(out), "--database-url", settings.database_url])
    assert result.exit_code == 0, result.output
    return result.output


def test_export_then_build(reviewed_ledger, settings, monkeypatch, tmp_path):
    out = tmp_path / "data" / "local" / "reviewed"
    printed = _export(settings, out, monkeypatch)
    assert "exported 2 images" in printed and "1 hard negatives" in printed
    assert "left out 3 frames: a detection in it nobody reviewed" in printed

    manifest = json.loads((out / "export.json").read_text(encoding="utf-8"))
    assert manifest["images"] == 2 and manifest["boxes"] == {"garbage_pile": 1}
    provenance = [json.loads(line) for line in (out / "provenance.jsonl").read_text("utf-8").splitlines()]
    by_frame = {p["frame_id"]: p for p in provenance}
    confirmed = by_frame[reviewed_ledger["confirmed"]["frame_id"]]
    rejected = by_frame[reviewed_ledger["rejected"]["frame_id"]]
    assert confirmed["hard_negative"] is False and rejected["hard_negative"] is True
    for entry in (confirmed, rejected):
        data = (out / entry["image"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["reviewers"][0].startswith("key:") and "reviewer" in entry["reviewers"][0]
        assert datetime.fromisoformat(entry["decided_at"]) == reviewed_ledger["decided_at"]
        assert (
            entry["source"]["kind"] == "citizen" and entry["captured_at"] and entry["labels_from"] == "ledger"
        )
        assert entry["place"]["lon"] == pytest.approx(_at(0 if entry is confirmed else 400)["lon"], abs=1e-6)
    assert (
        confirmed["boxes"][0]["decision"] == "confirmed" and rejected["rejected"][0]["decision"] == "rejected"
    )
    assert rejected["boxes"] == [] and (out / rejected["label"]).read_text() == ""
    # GARBAGE is painted at (100, 80)-(180, 160) in a 320 x 240 photo; garbage_pile is class 0.
    cls, cx, cy, w, h = (out / confirmed["label"]).read_text().split()
    assert cls == "0"
    assert [float(v) for v in (cx, cy, w, h)] == pytest.approx(
        [140 / 320, 120 / 240, 80 / 320, 80 / 240], abs=0.01
    )

    # The spec's reviewed source beside a public-like one (the shared public sets are too big for a
    # test); the builder reads the export as it reads any source.
    make_synthetic_dataset(tmp_path / "data" / "shapes", n_train=4, n_val=2, seed=1)
    local = DatasetSpec.from_yaml(LOCAL_SPEC)
    reviewed = next(s for s in local.sources if s.name == "reviewed")
    public = reviewed.model_copy(
        update={
            "name": "shapes",
            "path": "shapes",
            "classes": {0: "red_box", 1: "green_ellipse", 2: "blue_box"},
            "class_map": {"red_box": "garbage_pile", "green_ellipse": "garbage_bin", "blue_box": None},
            "group": None,
        }
    )
    spec = local.model_copy(update={"sources": (public, reviewed)})
    built = build_dataset(spec, tmp_path / "built", tmp_path / "data", check_near_duplicates=False)
    assert built.card.by_source["reviewed"]
    assert sum(c.images for c in built.card.by_source["reviewed"].values()) == 2

    carried = [
        json.loads(line) for line in (tmp_path / "built" / "provenance.jsonl").read_text().splitlines()
    ]
    assert len(carried) == 2 and {c["source"] for c in carried} == {"reviewed"}
    for entry in carried:
        image = tmp_path / "built" / entry["image"]
        assert hashlib.sha256(image.read_bytes()).hexdigest() == entry["provenance"]["sha256"]
        issue_key = Path(entry["provenance"]["image"]).name.split("-")[0][1:]
        # the split is fixed by the hash of the image's group (its place), not by the build
        assert entry["split"] == assign_split("", spec.fractions, source="reviewed", group_key=issue_key)
        label = (tmp_path / "built" / entry["label"]).read_text()
        if entry["provenance"]["hard_negative"]:
            assert label == ""
        else:
            assert label.split()[0] == str(spec.label_names.index("garbage_pile"))


def test_export_refuses_a_folder_that_is_no_export(reviewed_ledger, settings, monkeypatch, tmp_path):
    out = tmp_path / "somewhere"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    monkeypatch.setenv("PATROL_DATA_DIR", str(settings.data_dir))
    result = runner.invoke(patrol, ["review", "export", str(out), "--database-url", settings.database_url])
    assert result.exit_code == 2 and "holds no export.json" in result.output
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    # an earlier export is replaced, with the same files
    _export(settings, tmp_path / "again", monkeypatch)
    first = sorted(p.name for p in (tmp_path / "again" / "images").iterdir())
    _export(settings, tmp_path / "again", monkeypatch)
    assert sorted(p.name for p in (tmp_path / "again" / "images").iterdir()) == first and len(first) == 2


def _annotate(settings, frame_id: int, result, annotation_id: int, at: datetime) -> None:  # type: ignore[no-untyped-def]
    """What the webhook does with one Label Studio annotation of the frame's task (the task row is the
    one `patrol review push` writes once Label Studio has made the task)."""
    taxonomy = Taxonomy.default()
    engine = make_engine(settings.database_url)
    with session_scope(make_session_factory(engine)) as session:
        task_id = 1000 + frame_id
        if session.scalars(select(ReviewTask).where(ReviewTask.task_id == task_id)).first() is None:
            session.add(ReviewTask(frame_id=frame_id, project_id=1, task_id=task_id, pushed_at=at))
            session.flush()
        frame = session.get(Frame, frame_id)
        items = [r(session, frame, taxonomy) if callable(r) else r for r in result]
        annotation = AnnotationIn(
            id=annotation_id, task=task_id, result=items, updated_at=at.isoformat(), completed_by=7
        )
        apply_annotation(session, annotation, taxonomy=taxonomy, now=at, action="ANNOTATION_CREATED")
    engine.dispose()


def _kept(observation_id: int):  # type: ignore[no-untyped-def]
    """The model's box as the reviewer left it (the prediction's own result)."""
    return lambda session, frame, taxonomy: box_result(
        session.get(Observation, observation_id), frame, taxonomy
    )


def _verdict(choice: str) -> dict:  # type: ignore[type-arg]
    return {"from_name": VERDICT, "to_name": IMAGE, "type": "choices", "value": {"choices": [choice]}}


def test_label_studio_annotations_give_the_final_boxes(
    reviewed_ledger, settings, monkeypatch, tmp_path, clock
):
    """A frame annotated in Label Studio takes its latest annotation's boxes (kept, moved, relabelled,
    added), even with a detection the ledger rule would call unreviewed; "cannot tell" leaves it out."""
    mixed = reviewed_ledger["mixed"]
    garbage = next(o for o in mixed["observations"] if o["class_key"] == "garbage_pile")
    first = clock()
    _annotate(settings, mixed["frame_id"], [_verdict("not a violation")], 1, first)
    later = first + timedelta(minutes=5)
    added = {
        "id": "reviewer-box-1",
        "from_name": BOXES,
        "to_name": IMAGE,
        "type": "rectanglelabels",
        "value": {
            "x": 0.0,
            "y": 0.0,
            "width": 10.0,
            "height": 10.0,
            "rectanglelabels": [label_value(Taxonomy.default().get("roadside_clutter"))],
        },
    }
    _annotate(settings, mixed["frame_id"], [_kept(garbage["id"]), added], 1, later)  # the annotation, updated
    _annotate(settings, reviewed_ledger["later"]["frame_id"], [_verdict("cannot tell")], 2, later)

    out = tmp_path / "export"
    printed = _export(settings, out, monkeypatch)
    assert "exported 3 images" in printed and "left out 1 frames: Label Studio: cannot tell" in printed
    provenance = [json.loads(line) for line in (out / "provenance.jsonl").read_text("utf-8").splitlines()]
    entry = next(p for p in provenance if p["frame_id"] == mixed["frame_id"])
    assert entry["labels_from"] == "label_studio" and entry["reviewers"] == ["labelstudio:user:7"]
    assert datetime.fromisoformat(entry["decided_at"]) == later
    assert [b["decision"] for b in entry["boxes"]] == ["kept", "added"]
    assert [(b["decision"], b["class_key"]) for b in entry["rejected"]] == [("removed", "straw_burning")]
    lines = sorted((out / entry["label"]).read_text().splitlines())
    # roadside_clutter is class 2 in the taxonomy; the reviewer's box is the frame's top-left tenth.
    assert [line.split()[0] for line in lines] == ["0", "2"]
    assert [float(v) for v in lines[1].split()[1:]] == pytest.approx([0.05, 0.05, 0.1, 0.1])
