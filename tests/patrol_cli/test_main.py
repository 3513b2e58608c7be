"""The `patrol` root: every package's commands gathered through entry points, a cheap --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from patrol_cli import main as root

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

COMMANDS = {
    "vision": {"detect", "models", "geotag", "changes"},
    "training": {"datasets", "evaluate", "promote", "transplant", "train", "export", "quantize",
                 "rebuild-pt", "recipes"},
    "service": {"serve", "keys", "regions", "demo", "demo-camera", "watch", "alerts", "review", "surveys"},
}


def _names(app: typer.Typer) -> set[str]:
    group = typer.main.get_group(app)
    return set(group.commands)


def test_each_package_registers_its_own_commands():
    for package, expected in COMMANDS.items():
        app = typer.Typer()
        __import__(f"{package}.cli", fromlist=["register"]).register(app)
        assert _names(app) == expected, package


def test_the_root_gathers_every_package_through_the_entry_point_group():
    app = typer.Typer()
    assert root.register_all(app)[:3] == ["vision", "training", "service"]
    assert _names(app) == set().union(*COMMANDS.values())
    assert _names(root.app) == _names(app)


def test_an_empty_entry_point_group_says_how_to_install(monkeypatch):
    monkeypatch.setattr(root, "entry_points", lambda group: [])
    with pytest.raises(SystemExit, match="no commands are registered"):
        root.register_all(typer.Typer())


def test_help_lists_commands_from_every_package():
    result = runner.invoke(root.app, ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    for name in ("detect", "quantize", "serve", "regions"):
        assert name in result.output


HELP_PROGRAM = """
import sys
sys.argv = ["patrol", "--help"]
try:
    import runpy
    runpy.run_module("patrol_cli", run_name="__main__")
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules}
               & {"torch", "ultralytics", "torchvision", "onnxruntime", "fastapi", "sqlalchemy", "cv2"})
print("HEAVY", heavy)
"""


def test_help_imports_no_heavy_module():
    """`patrol --help` (as `python -m patrol_cli`) loads neither torch nor onnxruntime nor the service app."""
    result = subprocess.run([sys.executable, "-c", HELP_PROGRAM], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "Usage: patrol" in result.stdout
    assert "HEAVY []" in result.stdout, result.stdout
