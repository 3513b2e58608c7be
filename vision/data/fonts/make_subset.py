"""Rebuild NotoSansCJKsc-Regular-subset.otf (run by hand; nothing imports this).

    cd vision/data/fonts && python make_subset.py NotoSansCJK-VF.otf.ttc NotoSansCJKsc-Regular-subset.otf

The source is Noto Sans CJK's variable collection (SIL OFL 1.1), e.g. from the PyPI
package manimgx-fonts-cjk 2026.9.26.post1 (`pip download --no-deps manimgx-fonts-cjk`).
The whole font is 33 MB; the office needs the taxonomy's names, village and grid names and
report labels, so we keep ASCII and GB 2312's symbols and level-1 hanzi (the 3,755 most
common characters) at weight 400: 1.8 MB. Subsetting first makes instancing take minutes
instead of tens of minutes. The outlines stay CFF2 (FreeType and WeasyPrint read it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont
from fontTools.varLib import instancer

SC_INDEX = 2  # JP, KR, SC, TC, HK in the collection
EXTRA = "垃圾堆秸秆焚烧乱堆乱放占道违章建筑蓝色彩钢瓦红黑榜"  # all in level 1 today; kept explicit


def gb2312_level1() -> str:
    chars = []
    for high in range(0xA1, 0xD8):  # rows A1-A9 symbols, B0-D7 level-1 hanzi
        for low in range(0xA1, 0xFF):
            try:
                chars.append(bytes([high, low]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return "".join(chars)


def build(source: Path, target: Path) -> None:
    font = TTFont(source, fontNumber=SC_INDEX)
    options = subset.Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(map(chr, range(0x20, 0x7F))) + gb2312_level1() + EXTRA)
    subsetter.subset(font)
    regular = instancer.instantiateVariableFont(font, {"wght": 400})
    names = regular["name"]
    names.setName("Regular", 2, 3, 1, 0x409)
    names.setName("NotoSansCJKsc-Regular-subset", 3, 3, 1, 0x409)
    names.setName("Noto Sans CJK SC Regular subset", 4, 3, 1, 0x409)
    names.setName("NotoSansCJKsc-Regular-subset", 6, 3, 1, 0x409)
    names.removeNames(nameID=16)  # the variable font's typographic family and style ("Thin")
    names.removeNames(nameID=17)
    regular.save(target)


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(sys.argv[2]))
