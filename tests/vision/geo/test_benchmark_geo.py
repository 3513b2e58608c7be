"""benchmarks/geo.py runs and reports the keys the issue asks for (numbers live in the benchmark)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "geo.py"


def test_benchmark_reports_required_keys(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("geo_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "geo_benchmark", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    assert module.main(["--json", "--cameras", "4", "--seed", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in (
        "nadir_median_m",
        "nadir_p95_m",
        "oblique_median_m",
        "tower_median_m",
        "ortho_area_error_pct",
    ):
        assert isinstance(result[key], float) and result[key] >= 0
    # Without noise the model round-trips exactly; with noise it does not; RTK beats standalone GNSS.
    assert result["noise_free_nadir_median_m"] < 1e-6
    assert result["nadir_median_m"] > 0.01
    assert result["nadir_median_m"] < result["gnss_nadir_median_m"]
