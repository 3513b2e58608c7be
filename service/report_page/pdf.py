"""The monthly report as a printable PDF (WeasyPrint), set in the bundled CJK font.

WeasyPrint is imported here only, on the first PDF: it loads Pango through cffi, which the
rest of the service does not need. Its URL fetcher is replaced by one that serves the bundled
font and refuses everything else, so a report never reaches the network (the office's
machines often have none) nor reads other files named in region names or notes.
"""

from __future__ import annotations

from typing import Any

from PIL import ImageFile

from service.errors import ServiceError
from vision.fonts import BUNDLED_CJK_FONT

FONT_URL = "patrol-font:cjk"
# A family name of our own: the system's Noto Sans CJK, where installed, cannot stand in for it unseen.
CJK_FAMILY = "Patrol CJK"
FONT_FACE = f'@font-face {{ font-family: "{CJK_FAMILY}"; src: url("{FONT_URL}"); }}'


class ReportRenderError(ServiceError):
    """WeasyPrint (or the Pango it needs) is missing from this install."""


def html_to_pdf(html: str) -> bytes:
    try:
        from weasyprint import CSS, HTML
        from weasyprint.text.fonts import FontConfiguration
    except (ImportError, OSError) as exc:  # OSError: libpango missing
        raise ReportRenderError(
            f"PDF reports need WeasyPrint and Pango (apt-get install libpango-1.0-0 libpangoft2-1.0-0): {exc}"
        ) from exc
    finally:
        # weasyprint.images sets Pillow's process-wide LOAD_TRUNCATED_IMAGES on import, which would
        # make the source reader accept truncated uploads (vision.image_io refuses them); the report
        # draws no raster images, so the flag goes back to Pillow's default.
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class FontOnly(URLFetcher):
        def fetch(self, url: str, headers: Any = None) -> Any:
            if url != FONT_URL:
                raise ValueError(f"the report fetches nothing but its font, got {url!r}")
            return URLFetcherResponse(url, BUNDLED_CJK_FONT.read_bytes(), {"Content-Type": "font/otf"})

    fetcher, fonts = FontOnly(), FontConfiguration()
    face = CSS(string=FONT_FACE, font_config=fonts, url_fetcher=fetcher)
    pdf = HTML(string=html, url_fetcher=fetcher).write_pdf(stylesheets=[face], font_config=fonts)
    if pdf is None:  # only when a target is given
        raise ReportRenderError("WeasyPrint returned no PDF")
    return pdf
