"""vision/annotate.py with the bundled font: Chinese labels drawn as glyphs, not tofu boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vision import annotate
from vision.annotate import Annotator, find_cjk_font
from vision.fonts import BUNDLED_CJK_FONT


def _ink(annotator: Annotator, char: str) -> np.ndarray:
    canvas = Image.new("L", (48, 48), 0)
    ImageDraw.Draw(canvas).text((4, 4), char, fill=255, font=annotator._font(36))
    return np.asarray(canvas) > 127


def test_garbage_pile_renders_with_real_glyphs():
    annotator = Annotator(font_path=BUNDLED_CJK_FONT)
    assert annotator.label("garbage_pile", 0.87) == "garbage_pile 垃圾堆 0.87"
    tofu = _ink(annotator, "\u3400")  # CJK extension A: not in the subset, drawn as .notdef
    glyphs = [_ink(annotator, c) for c in "垃圾堆"]
    for glyph in glyphs:
        assert glyph.sum() > 50  # ink, not a blank
        assert np.count_nonzero(glyph != tofu) > 100  # not the missing-glyph box
    assert np.count_nonzero(glyphs[0] != glyphs[1]) > 100 and np.count_nonzero(glyphs[1] != glyphs[2]) > 100


def test_the_bundled_font_is_used_when_the_system_has_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no fc-list
    monkeypatch.setattr(annotate, "COMMON_CJK_FONTS", ())
    assert find_cjk_font() == BUNDLED_CJK_FONT
    assert Annotator().label("straw_burning", 0.5) == "straw_burning 秸秆焚烧 0.50"
