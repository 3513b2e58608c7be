"""Draw findings onto an image: boxes in the taxonomy colour, "key 中文名 0.87" labels.

OpenCV's putText has only Hershey fonts (no Chinese), so labels are drawn with Pillow and
a CJK-capable TrueType font found on the system: fontconfig's list of fonts covering
Chinese first, then common install paths of Noto Sans CJK, Source Han Sans, WenQuanYi and
Droid Sans Fallback; then the subset of Noto Sans CJK SC shipped with the install
(`vision.fonts`). Only if that file was removed do labels fall back to the English key
("garbage_pile 0.87").
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vision.detections import Detections
from vision.fonts import BUNDLED_CJK_FONT
from vision.taxonomy import Taxonomy

# Checked in order after fontconfig; Debian/Ubuntu, Fedora, Arch and macOS locations.
COMMON_CJK_FONTS: tuple[str, ...] = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf",
    "/usr/share/fonts/adobe-source-han-sans/SourceHanSansCN-Regular.otf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",
)
# Fallback for Latin labels when no CJK font exists; Pillow's bundled font otherwise.
_LATIN_FONTS: tuple[str, ...] = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",)


def fontconfig_cjk_fonts(timeout_s: float = 5.0) -> list[Path]:
    """Font files fontconfig says cover Chinese (`fc-list :lang=zh file`); [] without fontconfig."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return []
    try:
        listing = subprocess.run([fc_list, ":lang=zh", "file"], capture_output=True, text=True,
                                 timeout=timeout_s, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    files = [Path(line.strip().rstrip(":")) for line in listing.splitlines() if line.strip()]
    # Sans-serif Simplified Chinese faces read best at small sizes; put them first.
    return sorted(files, key=lambda p: (not any(t in p.name for t in ("Sans", "Hei", "hei", "SC")), str(p)))


def find_cjk_font() -> Path | None:
    """A font file that can draw Chinese labels, or None: the system's first (a full font
    covers any village name), the bundled subset when the system has none."""
    for candidate in [*fontconfig_cjk_fonts(), *map(Path, COMMON_CJK_FONTS), BUNDLED_CJK_FONT]:
        if candidate.is_file():
            return candidate
    return None


def _luminance(rgb: tuple[int, int, int]) -> float:
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b


@dataclass(frozen=True)
class LabelStyle:
    font_path: Path | None
    chinese: bool


class Annotator:
    """Draws findings; resolves the font once, so one Annotator serves a whole run."""

    def __init__(self, taxonomy: Taxonomy | None = None, *, font_path: Path | None | str = "auto") -> None:
        self.taxonomy = taxonomy or Taxonomy.default()
        if font_path == "auto":
            cjk = find_cjk_font()
            self.style = LabelStyle(cjk, True) if cjk else LabelStyle(self._latin_font(), False)
        elif font_path is None:
            self.style = LabelStyle(self._latin_font(), False)
        else:
            path = Path(font_path)
            if not path.is_file():
                raise FileNotFoundError(f"expected a font file, got {path} (not found)")
            self.style = LabelStyle(path, True)

    @staticmethod
    def _latin_font() -> Path | None:
        return next((Path(p) for p in _LATIN_FONTS if Path(p).is_file()), None)

    def label(self, class_key: str, score: float) -> str:
        if self.style.chinese and class_key in self.taxonomy:
            return f"{class_key} {self.taxonomy.get(class_key).name_zh} {score:.2f}"
        return f"{class_key} {score:.2f}"

    def _font(self, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
        if self.style.font_path is not None:
            return ImageFont.truetype(str(self.style.font_path), size)
        return ImageFont.load_default(size)

    def draw(self, image_bgr: np.ndarray, detections: Detections) -> Image.Image:
        """A new RGB Pillow image with the findings drawn; the input is left untouched."""
        canvas = Image.fromarray(np.ascontiguousarray(image_bgr[:, :, ::-1]))
        draw = ImageDraw.Draw(canvas)
        short_side = min(canvas.size)
        line = max(2, round(short_side / 400))
        font = self._font(max(12, round(short_side / 45)))
        keys = detections.data.get("class_key")
        for i in range(len(detections)):
            key = str(keys[i]) if keys is not None else str(detections.class_id[i])
            colour = self._rgb(key)
            x1, y1, x2, y2 = (float(v) for v in detections.xyxy[i])
            draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
            text = self.label(key, float(detections.confidence[i]))
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            text_w, text_h = right - left, bottom - top
            pad = max(2, line)
            # above the box when there is room, else inside its top edge
            ty = y1 - text_h - 2 * pad if y1 - text_h - 2 * pad >= 0 else y1
            tx = min(x1, max(0.0, canvas.width - text_w - 2 * pad))
            draw.rectangle((tx, ty, tx + text_w + 2 * pad, ty + text_h + 2 * pad), fill=colour)
            ink = (0, 0, 0) if _luminance(colour) > 150 else (255, 255, 255)
            draw.text((tx + pad - left, ty + pad - top), text, fill=ink, font=font)
        return canvas

    def _rgb(self, class_key: str) -> tuple[int, int, int]:
        if class_key in self.taxonomy:
            b, g, r = self.taxonomy.get(class_key).bgr
            return (r, g, b)
        return (255, 0, 0)
