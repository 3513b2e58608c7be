"""Label Studio for the `server` tests: the configured one, or a throwaway (never one found at a
default address: a developer's own Label Studio holds real reviews).

The throwaway is `patrol review server`'s recipe (service/review/server.py): the label-studio
virtualenv outside the clone (`make label-studio`, PATROL_LABEL_STUDIO_VENV), on a free loopback
port, SQLite and media in its temp folder, an admin made on first start. A fresh data folder
runs Django's migrations first: about a minute on an idle machine, several on a busy one, hence
the long timeout and the session scope (one server for all the tests that need it).

A fresh data folder is migrated once per Label Studio install: the first throwaway's database
(an SQLite backup taken once it answers), its secret key and its admin's credentials are kept
beside the virtualenv (`TEMPLATE`, readable by this user only), and later sessions start from a
copy, skipping the migrations.

The URL the tests get carries the admin's Personal Access Token as its password,
`http://pat:<token>@127.0.0.1:<port>` (`split_url` takes it apart); a configured server is named
the same way in PATROL_TEST_LABEL_STUDIO_URL, and its admin's "email:password" (for the browser
tests' sign-in form) in PATROL_TEST_LABEL_STUDIO_ADMIN.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from service.review.client import personal_access_token
from service.review.server import LabelStudioMissing, is_healthy, launch_plan
from service.review.settings import ReviewSettings
from tests.servers.core import (
    Provided,
    Registry,
    StartFailed,
    Throwaway,
    Unavailable,
    declared_in,
    start_with_free_port,
)

URL_ENV = "PATROL_TEST_LABEL_STUDIO_URL"
DEFAULT_URL = None  # nothing to find: its URL carries a token, which no default address knows
ADMIN_ENV = "PATROL_TEST_LABEL_STUDIO_ADMIN"
INSTALL = "make label-studio   (label-studio 1.23.2 in its own virtualenv, PATROL_LABEL_STUDIO_VENV)"
START_TIMEOUT_S = 900.0
ADMIN_EMAIL = "reviewer@patrol.test"
DATABASE = "label_studio.sqlite3"
CREDENTIALS = "admin.json"


def split_url(url: str) -> tuple[str, str]:
    """(base URL, Personal Access Token) of a URL as this component hands it out."""
    parts = urlsplit(url)
    if not parts.password:
        raise ValueError(f"expected http://pat:<token>@host:port, got one without a token ({parts.hostname})")
    return f"{parts.scheme}://{parts.hostname}:{parts.port}", parts.password


def admin_sign_in(settings: ReviewSettings | None = None) -> tuple[str, str]:
    """(email, password) of the admin for Label Studio's sign-in form (the browser tests): from
    ADMIN_ENV ("email:password") with a configured server, else the kept admin's, which every
    throwaway started from the kept database has. (A first throwaway that lost the race to keep
    it, two sessions migrating at once, has its own password: its browser tests fail to sign in.)"""
    configured = os.environ.get(ADMIN_ENV)
    if configured:
        email, _, password = configured.partition(":")
        return email, password
    template = template_dir(settings or ReviewSettings(label_studio_email=ADMIN_EMAIL))
    return ADMIN_EMAIL, str(json.loads((template / CREDENTIALS).read_text())["password"])


def probe(url: str, timeout_s: float) -> None:
    from label_studio_sdk import LabelStudio

    base, token = split_url(url)
    if not is_healthy(base, timeout_s):
        raise ConnectionError(f"{base}/health does not answer UP")
    LabelStudio(base_url=base, api_key=token, timeout=timeout_s).users.whoami()


def template_dir(settings: ReviewSettings) -> Path:
    return settings.label_studio_venv / "patrol-test-template"


def _from_template(template: Path, data_dir: Path) -> tuple[str, str] | None:
    """(password, token) of the kept admin, with the kept database copied into data_dir; None
    when nothing is kept yet."""
    try:
        kept = json.loads((template / CREDENTIALS).read_text())
    except (OSError, ValueError):
        return None
    data_dir.mkdir(parents=True)
    for name in (DATABASE, ".env"):
        shutil.copy2(template / name, data_dir / name)
    return str(kept["password"]), str(kept["token"])


def _keep_template(template: Path, data_dir: Path, password: str, token: str) -> None:
    """Keeps the migrated database (an online SQLite backup), its secret key and the admin."""
    if template.exists():
        return
    partial = template.with_name(f"{template.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700, parents=True)
    with sqlite3.connect(data_dir / DATABASE) as source, sqlite3.connect(partial / DATABASE) as copy:
        source.backup(copy)
    shutil.copy2(data_dir / ".env", partial / ".env")
    descriptor = os.open(partial / CREDENTIALS, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "w") as fh:
        json.dump({"password": password, "token": token}, fh)
    try:
        partial.rename(template)
    except OSError:  # another session kept one meanwhile
        shutil.rmtree(partial, ignore_errors=True)


def start(registry: Registry, timeout_s: float) -> Provided:
    settings = ReviewSettings(label_studio_email=ADMIN_EMAIL)
    throwaway = Throwaway(registry, "label-studio")
    data_dir = throwaway.folder / "data"
    try:
        launch_plan(settings, data_dir=data_dir, port=0, password="")
    except LabelStudioMissing as exc:
        throwaway.stop()
        raise Unavailable(str(exc)) from None
    template = template_dir(settings)
    kept = _from_template(template, data_dir)
    password, token = kept if kept is not None else (secrets.token_urlsafe(16), "")

    def launch(port: int) -> Callable[[], bool]:
        plan = launch_plan(settings, data_dir=data_dir, port=port, password=password)
        throwaway.spawn(plan.argv, env=plan.env, stop_signal=signal.SIGTERM, death_signal=signal.SIGTERM)
        return lambda: is_healthy(plan.url, 2.0)

    port = start_with_free_port(throwaway, launch, timeout_s)
    base = f"http://127.0.0.1:{port}"
    if not token:
        try:
            token = personal_access_token(base, ADMIN_EMAIL, password)
        except Exception as exc:
            raise StartFailed(f"Label Studio is up but gave no Personal Access Token: {exc}") from exc
        _keep_template(template, data_dir, password, token)
    origin = f"label-studio from {settings.label_studio_venv}"
    return Provided(COMPONENT, f"http://pat:{token}@127.0.0.1:{port}", throwaway, origin=origin)


COMPONENT = declared_in(__name__, "Label Studio", extra_hint="deselect its tests with -m 'not server'")
