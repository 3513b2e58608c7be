"""Survey inputs on disk under the data dir, under names the server makes up.

An upload streams into `jobs/incoming/<uuid4>.part` while it is hashed and counted; a new
job adopts it as `jobs/<job id>/input`, a repeat upload of a known survey deletes it. The
client's filename is never used for anything.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

INCOMING = "incoming"


@dataclass(frozen=True)
class StoredUpload:
    path: Path
    content_hash: str
    size: int


@dataclass(frozen=True)
class JobInputStore:
    data_dir: Path

    @property
    def root(self) -> Path:
        return self.data_dir / "jobs"

    def incoming_path(self) -> Path:
        folder = self.root / INCOMING
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{uuid.uuid4().hex}.part"

    def adopt(self, upload: StoredUpload, job_id: str) -> str:
        """Move an upload to its job's folder; returns the path relative to the data dir."""
        if len(job_id) != 32 or not all(c in "0123456789abcdef" for c in job_id):
            raise ValueError(f"expected a uuid4 hex job id, got {job_id!r}")
        relative = f"jobs/{job_id}/input"
        target = self.data_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(upload.path, target)
        return relative

    def path_of(self, relative: str) -> Path:
        root = self.data_dir.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root / "jobs"):
            raise ValueError(f"job input {relative!r} lies outside the data dir's jobs folder")
        return path


class HashingWriter:
    """Writes chunks to a file while hashing and counting them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = path.open("xb")
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._fh.write(chunk)
        self._digest.update(chunk)
        self.size += len(chunk)

    def close(self) -> StoredUpload:
        self._fh.close()
        return StoredUpload(self.path, self._digest.hexdigest(), self.size)

    def discard(self) -> None:
        self._fh.close()
        self.path.unlink(missing_ok=True)
