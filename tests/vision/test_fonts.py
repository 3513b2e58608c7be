"""The bundled CJK font: present with its licence, small, and covering what the office writes."""

from __future__ import annotations

from fontTools.ttLib import TTFont

from vision.fonts import BUNDLED_CJK_FAMILY, BUNDLED_CJK_FONT, BUNDLED_CJK_LICENSE
from vision.taxonomy import Taxonomy

REPORT_WORDS = "红榜黑榜月报村网格发现确认按期整改销号反弹面积平方米合计，。：（）"


def test_bundled_font_is_small_and_licensed():
    assert BUNDLED_CJK_FONT.stat().st_size < 2 * 1024 * 1024
    assert "SIL Open Font License" in BUNDLED_CJK_LICENSE.read_text(encoding="utf-8")


def test_bundled_font_covers_the_taxonomy_and_report_words():
    font = TTFont(BUNDLED_CJK_FONT)
    assert font["name"].getDebugName(1) == BUNDLED_CJK_FAMILY
    cmap = font.getBestCmap()
    names = "".join(entry.name_zh for entry in Taxonomy.default())
    missing = sorted({c for c in names + REPORT_WORDS + "Ab09%" if ord(c) not in cmap})
    assert missing == []
