"""`patrol geotag` from outside: one JSON object per call."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from tests.vision.geo.conftest import dji_xmp, dms, write_jpeg
from tests.vision.geo.test_drone import H, W, dji
from tests.vision.geo.test_tower import config
from vision.cli.geotag import register


@pytest.fixture
def run() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> tuple[int, dict | None, str]:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keep "geotag" as a subcommand, as under `patrol`
        pass

    result = runner.invoke(app, ["geotag", *args])
    body = json.loads(result.stdout) if result.exit_code == 0 else None
    return result.exit_code, body, result.output


def test_drone_photo_report(tmp_path: Path, run: CliRunner) -> None:
    path = write_jpeg(tmp_path / "d.jpg", (W, H), xmp=dji_xmp(**dji()))
    code, body, _ = invoke(run, str(path))
    assert code == 0 and body is not None
    assert body["source"] == "drone" and body["camera"]["pitch_deg"] == -90.0
    assert [p["pixel"] for p in body["points"]] == [[W / 2, H / 2], [0, 0], [W, 0], [W, H], [0, H]]
    assert body["points"][2]["lon"] > body["points"][1]["lon"]  # top-right is east of top-left (yaw 0)
    # Top edge to bottom edge spans 2 * 100 m * tan(42 deg) * 3/4 on the ground.
    span_deg = body["points"][1]["lat"] - body["points"][4]["lat"]
    assert span_deg * 110_860 == pytest.approx(2 * 100 * math.tan(math.radians(42)) * H / W, rel=0.01)
    assert body["expected_error"]["centre"]["error_m"] > 0


def test_pixels_and_gcj02(tmp_path: Path, run: CliRunner) -> None:
    path = write_jpeg(tmp_path / "d.jpg", (W, H), xmp=dji_xmp(**dji()))
    code, body, _ = invoke(run, str(path), "--pixel", "10,20", "--pixel", "5000,5", "--gcj02")
    assert code == 0 and body is not None
    assert body["points"][0]["pixel"] == [10.0, 20.0] and "gcj02" in body["points"][0]
    assert body["points"][1]["location"] is None and "outside" in body["points"][1]["reason"]


def test_phone_photo_with_bogus_gps_reports_reasons(tmp_path: Path, run: CliRunner) -> None:
    path = write_jpeg(tmp_path / "p.jpg", gps={1: "N", 2: dms(123.0), 3: "E", 4: dms(117.0)})
    code, body, _ = invoke(run, str(path))
    assert code == 0 and body is not None
    assert body["source"] is None and body["camera"] is None
    assert any("out of range" in r for r in body["reasons"])
    assert all(p["location"] is None for p in body["points"])
    code, body, _ = invoke(run, str(path), "--lonlat", "117.5,31.5")
    assert body is not None and body["source"] == "citizen"
    assert body["points"][0]["lon"] == 117.5 and body["points"][0]["uncertainty_m"] == 10.0


def test_tower_camera_config(tmp_path: Path, run: CliRunner) -> None:
    cam = tmp_path / "cam.yaml"
    cam.write_text(yaml.safe_dump(config()), encoding="utf-8")
    frame = write_jpeg(tmp_path / "f.jpg", (1920, 1080))
    code, body, _ = invoke(run, str(frame), "--camera", str(cam), "--preset", "1")
    assert code == 0 and body is not None
    assert body["source"] == "camera" and body["camera"]["preset"] == "1"
    assert body["points"][1]["location"] is None  # the top-left corner is sky
    far, centre = body["expected_error"]["far_edge"], body["expected_error"]["centre"]
    assert far["error_m"] > centre["error_m"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jpg"], "not_found"),
        (["{img}", "--pixel", "12"], "X,Y"),
        (["{img}", "--lonlat", "0,0"], "Null Island"),
        (["{img}", "--camera", "{bad}"], "invalid camera config"),
    ],
)
def test_bad_input_exits_non_zero(tmp_path: Path, run: CliRunner, args: list[str], message: str) -> None:
    img = write_jpeg(tmp_path / "i.jpg")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n", encoding="utf-8")
    args = [a.format(img=img, bad=bad) for a in args]
    code, _, output = invoke(run, *args)
    assert code != 0 and message in output
