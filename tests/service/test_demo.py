"""`patrol demo`: stops clearly without a model; with one, runs the samples end to end without torch.

The model here is the session's tiny untrained model, so which boxes it finds is arbitrary;
what is checked is everything around them: regions, placement into the sample grids, the
survey job, the GeoJSON export matching the ledger, the annotated evidence files.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from patrol_cli.main import app as patrol
from tests.vision.fakes import install_tiny_model

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
# Where the samples are (samples/SOURCES.md): two citizen photos in 青山村第一网格, two in 石桥村,
# the drone photo over 青山村第三网格.
SAMPLE_GRIDS = {
    ("青山村", "青山村第一网格"),
    ("青山村", "青山村第三网格"),
    ("石桥村", "石桥村第一网格"),
    ("石桥村", "石桥村第二网格"),
}


def test_without_a_model_the_demo_says_so_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        patrol,
        ["demo", "--out", str(out), "--models-dir", str(tmp_path / "models"), "--samples", str(SAMPLES)],
    )
    assert result.exit_code == 2, result.output
    assert "needs a trained detection model" in result.output
    assert "no trained default model is installed" in result.output
    assert not out.exists()


PROGRAM = """
import json, sys
from patrol_cli.main import app
try:
    app(["demo", "--out", sys.argv[1], "--models-dir", sys.argv[2], "--samples", sys.argv[3]],
        standalone_mode=False)
finally:
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "ultralytics", "torchvision"))
    print("HEAVY", json.dumps(heavy))
"""


@pytest.mark.slow  # a fresh interpreter, the ONNX model on five photos: ~10-20 s on 2 cores
def test_the_demo_runs_the_samples_end_to_end_without_torch(tiny_model, tmp_path):
    models = tmp_path / "models"
    install_tiny_model(tiny_model.onnx_path, models, thresholds={"garbage": 0.0, "smoke": 0.0})
    out = tmp_path / "out"
    out.mkdir()
    (out / "evidence").mkdir()
    (out / "evidence" / "stale.jpg").write_bytes(b"from an earlier run")
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(out), str(models), str(SAMPLES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'HEAVY []' in result.stdout
    expected = ("imported 7 villages and grids", "recorded 4 citizen photos", "succeeded")
    for text in (*expected, "中文名", "village / grid"):
        assert text in result.stdout, result.stdout

    collection = json.loads((out / "issues.geojson").read_text(encoding="utf-8"))
    features = collection["features"]
    db = sqlite3.connect(out / "demo.db")
    try:
        issues = db.execute("SELECT count(*) FROM issues").fetchone()[0]
        frames_with_detections = db.execute("SELECT count(DISTINCT frame_id) FROM observations").fetchone()[0]
        drone_frames = db.execute(
            "SELECT count(*) FROM frames JOIN sources ON sources.id = frames.source_id"
            " WHERE sources.kind = 'drone'"
        ).fetchone()[0]
        job = db.execute("SELECT state, progress_done, progress_total FROM jobs").fetchall()
    finally:
        db.close()
    assert job == [("succeeded", 1, 1)] and drone_frames == 1
    assert issues > 0, "zero thresholds: the untrained model reports boxes"
    assert len(features) == issues
    located = [f for f in features if f["geometry"] is not None]
    places = {(f["properties"]["village"], f["properties"]["grid"]) for f in located}
    assert located and places <= SAMPLE_GRIDS

    evidence = sorted(p.name for p in (out / "evidence").iterdir())
    assert len(evidence) == frames_with_detections and "stale.jpg" not in evidence
    for feature in features:
        assert feature["properties"]["evidence"], feature["id"]
        for relative in feature["properties"]["evidence"]:
            assert (out / relative).is_file()


def _feature(issue_id, village, grid, coords):  # type: ignore[no-untyped-def]
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": coords} if coords else None,
        "properties": {"id": issue_id, "class_key": "garbage_pile", "name_zh": "垃圾堆", "max_score": 0.8125,
                       "village": village, "grid": grid, "state": "candidate", "observation_count": 2},
    }


def test_the_ledger_as_json_rows_and_as_a_table_that_keeps_grid_names_whole():
    import io

    from rich.console import Console

    from service.demo import _ledger_rows, _ledger_table

    features = [_feature(1, "青山村", "青山村第一网格", [119.123456789, 30.5]),
                _feature(2, "青山村", "青山村第三网格", None)]
    rows = _ledger_rows(features)
    assert rows[0] == {"id": 1, "class_key": "garbage_pile", "name_zh": "垃圾堆", "max_score": 0.8125,
                       "village": "青山村", "grid": "青山村第一网格", "lon": 119.123456789, "lat": 30.5,
                       "state": "candidate", "observation_count": 2}
    assert rows[1]["lon"] is None and rows[1]["lat"] is None
    json.dumps(rows)  # a JSON document as it is
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(_ledger_table(features))
    text = console.export_text()
    assert "…" not in text
    columns: dict[int, str] = {}
    for line in text.splitlines():
        if line.startswith("│"):
            for i, cell in enumerate(line.strip("│").split("│")):
                columns[i] = columns.get(i, "") + cell.strip()
    assert "青山村第一网格" in columns[4] and "青山村第三网格" in columns[4]
