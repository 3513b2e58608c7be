"""`make test`'s pytest run: the `server` tests and the rest as two pytest processes at once.

    python tests/run_suite.py [pytest arguments]

pytest runs one test at a time, so the serial suite kept about one of a CI machine's two cores
busy (load average 1.3) and took 27 minutes on an AVX2-only EPYC, where the same suite had taken
12 on an earlier machine. The `server` tests (real PostgreSQL, Redis, Label Studio, RTSP
servers) spend much of their time waiting on those servers and on subprocesses; the rest are
mostly CPU. Run side by side they fill both cores.

The two groups share nothing that could collide: every test that touches PostgreSQL or Redis is
marked `server` (the marker says so), each server test makes its own database, queue names and
throwaway servers on free ports, and the rest use SQLite files and temp folders of their own.

The rest stream to the terminal as usual. The server group writes to a log that is printed
whole when it ends, so the two groups' progress lines do not interleave. A `-m EXPR` given is
kept: each group runs `(EXPR) and server` or `(EXPR) and not server`. The exit status is the
first failing group's status. A group with no selected test (pytest's 5) is not a failure,
unless neither group selected anything. `PATROL_TEST_SPLIT=0` runs one plain pytest instead.
SIGINT and SIGTERM are passed on to both, so each stops its own servers.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

NO_TESTS = 5  # pytest's exit status when the selection is empty


def split_marker(args: Sequence[str]) -> tuple[list[str], str | None]:
    """The arguments without `-m EXPR` / `-mEXPR` / `-m=EXPR`, and EXPR (None when absent)."""
    rest: list[str] = []
    expr: str | None = None
    items = iter(args)
    for arg in items:
        if arg == "-m":
            expr = next(items, None)
        elif arg.startswith("-m="):
            expr = arg[3:]
        elif arg.startswith("-m") and not arg.startswith("--"):
            expr = arg[2:]
        else:
            rest.append(arg)
    return rest, expr


def group_marker(expr: str | None, group: str) -> str:
    return group if expr is None else f"({expr}) and {group}"


def combined_status(statuses: Sequence[int]) -> int:
    """The first failing status; 0 when every group passed or selected nothing, but not all."""
    failing = [s for s in statuses if s not in (0, NO_TESTS)]
    if failing:
        return failing[0]
    return NO_TESTS if all(s == NO_TESTS for s in statuses) else 0


def main(argv: Sequence[str]) -> int:
    pytest = [sys.executable, "-m", "pytest"]
    if os.environ.get("PATROL_TEST_SPLIT", "1") == "0":
        return subprocess.call([*pytest, *argv])
    args, expr = split_marker(argv)
    log = Path(tempfile.mkdtemp(prefix="patrol-tests-")) / "server-tests.log"
    children: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    with log.open("wb") as out:
        # The server group starts first: Label Studio's first start is its longest setup.
        children.append(subprocess.Popen([*pytest, "-m", group_marker(expr, "server"), *args],
                                         stdout=out, stderr=subprocess.STDOUT))
        print(f"run_suite: server tests in a process of their own (pid {children[0].pid}), "
              f"their output in {log} and below when they end", flush=True)
        children.append(subprocess.Popen([*pytest, "-m", group_marker(expr, "not server"), *args]))
        rest_status = children[1].wait()
        statuses = [children[0].wait(), rest_status]
    print(f"\n{'=' * 30} the server tests' output {'=' * 30}", flush=True)
    sys.stdout.buffer.write(log.read_bytes())
    sys.stdout.flush()
    shutil.rmtree(log.parent)  # printed whole above
    status = combined_status(statuses)
    print(f"run_suite: server tests exited {statuses[0]}, the rest {statuses[1]}: {status}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
