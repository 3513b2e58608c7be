"""tests/run_suite.py: `make test` runs the server tests and the rest as two pytest processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.run_suite import combined_status, group_marker, split_marker

RUN_SUITE = Path(__file__).resolve().parent / "run_suite.py"


@pytest.mark.parametrize(
    ("args", "rest", "expr"),
    [
        (["-q"], ["-q"], None),
        (["-q", "-m", "not slow", "tests/x"], ["-q", "tests/x"], "not slow"),
        (["-mslow", "-x"], ["-x"], "slow"),
        (["-m=browser"], [], "browser"),
        (["--maxfail=1", "-k", "m"], ["--maxfail=1", "-k", "m"], None),
    ],
)
def test_the_marker_expression_is_taken_out_of_the_arguments(args, rest, expr) -> None:
    assert split_marker(args) == (rest, expr)


def test_each_group_keeps_the_callers_selection() -> None:
    assert group_marker(None, "server") == "server"
    assert group_marker("not slow", "not server") == "(not slow) and not server"


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [([0, 0], 0), ([5, 0], 0), ([0, 5], 0), ([5, 5], 5), ([1, 0], 1), ([0, 2], 2), ([1, 5], 1)],
)
def test_the_status_is_the_first_failing_groups(statuses, expected) -> None:
    assert combined_status(statuses) == expected


def _project(folder: Path, failing: bool) -> None:
    (folder / "pytest.ini").write_text("[pytest]\nmarkers =\n    server: a real server\n")
    (folder / "test_groups.py").write_text(
        "import os, pathlib, pytest\n"
        "@pytest.mark.server\n"
        "def test_server():\n"
        "    pathlib.Path('server.pid').write_text(str(os.getppid()) + ' ' + str(os.getpid()))\n"
        f"    assert {not failing}\n"
        "def test_rest():\n"
        "    pathlib.Path('rest.pid').write_text(str(os.getppid()) + ' ' + str(os.getpid()))\n"
    )


def test_both_groups_run_in_processes_of_their_own_and_a_failure_fails_the_run(tmp_path: Path) -> None:
    _project(tmp_path, failing=False)
    passed = subprocess.run([sys.executable, str(RUN_SUITE), "-q", "-p", "no:cacheprovider"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    server_pid = (tmp_path / "server.pid").read_text().split()[1]
    rest_pid = (tmp_path / "rest.pid").read_text().split()[1]
    assert server_pid != rest_pid
    assert "the server tests' output" in passed.stdout and "1 passed" in passed.stdout
    log_folder = Path(passed.stdout.split(" their output in ")[1].split()[0]).parent
    assert not log_folder.exists()  # removed once printed

    _project(tmp_path, failing=True)
    failed = subprocess.run([sys.executable, str(RUN_SUITE), "-q", "-p", "no:cacheprovider"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "server tests exited 1, the rest 0" in failed.stdout


def test_a_selection_that_one_group_lacks_is_not_a_failure(tmp_path: Path) -> None:
    _project(tmp_path, failing=False)
    only_rest = subprocess.run([sys.executable, str(RUN_SUITE), "-q", "-p", "no:cacheprovider", "-k", "rest"],
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert only_rest.returncode == 0, only_rest.stdout + only_rest.stderr
    assert "server tests exited 5, the rest 0" in only_rest.stdout
