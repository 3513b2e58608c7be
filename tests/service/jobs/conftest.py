"""Job tests use small survey limits, so refused archives stay small too."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import Settings

SURVEY_LIMITS = {
    "max_survey_members": 6,
    "max_survey_uncompressed_bytes": 200_000,
    "max_survey_bytes": 2_000_000,
}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        verification_min_gap_minutes=30,
        **SURVEY_LIMITS,
    )
