"""`patrol keys create`, `patrol regions import`, `patrol serve --help`, settings from the environment."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.api.app import create_app
from service.settings import Settings
from tests.service.api.test_regions import TOWNSHIP
from vision.cli.main import app as patrol

runner = CliRunner()


@pytest.fixture
def env(monkeypatch, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATROL_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("PATROL_DATA_DIR", str(tmp_path / "data"))
    return Settings()


def test_keys_create_prints_a_working_key_once(env):
    result = runner.invoke(patrol, ["keys", "create", "--role", "reviewer", "--name", "审核员 李四"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("pv_")
    with TestClient(create_app(env, analyzer=object())) as client:
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/v1/issues", headers=headers).status_code == 200  # reviewers read the ledger
        assert (
            client.post("/v1/regions", headers=headers, json={}).status_code == 403
        )  # but do not import regions


def test_keys_create_refuses_an_unknown_role(env):
    result = runner.invoke(patrol, ["keys", "create", "--role", "boss"])
    assert (
        result.exit_code == 2 and "expected one of: citizen, worker, reviewer, ingest, admin" in result.output
    )


def test_regions_import(env, tmp_path):
    path = tmp_path / "township.geojson"
    path.write_text(json.dumps(TOWNSHIP, ensure_ascii=False), encoding="utf-8")
    result = runner.invoke(patrol, ["regions", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "5 created" in result.output and "东村第一网格" in result.output
    again = runner.invoke(patrol, ["regions", "import", str(path)])
    assert "0 created, 5 already present" in again.output


def test_regions_import_reports_a_bad_file(env, tmp_path):
    path = tmp_path / "bad.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [{"type": "Feature", "properties": {}, "geometry": None}],
            }
        )
    )
    result = runner.invoke(patrol, ["regions", "import", str(path)])
    assert result.exit_code == 2 and "feature 0: expected a non-empty string property 'name'" in result.output


def test_bad_environment_is_reported_not_raised(monkeypatch):
    monkeypatch.setenv("PATROL_DATABASE_URL", "mysql://nobody@nowhere/db")
    result = runner.invoke(patrol, ["keys", "create", "--role", "admin"])
    assert result.exit_code == 2 and "invalid PATROL_* settings" in result.output


def test_serve_has_host_and_port_options():
    result = runner.invoke(patrol, ["serve", "--help"])
    assert result.exit_code == 0 and "--host" in result.output and "--port" in result.output


def test_keys_list_and_revoke(env):
    token = runner.invoke(patrol, ["keys", "create", "--role", "worker", "--name", "网格员"]).stdout.strip()
    listed = runner.invoke(patrol, ["keys", "list"])
    assert listed.exit_code == 0 and "\tworker\t网格员\t" in listed.output and token not in listed.output
    key_id = listed.stdout.split("\t", 1)[0]
    assert runner.invoke(patrol, ["keys", "revoke", key_id]).exit_code == 0
    with TestClient(create_app(env, analyzer=object())) as client:
        assert client.get("/v1/regions", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert runner.invoke(patrol, ["keys", "revoke", "999"]).exit_code == 1
