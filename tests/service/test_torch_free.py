"""The service must never import torch or ultralytics, not even transitively."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import sys, tempfile, pathlib
from fastapi.testclient import TestClient
import service.api.app as app_module
import service.cli, service.photo_analyzer
from service.settings import Settings
folder = pathlib.Path(tempfile.mkdtemp())
app = app_module.create_app(Settings(database_url=f"sqlite:///{folder}/x.db", data_dir=folder / "data"))
with TestClient(app) as client:
    assert client.get("/health").status_code == 200
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "ultralytics", "torchvision"))
print("HEAVY", heavy)
"""


@pytest.mark.slow  # a fresh interpreter importing the service: ~5-15 s
def test_the_app_runs_without_importing_torch():
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout, result.stdout
