"""EvidenceStore writes: folders made on first use only, rollback deletes what was written."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from service.evidence import EvidenceStore

HASHES = ("ab" + "0" * 62, "ab" + "1" * 62)  # both under frames/ab/


@pytest.fixture
def pixels() -> np.ndarray:
    image = np.zeros((48, 64, 3), np.uint8)
    image[10:30, 20:40] = (0, 128, 255)
    return image


def test_the_first_write_makes_its_folder_and_reads_back(tmp_path: Path, pixels: np.ndarray) -> None:
    store = EvidenceStore(tmp_path / "data")
    relative = store.save_frame(pixels, HASHES[0])
    decoded = cv2.imread(str(store.path_of(relative)))
    assert relative == f"frames/ab/{HASHES[0]}.jpg"
    assert decoded is not None and decoded.shape == pixels.shape
    assert not list((tmp_path / "data" / "frames" / "ab").glob(".*.tmp"))  # no temp file left behind


def test_writes_into_an_existing_folder_make_no_mkdir_call(
    tmp_path: Path, pixels: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mkdir before every write was a syscall per image for nothing (issue #13)."""
    store = EvidenceStore(tmp_path)
    store.save_frame(pixels, HASHES[0])
    store.save_crop(pixels, (20, 10, 40, 30))
    calls: list[Path] = []
    real_mkdir = Path.mkdir

    def counted(self: Path, *args: object, **kwargs: object) -> None:
        calls.append(self)
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", counted)
    store.save_frame(pixels, HASHES[1])
    store.save_crop(pixels, (0, 0, 16, 16))
    assert calls == []
    assert len(store.written) == 4


def test_discard_deletes_what_the_unit_of_work_wrote(tmp_path: Path, pixels: np.ndarray) -> None:
    store = EvidenceStore(tmp_path)
    frame = store.save_frame(pixels, HASHES[0])
    crop = store.save_crop(pixels, (20, 10, 40, 30))
    store.discard_written()
    assert not (tmp_path / frame).exists() and not (tmp_path / crop).exists()
    assert store.written == []
