"""Routes for the page shell, its settings, the offline API docs and the static files.

Only what is needed before sign-in is public here (PUBLIC_ROUTES in service/api/app.py names
each route): the HTML, the JS/CSS, and the map settings (no data). A Content-Security-Policy
on the page keeps the browser from loading anything from elsewhere, the optional basemap's
host excepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from service.settings import Settings

STATIC_DIR = Path(__file__).parent / "static"
STATIC_URL = "/static"
VENDOR_URL = f"{STATIC_URL}/vendor"
DOCS_URL, REDOC_URL, OAUTH2_REDIRECT_URL = "/docs", "/redoc", "/docs/oauth2-redirect"
# What every page's head starts with; each page's file holds the rest (title, styles, scripts) and its body.
PAGE_HEAD = f"""<!doctype html>
<html lang="zh-CN">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <link rel="icon" href="{VENDOR_URL}/swagger-ui/favicon-32x32.png">
"""


def content_security_policy(settings: Settings) -> str:
    basemap = ""
    if settings.basemap_url:
        parts = urlsplit(settings.basemap_url)
        # a {s} subdomain placeholder becomes a wildcard: a.tile..., b.tile...
        basemap = " " + f"{parts.scheme}://{parts.netloc}".replace("{s}", "*")
    return (
        "default-src 'self'; script-src 'self'; connect-src 'self'; "
        f"img-src 'self' data: blob:{basemap}; "
        "style-src 'self' 'unsafe-inline'; "  # Leaflet positions tiles and markers with style attributes
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )


def page_config(settings: Settings) -> dict[str, Any]:
    return {
        "basemap_url": settings.basemap_url,
        "basemap_crs": settings.basemap_crs,
        "basemap_attribution": settings.basemap_attribution,
        "timezone": settings.timezone,
    }


def build_router(settings: Settings, *, title: str, openapi_url: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    csp = content_security_policy(settings)
    config = page_config(settings)

    def shell(name: str) -> HTMLResponse:
        return HTMLResponse(
            PAGE_HEAD + (STATIC_DIR / name).read_text(encoding="utf-8"),
            headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache"},
        )

    @router.get("/", name="web_page")
    def page() -> HTMLResponse:
        return shell("index.html")

    @router.get("/report", name="report_page")
    def report() -> HTMLResponse:
        """The monthly report's shell: it fetches /v1/reports/monthly with the signed-in key."""
        return shell("report.html")

    @router.get("/web/config.json", name="web_config")
    def web_config() -> dict[str, Any]:
        return config

    @router.get(DOCS_URL, name="swagger_ui_html")
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - API",
            oauth2_redirect_url=OAUTH2_REDIRECT_URL,
            swagger_js_url=f"{VENDOR_URL}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR_URL}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{VENDOR_URL}/swagger-ui/favicon-32x32.png",
        )

    @router.get(OAUTH2_REDIRECT_URL, name="swagger_ui_redirect")
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get(REDOC_URL, name="redoc_html")
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{VENDOR_URL}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{VENDOR_URL}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )

    return router


def mount(app: FastAPI, settings: Settings) -> None:
    """The page, the docs and the static files, on an app built with docs_url=None, redoc_url=None."""
    app.include_router(
        build_router(settings, title=app.title, openapi_url=app.openapi_url or "/openapi.json")
    )
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
