"""The review bridge's settings, from `PATROL_LABEL_STUDIO_*` and `PATROL_REVIEW_*` variables.

Kept beside the service's `Settings` rather than in it: only the review commands and routes
read them. Secrets are never defaulted; each command says which one it misses.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.settings import PLACEHOLDER_SECRETS

LABEL_STUDIO_VERSION = "1.23.2"


def default_label_studio_venv() -> Path:
    # Outside the clone: its pins clash with ours, and a fresh clone should reuse it (like CI's venv).
    return Path.home() / ".cache" / "patrol-vision" / f"label-studio-{LABEL_STUDIO_VERSION}"


class ReviewSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PATROL_", frozen=True, hide_input_in_errors=True)

    label_studio_venv: Path = Field(
        default_factory=default_label_studio_venv,
        description="The virtualenv holding label-studio (`make label-studio` creates it).",
    )
    label_studio_url: str = Field(
        default="http://127.0.0.1:8080", pattern=r"^https?://[^\s]+$", description="Label Studio's base URL."
    )
    label_studio_email: str = Field(
        default="admin@patrol.local", min_length=3, description="Label Studio's admin user (its login)."
    )
    label_studio_password: SecretStr | None = Field(
        default=None, description="The admin's password: `patrol review server` creates the admin with it."
    )
    label_studio_token: SecretStr | None = Field(
        default=None,
        description="A Personal Access Token; unset: one is obtained by logging in with the password.",
    )
    label_studio_project: str = Field(
        default="patrol-vision review", min_length=1, max_length=50, description="The project's title."
    )
    review_public_url: str = Field(
        default="http://127.0.0.1:8000",
        pattern=r"^https?://[^\s]+$",
        description="This service's URL as Label Studio reaches it (evidence images, the webhook).",
    )
    review_webhook_secret: SecretStr | None = Field(
        default=None, description="Shared secret Label Studio sends in the X-Patrol-Webhook-Secret header."
    )
    review_url_secret: SecretStr | None = Field(
        default=None, description="Key of the HMAC that signs evidence URLs handed to Label Studio."
    )
    review_url_ttl_s: int = Field(
        default=14 * 24 * 3600,
        ge=60,
        le=366 * 24 * 3600,
        description="How long a signed evidence URL stays valid (reviewers open tasks days later).",
    )
    review_push_batch: int = Field(default=100, ge=1, le=5000, description="Tasks per import request.")

    @field_validator("label_studio_password", "review_webhook_secret", "review_url_secret")
    @classmethod
    def _no_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if secret.strip().lower() in PLACEHOLDER_SECRETS or len(secret) < 12:
            raise ValueError(f"expected a random secret, got a {len(secret)}-character placeholder")
        return value

    @property
    def label_studio_bin(self) -> Path:
        return self.label_studio_venv / "bin" / "label-studio"

    def required(self, name: str) -> str:
        """A secret's value; ValueError naming its variable when it is unset."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"PATROL_{name.upper()} is not set")
        return str(value.get_secret_value())

