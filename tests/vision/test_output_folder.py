"""An output folder: new or empty is used, an earlier run's output is replaced, anything else refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from vision.output_folder import replace_earlier_output


class FolderError(Exception):
    pass


def prepare(out: Path) -> None:
    replace_earlier_output(
        out, marker="card.json", earlier="an earlier run", folders=("images",),
        files=("card.json", "log.txt"), make=("images/train", "images/val"), error=FolderError,
    )


def test_a_new_folder_is_made_with_its_subfolders(tmp_path: Path) -> None:
    prepare(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["train", "val"]


def test_an_earlier_output_is_replaced_and_nothing_else_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare(out)
    (out / "images" / "train" / "old.jpg").write_bytes(b"x")
    for name in ("card.json", "log.txt", "notes.md"):
        (out / name).write_text(name)
    prepare(out)
    assert not (out / "images" / "train" / "old.jpg").exists() and (out / "images" / "val").is_dir()
    assert sorted(p.name for p in out.iterdir()) == ["images", "notes.md"]


def test_a_file_or_a_foreign_folder_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("mine")
    with pytest.raises(FolderError, match="exists and is not a folder"):
        prepare(tmp_path / "file")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("mine")
    with pytest.raises(FolderError, match=r"holds no card\.json; choose an empty or new folder \(an earlier"):
        prepare(tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["thesis.tex"]
