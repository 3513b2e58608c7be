"""PATROL_* settings: environment parsing, URL normalisation, refusals that say what to do."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.settings import Settings


def test_defaults_run_on_a_laptop(monkeypatch):
    for name in ("PATROL_DATABASE_URL", "PATROL_BROKER_URL", "PATROL_BOOTSTRAP_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url == "sqlite:///./var/patrol.db" and settings.is_sqlite
    assert settings.broker_url is None and settings.bootstrap_admin_key is None
    assert settings.max_upload_bytes == 50 * 1024 * 1024
    assert settings.rebound_window_days == 90 and settings.verification_passes == 2


def test_environment_with_the_patrol_prefix(monkeypatch, tmp_path):
    monkeypatch.setenv("PATROL_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("PATROL_BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("PATROL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PATROL_DEDUP_RADIUS_M", '{"garbage_pile": 40}')
    monkeypatch.setenv("PATROL_BOOTSTRAP_ADMIN_KEY", "k" * 40)
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://postgres@127.0.0.1:5432/test"  # psycopg 3 driver
    assert settings.broker_url == "redis://127.0.0.1:6379/0" and settings.data_dir == tmp_path
    assert settings.dedup_radius_m == {"garbage_pile": 40.0}
    assert settings.bootstrap_admin_key.get_secret_value() == "k" * 40
    assert "k" * 40 not in repr(settings)  # secrets stay out of logs


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"database_url": "mysql://x/y"}, "expected a sqlite:/// or postgresql+psycopg:// URL"),
        ({"dedup_radius_m": {"litter": 10}}, "unknown classes ['litter']"),
        ({"dedup_window_days_by_class": {"garbage_pile": 0}}, "expected positive values"),
        ({"timezone": "Mars/Olympus"}, "IANA time zone"),
        ({"max_upload_bytes": 10}, "greater than or equal to 1024"),
        ({"database": "sqlite:///x.db"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(overrides, message):
    with pytest.raises(ValidationError) as caught:
        Settings(**overrides)
    assert message in str(caught.value)
