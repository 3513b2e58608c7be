"""The layering contracts in pyproject.toml ([tool.importlinter]) catch an import that breaks them.

`make test` runs `lint-imports` on the real tree before pytest; here it runs on a copy of the
packages, first as they are (kept), then with one upward import added (broken).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vision", "service", "training", "patrol_cli")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter (dev extra) not installed")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def _lint(tree: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, ahead of the editable install of the real tree.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    args = [str(LINT_IMPORTS), "--no-cache", "--no-logo", *(f"--contract={c}" for c in contracts)]
    return subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True, timeout=300)


def _add_import(tree: Path, module: str, line: str) -> Path:
    path = tree / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = path.with_suffix("") / "__init__.py"
    text = path.read_text(encoding="utf-8")
    path.write_text(text + f"\n{line}\n", encoding="utf-8")
    return path


def test_the_copied_tree_keeps_every_contract(tree):
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("contract", "module", "line", "message"),
    [
        ("vision-core", "vision.pipeline", "import service.ledger  # noqa",
         "vision is not allowed to import service"),
        ("floors", "training.promote", "from service.settings import Settings  # noqa",
         "training is not allowed to import service"),
        ("service-layers", "service.ledger.states", "import service.api.deps  # noqa",
         "service.ledger is not allowed to import service.api"),
    ],
)
def test_an_upward_import_breaks_its_contract(tree, contract, module, line, message):
    path = _add_import(tree, module, line)
    original = path.read_text(encoding="utf-8").removesuffix(f"\n{line}\n")
    try:
        result = _lint(tree, contract)
    finally:
        path.write_text(original, encoding="utf-8")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 broken" in result.stdout and message in result.stdout, result.stdout
