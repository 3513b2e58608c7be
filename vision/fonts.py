"""The CJK font shipped with the install, for machines without one (most servers in China's
county offices have no Chinese font, and a container never does).

A subset of Noto Sans CJK SC (SIL OFL 1.1; `data/fonts/OFL.txt`, rebuilt by
`data/fonts/make_subset.py`): ASCII, GB 2312 symbols and its 3,755 level-1 hanzi, which cover
the taxonomy's names, report labels and nearly every village name, in 1.8 MB.
"""

from __future__ import annotations

from pathlib import Path

FONTS_DIR = Path(__file__).parent / "data" / "fonts"
BUNDLED_CJK_FONT = FONTS_DIR / "NotoSansCJKsc-Regular-subset.otf"
BUNDLED_CJK_FAMILY = "Noto Sans CJK SC"
BUNDLED_CJK_LICENSE = FONTS_DIR / "OFL.txt"
