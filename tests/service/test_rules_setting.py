"""The service runs the blue roof rule beside its model unless PATROL_RULES says otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.photo_analyzer import PipelineAnalyzer
from service.settings import Settings
from vision.detectors.blue_roof import BlueRoofDetector


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path}/x.db", data_dir=tmp_path / "data", **overrides)  # type: ignore[arg-type]


def test_the_service_pipeline_runs_the_blue_roof_rule_by_default(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert settings.rules == ["blue_roof"]
    analyzer = PipelineAnalyzer(settings)
    try:
        assert analyzer.pipeline().rules.names == [BlueRoofDetector().name]
    finally:
        analyzer.close()


def test_rules_can_be_turned_off_and_unknown_ones_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATROL_RULES", "[]")
    assert _settings(tmp_path).rules == []
    with pytest.raises(ValidationError, match="valid rules: blue_roof"):
        _settings(tmp_path, rules=["red_roof"])
