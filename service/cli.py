"""`patrol serve`, `patrol keys`, `patrol regions import`, `patrol demo`: settings from PATROL_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.demo import demo_command

keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
regions_app = typer.Typer(help="Villages and grids.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("serve", help="Run the ledger API (FastAPI on uvicorn); migrates the database first.")(serve)
    app.add_typer(keys_app, name="keys")
    app.add_typer(regions_app, name="regions")
    app.command("demo", help="Run the ledger end to end on the bundled samples (needs models/default).")(
        demo_command
    )


def _settings():  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from service.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        typer.echo(f"invalid PATROL_* settings:\n{exc}", err=True)
        raise typer.Exit(2) from None


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
) -> None:
    import uvicorn

    from service.api.app import create_app

    uvicorn.run(create_app(_settings()), host=host, port=port, proxy_headers=True)


@keys_app.command("create", help="Create an API key and print it once; only its hash is stored.")
def keys_create(
    role: Annotated[str, typer.Option(help="citizen, worker, reviewer, ingest or admin.")],
    name: Annotated[str, typer.Option(help="Who or what holds the key.")] = "",
) -> None:
    from datetime import UTC, datetime

    from service.auth import Role, create_key
    from service.db.session import make_engine, make_session_factory, session_scope
    from service.migrations import runner

    try:
        parsed = Role(role)
    except ValueError:
        typer.echo(f"unknown role {role!r}; expected one of: {', '.join(r.value for r in Role)}", err=True)
        raise typer.Exit(2) from None
    settings = _settings()
    engine = make_engine(settings.database_url)
    runner.upgrade(engine)
    with session_scope(make_session_factory(engine)) as session:
        row, token = create_key(
            session, role=parsed, name=name or f"{parsed.value} key", now=datetime.now(UTC)
        )
        key_id = row.id
    engine.dispose()
    typer.echo(f"created {parsed.value} key {key_id}; store it now, it is not shown again:", err=True)
    typer.echo(token)


@keys_app.command("list", help="List API keys (id, role, name, created, revoked); never the keys themselves.")
def keys_list() -> None:
    from sqlalchemy import select

    from service.db.models import ApiKey
    from service.db.session import make_session_factory

    engine = _migrated_engine()
    with make_session_factory(engine)() as session:
        for key in session.scalars(select(ApiKey).order_by(ApiKey.id)):
            revoked = key.revoked_at.isoformat() if key.revoked_at else "-"
            typer.echo(f"{key.id}\t{key.role}\t{key.name}\t{key.created_at.isoformat()}\trevoked={revoked}")
    engine.dispose()


@keys_app.command("revoke", help="Revoke an API key by id; requests with it get 401 from then on.")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="The id shown by `patrol keys list`.")]) -> None:
    from datetime import UTC, datetime

    from service.db.models import ApiKey
    from service.db.session import make_session_factory, session_scope

    engine = _migrated_engine()
    with session_scope(make_session_factory(engine)) as session:
        key = session.get(ApiKey, key_id)
        if key is not None and key.revoked_at is None:
            key.revoked_at = datetime.now(UTC)
    engine.dispose()
    if key is None:
        typer.echo(f"no API key {key_id}; see `patrol keys list`", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked key {key_id} ({key.role}, {key.name})", err=True)


def _migrated_engine():  # type: ignore[no-untyped-def]
    from service.db.session import make_engine
    from service.migrations import runner

    engine = make_engine(_settings().database_url)
    runner.upgrade(engine)
    return engine


@regions_app.command(
    "import",
    help="Import villages and grids from a GeoJSON FeatureCollection "
    "(properties: name, kind = village | grid).",
)
def regions_import(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]) -> None:
    import json
    from datetime import UTC, datetime

    from service.db.session import lock_ledger, make_engine, make_session_factory, session_scope
    from service.errors import InvalidInputError
    from service.ledger.regions import import_regions, parse_feature_collection
    from service.migrations import runner

    try:
        drafts = parse_feature_collection(json.loads(file.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        typer.echo(f"{file}: not valid GeoJSON text: {exc}", err=True)
        raise typer.Exit(2) from None
    except InvalidInputError as exc:
        typer.echo(f"{file}: {exc}", err=True)
        raise typer.Exit(2) from None
    settings = _settings()
    engine = make_engine(settings.database_url)
    runner.upgrade(engine)
    now = datetime.now(UTC)
    with session_scope(make_session_factory(engine)) as session:
        lock_ledger(session, now)
        result = import_regions(session, drafts, now)
        created = [(r.kind, r.name, r.id, r.parent_id) for r in result.created]
    engine.dispose()
    for kind, name, region_id, parent_id in created:
        typer.echo(f"{kind}\t{name}\tid={region_id}\tparent={parent_id if parent_id is not None else '-'}")
    typer.echo(
        f"{len(created)} created, {len(result.skipped)} already present, "
        f"{result.issues_reassigned} issues moved to a smaller region",
        err=True,
    )
