"""A folder a command writes its output into, replacing what an earlier run left there.

The review export and the dataset build both write into a folder the user names: a new or empty
one is used as it is; one that holds the marker file (the manifest or card) an earlier run wrote
is that run's output, and what the run writes is removed first; any other folder is the user's
and is refused, never emptied.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path


def replace_earlier_output(
    out: Path,
    *,
    marker: str,
    earlier: str,
    folders: Sequence[str],
    files: Sequence[str],
    make: Sequence[str],
    error: Callable[[str], Exception],
) -> None:
    """Make `out` ready: refuse (raise `error(reason)`) a file or a foreign non-empty folder,
    remove an earlier run's `folders` and `files`, then create the folders in `make`.
    `earlier` names that run in the refusal, e.g. "an earlier export"."""
    if out.exists() and not out.is_dir():
        raise error(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / marker).is_file():
            raise error(
                f"output folder {out} is not empty and holds no {marker}; choose an empty or new "
                f"folder ({earlier} is replaced)"
            )
        for sub in folders:
            shutil.rmtree(out / sub, ignore_errors=True)
        for name in files:
            (out / name).unlink(missing_ok=True)
    for sub in make:
        (out / sub).mkdir(parents=True, exist_ok=True)
