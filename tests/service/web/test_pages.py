"""The page shell, its settings and the API docs: public, local assets only, no data without a key."""

from __future__ import annotations

import re

import pytest

from service.settings import Settings
from service.web.pages import STATIC_DIR, content_security_policy

OUTSIDE = re.compile(r'(?:src|href)="(https?://[^"]+)"')


@pytest.mark.parametrize("path", ["/", "/report", "/docs", "/redoc"])
def test_pages_name_no_outside_asset(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert OUTSIDE.findall(response.text) == []
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', response.text):
        assert client.get(asset).status_code == 200, asset  # every asset it names is served


@pytest.mark.parametrize(("path", "title"), [("/", "patrol ledger"), ("/report", "monthly report")])
def test_every_page_starts_with_the_one_shared_head(client, path, title):
    text = client.get(path).text
    assert text.startswith('<!doctype html>\n<html lang="zh-CN">\n<head>\n  <meta charset="utf-8">')
    head = text[: text.index("</head>")]
    assert head.count("<meta charset=") == 1 and head.count('rel="icon"') == 1
    assert head.index('name="referrer"') < head.index("<title>") and title in head


def test_vendored_scripts_name_no_cdn():
    for script in (STATIC_DIR / "vendor").rglob("*.js"):
        text = script.read_text(errors="replace")
        assert not re.search(r"https://(cdn|unpkg|fonts\.googleapis)", text), script


def test_the_page_shell_holds_no_data_and_its_policy_keeps_the_browser_home(client):
    response = client.get("/")
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert "connect-src 'self'" in response.headers["content-security-policy"]
    assert client.get("/v1/issues").status_code == 401  # data needs a key, as before
    assert client.get("/web/config.json").json() == {
        "basemap_url": None,
        "basemap_crs": "wgs84",
        "basemap_attribution": "",
        "timezone": "Asia/Shanghai",
    }


def test_a_basemap_host_is_the_one_outside_origin_allowed():
    settings = Settings(basemap_url="https://{s}.tiles.example.cn/{z}/{x}/{y}.png", basemap_crs="gcj02")
    assert "img-src 'self' data: blob: https://*.tiles.example.cn;" in content_security_policy(settings)


@pytest.mark.parametrize(
    "url, error",
    [
        ("https://tiles.example.cn/{z}/{x}/{y}.png", None),
        ("https://tiles.example.cn/tile.png", "expected an XYZ tile template"),
        ("javascript:alert(1)//{z}{x}{y}", "should match pattern"),
        ('https://x/{z}/{x}/{y}"><script>', "should match pattern"),
    ],
)
def test_basemap_url_is_an_http_xyz_template(url, error):
    if error is None:
        assert Settings(basemap_url=url).basemap_url == url
    else:
        with pytest.raises(ValueError, match=error):
            Settings(basemap_url=url)
