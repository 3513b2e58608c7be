"""`patrol keys`, `patrol regions`, `patrol serve --help`: the database from the environment or
--database-url, never created silently; listings as tables or JSON."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from patrol_cli.main import app as patrol
from service.api.app import create_app
from service.settings import Settings
from tests.service.api.test_regions import TOWNSHIP

runner = CliRunner()


@pytest.fixture
def env(monkeypatch, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATROL_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("PATROL_DATA_DIR", str(tmp_path / "data"))
    return Settings()


def test_keys_create_prints_a_working_key_once(env):
    result = runner.invoke(
        patrol, ["keys", "create", "--role", "reviewer", "--name", "审核员 李四", "--create-database"]
    )
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
    result = runner.invoke(patrol, ["regions", "import", str(path), "--create-database"])
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
    assert "--database-url" in result.output


def test_keys_list_and_revoke(env):
    token = runner.invoke(
        patrol, ["keys", "create", "--role", "worker", "--name", "网格员", "--create-database"]
    ).stdout.strip()
    listed = runner.invoke(patrol, ["keys", "list", "--json"])
    assert listed.exit_code == 0 and token not in listed.output
    (key,) = json.loads(listed.stdout)
    assert key["role"] == "worker" and key["name"] == "网格员" and key["revoked_at"] is None
    assert runner.invoke(patrol, ["keys", "revoke", str(key["id"])]).exit_code == 0
    with TestClient(create_app(env, analyzer=object())) as client:
        assert client.get("/v1/regions", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert runner.invoke(patrol, ["keys", "revoke", "999"]).exit_code == 1


def test_keys_and_regions_refuse_to_create_a_database_silently(env, tmp_path):
    for args in (["keys", "list"], ["keys", "revoke", "1"], ["keys", "create", "--role", "admin"],
                 ["regions", "list"], ["regions", "import", str(_township(tmp_path))]):
        result = runner.invoke(patrol, args)
        assert result.exit_code == 2, (args, result.output)
        assert f"no ledger database at {tmp_path / 'cli.db'}" in result.output
        assert "--create-database" in result.output and "patrol serve" in result.output
    assert not (tmp_path / "cli.db").exists()


def test_database_url_option_overrides_the_environment(env, tmp_path):
    other = tmp_path / "other.db"
    url = ["--database-url", f"sqlite:///{other}"]
    assert runner.invoke(patrol, ["keys", "list", *url]).exit_code == 2
    created = runner.invoke(patrol, ["keys", "create", "--role", "admin", "--create-database", *url])
    assert created.exit_code == 0, created.output
    assert other.exists() and not (tmp_path / "cli.db").exists()
    listed = runner.invoke(patrol, ["keys", "list", "--json", *url])
    assert [k["role"] for k in json.loads(listed.stdout)] == ["admin"]


def test_keys_list_as_json_and_as_a_table_that_keeps_names_whole(env):
    name = "网格员 王五 (东村第一网格, 早班)"
    runner.invoke(patrol, ["keys", "create", "--role", "worker", "--name", name, "--create-database"])
    runner.invoke(patrol, ["keys", "revoke", "1"])
    listed = runner.invoke(patrol, ["keys", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (key,) = json.loads(listed.stdout)  # nothing but the document on stdout
    assert key["id"] == 1 and key["role"] == "worker" and key["name"] == name
    assert key["created_at"] and key["revoked_at"]
    table = runner.invoke(patrol, ["keys", "list"], env={"COLUMNS": "40"})
    assert table.exit_code == 0 and "…" not in table.stdout
    assert "worker" in table.stdout


def test_regions_list_as_json_and_as_a_table(env, tmp_path):
    runner.invoke(patrol, ["regions", "import", str(_township(tmp_path)), "--create-database"])
    listed = runner.invoke(patrol, ["regions", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    regions = json.loads(listed.stdout)
    assert len(regions) == 5
    by_name = {r["name"]: r for r in regions}
    grid = by_name["东村第一网格"]
    assert grid["kind"] == "grid" and grid["parent"] == "东村" and grid["area_m2"] > 0
    table = runner.invoke(patrol, ["regions", "list"], env={"COLUMNS": "80"})
    assert table.exit_code == 0 and "…" not in table.stdout
    assert all(r["name"] in table.stdout for r in regions)
    narrow = runner.invoke(patrol, ["regions", "list"], env={"COLUMNS": "30"})
    assert narrow.exit_code == 0 and "…" not in narrow.stdout  # folded onto more lines, not cut


def _township(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "township.geojson"
    path.write_text(json.dumps(TOWNSHIP, ensure_ascii=False), encoding="utf-8")
    return path


def test_serve_runs_on_httptools_and_uvloop():
    """The parser and loop `patrol serve` asks for are the installed C ones; "auto" would fall back
    to h11 and asyncio silently (pyproject.toml says what they save)."""
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from service.cli import server_options

    options = server_options()
    config = uvicorn.Config(create_app(Settings(database_url="sqlite://"), analyzer=object()), **options)
    config.load()  # fails here if httptools is not installed
    assert config.http_protocol_class is HttpToolsProtocol
    assert options["loop"] == "uvloop"
    import uvloop

    uvloop.new_event_loop().close()  # what uvicorn's "uvloop" setup creates
