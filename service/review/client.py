"""A Label Studio client with a Personal Access Token (1.23 refuses legacy `Token` auth).

The token comes from the settings, or, when none is set, from logging in as the admin: a
session GETs /user/login/ (CSRF cookie), POSTs the credentials, then POSTs /api/token/, which
answers with a new Personal Access Token (a JWT refresh token the SDK exchanges for access tokens).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from service.errors import ServiceError
from service.review.settings import ReviewSettings

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

TIMEOUT_S = 30.0


class LabelStudioAuthError(ServiceError, RuntimeError):
    """Label Studio refused the admin's credentials or gave no token."""


def personal_access_token(base_url: str, email: str, password: str) -> str:
    """A new Personal Access Token for `email`, made by logging in as Label Studio's web page does."""
    base = base_url.rstrip("/")
    with httpx.Client(base_url=base, timeout=TIMEOUT_S, follow_redirects=False) as http:
        http.get("/user/login/").raise_for_status()
        csrf = http.cookies.get("csrftoken")
        if not csrf:
            raise LabelStudioAuthError(f"{base}/user/login/ set no csrftoken cookie")
        login = http.post(
            "/user/login/",
            data={"email": email, "password": password, "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{base}/user/login/"},
        )
        if login.status_code != 302:
            raise LabelStudioAuthError(
                f"Label Studio refused the login of {email} (HTTP {login.status_code}); "
                f"check PATROL_LABEL_STUDIO_EMAIL and PATROL_LABEL_STUDIO_PASSWORD"
            )
        csrf = http.cookies.get("csrftoken") or csrf  # Django rotates it at login
        answer = http.post("/api/token/", headers={"X-CSRFToken": csrf, "Referer": f"{base}/"})
        if answer.status_code == 409:  # one token per user, shown once: we cannot read it back
            raise LabelStudioAuthError(
                f"{email} already has a Personal Access Token that this machine did not keep; set "
                "PATROL_LABEL_STUDIO_TOKEN to it, or revoke it in Label Studio (Account & Settings) "
                "and run again"
            )
        if answer.status_code not in (200, 201) or "token" not in answer.json():
            raise LabelStudioAuthError(
                f"POST /api/token/ answered HTTP {answer.status_code}: {answer.text[:200]}"
            )
        return str(answer.json()["token"])


def token_file(data_dir: Path) -> Path:
    """Where the token made at first start is kept (Label Studio shows a token only once)."""
    return data_dir / "label-studio" / "patrol-access-token"


def token_of(settings: ReviewSettings, cache: Path | None = None) -> str:
    """The configured Personal Access Token, else the one kept in `cache`, else a new one from the
    admin's password (kept in `cache`, readable by this user only)."""
    if settings.label_studio_token is not None:
        return settings.label_studio_token.get_secret_value()
    if cache is not None and cache.is_file():
        return cache.read_text(encoding="utf-8").strip()
    if settings.label_studio_password is None:
        raise LabelStudioAuthError(
            "set PATROL_LABEL_STUDIO_TOKEN (a Personal Access Token) or PATROL_LABEL_STUDIO_PASSWORD"
        )
    password = settings.label_studio_password.get_secret_value()
    token = personal_access_token(settings.label_studio_url, settings.label_studio_email, password)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(cache, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as fh:
            fh.write(token)
    return token


def connect(settings: ReviewSettings, token: str | None = None, *, cache: Path | None = None) -> LabelStudio:
    from label_studio_sdk import LabelStudio

    key = token or token_of(settings, cache)
    return LabelStudio(base_url=settings.label_studio_url, api_key=key, timeout=TIMEOUT_S)
