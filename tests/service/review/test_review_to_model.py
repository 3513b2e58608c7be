"""The whole review loop on small data, against a real Label Studio (tests/servers/label_studio_server.py):
photos → candidates → tasks with the model's boxes → reviewers' annotations made through Label
Studio's API, one of them adding a box of a class the model does not know → webhook → ledger →
`patrol review export` → `patrol datasets build` → a one-epoch fine-tune that teaches the new
class on its own branch → `patrol export` → `patrol evaluate` → `patrol promote`'s decision."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from patrol_cli.main import app as patrol
from service.review.labelling import BOXES, IMAGE, label_value
from service.review.push import push_pending
from tests.service.images import BASE_LON
from tests.service.review.conftest import TAXONOMY, new_project, upload, url_policy
from tests.service.web.live import LiveServer
from tests.training.synthetic import make_synthetic_dataset
from training.datasets.spec import DatasetSpec

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

pytestmark = [pytest.mark.server, pytest.mark.slow]

runner = CliRunner()
LOCAL_SPEC = Path(__file__).resolve().parents[3] / "datasets" / "patrol-local.yaml"
PUBLIC_LABELS = ("garbage_pile", "garbage_bin", "smoke", "fire")  # the spec's first four: the base's


def _run(args: list[str]) -> str:
    result = runner.invoke(patrol, args)
    assert result.exit_code == 0, f"patrol {' '.join(args)}:\n{result.output}"
    return result.output


def _state(live: LiveServer, issue_id: int) -> str:
    with live.client("reviewer") as http:
        return str(http.get(f"/v1/issues/{issue_id}").json()["properties"]["state"])


def _wait_state(live: LiveServer, issue_id: int, state: str, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while (now := _state(live, issue_id)) != state and time.monotonic() < deadline:
        time.sleep(0.2)
    return now


def _added_box(class_key: str) -> dict[str, Any]:
    """A box the reviewer draws in the photo's empty lower left corner (percent of 320 x 240)."""
    return {"from_name": BOXES, "to_name": IMAGE, "type": "rectanglelabels", "original_width": 320,
            "original_height": 240, "image_rotation": 0,
            "value": {"x": 3.0, "y": 70.0, "width": 22.0, "height": 25.0, "rotation": 0,
                      "rectanglelabels": [label_value(TAXONOMY.get(class_key))]}}


def _base_checkpoint(path: Path) -> Path:
    """A model that knows only the public labels, as the shipped one does (tiny and untrained)."""
    from training.transplant import save_checkpoint_with_provenance
    from vision.detectors.ultralytics_offline import import_ultralytics

    import_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(cfg="yolov5nu.yaml", nc=len(PUBLIC_LABELS), verbose=False)
    model.names = dict(enumerate(PUBLIC_LABELS))
    return save_checkpoint_with_provenance(model, "yolov5nu", {}, path)


def test_reviewers_labels_teach_the_next_model(
    ls: LabelStudio, service: LiveServer, ledger: sessionmaker[Session], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 1. Candidates to Label Studio, reviewed there: the garbage box kept, the smoke box removed,
    # and a roadside_clutter box added, a class the model has never seen.
    _, made = new_project(ls, service)
    photos = [upload(service, shade, BASE_LON + 0.01 * i) for i, shade in enumerate((3, 9, 15, 21))]
    project = {"project_id": made.project_id, "taxonomy": TAXONOMY, "now": lambda: datetime.now(UTC)}
    pushed = push_pending(ls, ledger, urls=url_policy(service), batch=2, **project)  # type: ignore[arg-type]
    assert pushed.tasks == 4
    for task in ls.tasks.list(project=made.project_id, fields="all"):
        predicted = task.predictions[0].result
        garbage = [label_value(TAXONOMY.get("garbage_pile"))]
        kept = [r for r in predicted if r["value"]["rectanglelabels"] == garbage]
        ls.annotations.create(id=task.id, result=[*kept, _added_box("roadside_clutter")])
    for found in photos:
        for issue in found:
            want = "confirmed" if issue["class_key"] == "garbage_pile" else "rejected"
            assert _wait_state(service, int(issue["id"]), want) == want

    # 2. The ledger's reviewed frames as a dataset, built beside a public-like source.
    monkeypatch.setenv("PATROL_DATA_DIR", str(service.settings.data_dir))
    data_root = tmp_path / "data"
    exported = data_root / "local" / "reviewed"
    _run(["review", "export", str(exported), "--database-url", service.settings.database_url])
    manifest = json.loads((exported / "export.json").read_text(encoding="utf-8"))
    assert manifest["images"] == 4
    assert manifest["boxes"] == {"garbage_pile": 4, "roadside_clutter": 4}
    make_synthetic_dataset(data_root / "shapes", n_train=12, n_val=4, n_test=4, seed=2,
                           labels=("garbage_pile", "garbage_bin", "smoke"))
    local = DatasetSpec.from_yaml(LOCAL_SPEC)
    reviewed = next(s for s in local.sources if s.name == "reviewed")
    shapes = reviewed.model_copy(update={
        "name": "shapes", "path": "shapes", "folders": ("train", "val", "test"),
        "classes": {0: "red_box", 1: "green_ellipse", 2: "blue_box"},
        "class_map": {"red_box": "garbage_pile", "green_ellipse": "garbage_bin", "blue_box": "smoke"},
        "group": None})
    spec_path = tmp_path / "spec.yaml"
    fractions = type(local.fractions)(train=0.5, val=0.25, test=0.25)
    spec = local.model_copy(update={"sources": (shapes, reviewed), "fractions": fractions})
    spec_path.write_text(yaml.safe_dump(json.loads(spec.model_dump_json()), allow_unicode=True),
                         encoding="utf-8")
    built = tmp_path / "built"
    _run(["datasets", "build", str(spec_path), str(built), "--data-root", str(data_root)])
    card = json.loads((built / "dataset_card.json").read_text(encoding="utf-8"))
    assert card["splits"]["test"]["images"] > 0

    # 3. A one-epoch fine-tune from the base, the new class on its own branch.
    base = _base_checkpoint(tmp_path / "base.pt")
    printed = _run(["train", "--data", str(built / "data.yaml"), "--base", str(base), "--fine-tune",
                    "--branch", "--project", str(tmp_path / "runs"), "--name", "taught", "--epochs", "1",
                    "--imgsz", "64", "--batch", "8", "--workers", "0"])
    branched = Path(json.loads(printed[printed.index("{"):])["branched"])
    assert branched.is_file()

    # 4. Both installed and measured on the same test split; the promotion weighs them.
    models = tmp_path / "models"
    samples = built / "images" / "val"
    for weights, name in ((base, "default"), (branched, "candidate")):
        _run(["export", str(weights), "--name", name, "--imgsz", "64", "--samples", str(samples),
              "--models-dir", str(models)])
        _run(["evaluate", name, "--data", str(built), "--split", "test", "--write-card", "--json",
              "--models-dir", str(models)])
    candidate_card = json.loads((models / "candidate" / "card.json").read_text(encoding="utf-8"))
    assert candidate_card["labels"][:4] == list(PUBLIC_LABELS)
    assert "roadside_clutter" in candidate_card["labels"]
    assert candidate_card["training"]["branched"]["shared"] == 10
    result = runner.invoke(patrol, ["promote", "candidate", "--local-data", str(built),
                                    "--models-dir", str(models)])
    assert result.exit_code in (0, 1), result.output  # promoted or refused: a decision, not an error
    lines = (models / "promotions.jsonl").read_text(encoding="utf-8").splitlines()
    log = [json.loads(line) for line in lines]
    decision = log[-1]
    assert decision["candidate"]["name"] == "candidate"
    assert ("PROMOTED" in result.stdout) == decision["accepted"]
    assert decision["local"] is not None  # measured on the local test split too, both models
    assert os.path.isfile(models / "default" / "card.json")
