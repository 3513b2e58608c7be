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


@pytest.mark.parametrize(("cores", "slots"), [(1, 1), (2, 2), (3, 3), (16, 4)])
def test_decode_slots_default_to_the_usable_cores_at_most_four(monkeypatch, cores, slots):
    monkeypatch.delenv("PATROL_MAX_CONCURRENT_DECODES", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)))
    assert Settings().max_concurrent_decodes == slots
    monkeypatch.setenv("PATROL_MAX_CONCURRENT_DECODES", "7")
    assert Settings().max_concurrent_decodes == 7  # a deployment's own figure wins


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


# -- secrets never appear in a settings error (issue #13) -------------------------------------------

PASSWORD = "Sup3rSecretPw"
SHORT_KEY = "short-key-9"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PATROL_DATABASE_URL": f"mysql://root:{PASSWORD}@db.example/x"}, "PATROL_DATABASE_URL"),
        ({"PATROL_BOOTSTRAP_ADMIN_KEY": SHORT_KEY}, "PATROL_BOOTSTRAP_ADMIN_KEY"),
        # A valid secret beside an invalid setting: the error is about the other one.
        (
            {"PATROL_DATABASE_URL": f"postgresql://u:{PASSWORD}@h/x", "PATROL_MAX_UPLOAD_BYTES": "abc"},
            "PATROL_MAX_UPLOAD_BYTES",
        ),
        ({"PATROL_BROKER_URL": f"redis://:{PASSWORD}@h:6379", "PATROL_JOB_QUEUE": "a b"}, "PATROL_JOB_QUEUE"),
    ],
)
def test_settings_errors_name_the_variable_and_never_a_secret(monkeypatch, env, named):
    from typer.testing import CliRunner

    from patrol_cli.main import app as patrol
    from service.settings import settings_error_text

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    text = settings_error_text(info.value)
    # Every way the error reaches a person: its own str (a Celery worker's traceback), the
    # text `patrol serve` prints, and the command's whole output.
    result = CliRunner().invoke(patrol, ["serve", "--port", "1"])
    assert result.exit_code == 2 and named in result.output
    for shown in (str(info.value), text, result.output):
        assert PASSWORD not in shown and SHORT_KEY not in shown


def test_settings_errors_show_harmless_values_and_urls_without_their_password(monkeypatch):
    from service.settings import redact_url, settings_error_text

    monkeypatch.setenv("PATROL_DATABASE_URL", f"mysql://root:{PASSWORD}@db.example/x")
    monkeypatch.setenv("PATROL_MAX_UPLOAD_BYTES", "abc")
    with pytest.raises(ValidationError) as info:
        Settings()
    text = settings_error_text(info.value)
    assert "(got 'mysql://root:***@db.example/x')" in text and "(got 'abc')" in text
    assert redact_url("sqlite:///var/l.db") == "sqlite:///var/l.db"
    assert redact_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
