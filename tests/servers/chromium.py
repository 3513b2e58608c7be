"""Chromium for the `browser` tests: the Debian package's /usr/bin/chromium, or the one named.

Playwright drives it through `executable_path` (its own browser download is never used: it
is unreachable from CI machines). There is no throwaway: where no Chromium is installed the
run stops at once with the apt-get command, which also installs the CJK font the page's
Chinese labels and the screenshots need. The "URL" here is file://<path to the binary>.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from tests.servers.core import Provided, Registry, Unavailable, declared_in

URL_ENV = "PATROL_TEST_CHROMIUM"
DEFAULT_URL = "file:///usr/bin/chromium"
INSTALL = "apt-get install -y chromium fonts-noto-cjk"
START_TIMEOUT_S = 30.0  # nothing is started: Chromium is installed or the run stops


def binary(url: str) -> Path:
    return Path(urlsplit(url).path if url.startswith("file://") else url)


def present(url: str) -> bool:
    return binary(url).is_file()


def probe(url: str, timeout_s: float) -> None:
    """Chromium starts and says its version; a CJK font is installed (else 垃圾堆 renders as boxes)."""
    version = subprocess.run(
        [str(binary(url)), "--version"],
        capture_output=True,
        text=True,
        timeout=max(timeout_s, 10),
        check=True,
    )
    if "Chromium" not in version.stdout:
        raise RuntimeError(f"{binary(url)} --version said {version.stdout.strip()!r}, not Chromium")
    fonts = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=False)
    if not fonts.stdout.strip():
        raise RuntimeError(f"no CJK font is installed ({INSTALL})")


def start(registry: Registry, timeout_s: float) -> Provided:
    raise Unavailable(f"no Chromium at {binary(DEFAULT_URL)}")


COMPONENT = declared_in(
    __name__, "Chromium", extra_hint="deselect its tests with -m 'not browser'", present=present
)
