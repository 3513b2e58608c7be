"""Label Studio as a local server: its command line, its environment, and waiting for it to answer.

One recipe for `patrol review server` and the tests' throwaway server (tests/servers): loopback,
SQLite, a data folder of its own, the admin created from the settings on first start. The first
start runs Django's migrations (about a minute on an idle machine, several when it is busy), so
the wait is long, bounded, and says what it is waiting for.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from service.errors import ServiceError
from service.review.settings import ReviewSettings

HEALTH_PATH = "/health"


class LabelStudioMissing(ServiceError, RuntimeError):
    """The label-studio virtualenv is not installed where the settings say."""


@dataclass(frozen=True)
class LaunchPlan:
    argv: tuple[str, ...]
    env: dict[str, str]
    url: str
    data_dir: Path


def launch_plan(
    settings: ReviewSettings, *, data_dir: Path, port: int, password: str, host: str = "127.0.0.1"
) -> LaunchPlan:
    """How to start Label Studio on host:port with its SQLite database and media under `data_dir`."""
    binary = settings.label_studio_bin
    if not binary.is_file():
        raise LabelStudioMissing(
            f"no label-studio at {binary}; install it with `make label-studio` "
            f"(or point PATROL_LABEL_STUDIO_VENV at a virtualenv that has it)"
        )
    env = {
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": settings.label_studio_email,
        "LABEL_STUDIO_PASSWORD": password,
        # No sign-up page, and no call home for a newer version (the machines here are offline).
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        # Tasks point at our API's signed URLs; Label Studio fetches nothing else for them.
        "SSRF_PROTECTION_ENABLED": "false",
    }
    argv = (str(binary), "start", "--no-browser", "--host", host, "--port", str(port))
    return LaunchPlan(argv, env, f"http://{host}:{port}", data_dir)


def merged_env(plan: LaunchPlan) -> dict[str, str]:
    """The caller's environment with the plan's variables; PATROL_* secrets are not passed on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_LABEL_STUDIO_")}
    env.update(plan.env)
    return env


def is_healthy(url: str, timeout_s: float = 3.0) -> bool:
    try:
        response = httpx.get(url.rstrip("/") + HEALTH_PATH, timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and '"UP"' in response.text.replace(" ", "")


def wait_healthy(
    url: str,
    *,
    timeout_s: float,
    alive: Callable[[], bool] = lambda: True,
    progress: Callable[[float], None] | None = None,
    poll_s: float = 1.0,
) -> float:
    """Seconds until `url`/health answered UP; TimeoutError after timeout_s, RuntimeError when
    `alive` says the process is gone. `progress(elapsed_s)` is called every poll."""
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if is_healthy(url):
            return elapsed
        if not alive():
            raise RuntimeError(f"Label Studio exited before {url}{HEALTH_PATH} answered")
        if elapsed > timeout_s:
            raise TimeoutError(f"Label Studio at {url} did not answer {HEALTH_PATH} within {timeout_s:.0f} s")
        if progress is not None:
            progress(elapsed)
        time.sleep(poll_s)
