"""`patrol serve`, `patrol keys`, `patrol regions`, `patrol demo`: settings from PATROL_* variables.

The ledger database comes from PATROL_DATABASE_URL or `--database-url`. `serve` creates and
migrates it; `keys` and `regions` use an existing one and refuse to create an SQLite file
silently in some folder (`keys create` and `regions import` take `--create-database`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, TypedDict

import typer

from service.cameras.demo import camera_demo_command
from service.demo import demo_command
from service.review.cli import review_app

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from service.settings import Settings
    from vision.cli.output import Justify

keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
regions_app = typer.Typer(help="Villages and grids.", no_args_is_help=True)
alerts_app = typer.Typer(help="Camera alerts and their deliveries.", no_args_is_help=True)
surveys_app = typer.Typer(help="Survey jobs in the ledger.", no_args_is_help=True)
# How long `patrol watch` may take to stop once asked: the readers' read timeout (10 s), a frame
# being analysed and the dispatcher's last delivery fit well inside it; past it the stop is stuck.
WATCH_STOP_GRACE_S = 45.0


def register(app: typer.Typer) -> None:
    app.command("serve", help="Run the ledger API (FastAPI on uvicorn); migrates the database first.")(serve)
    app.add_typer(keys_app, name="keys")
    app.add_typer(regions_app, name="regions")
    app.command("watch", help="Watch the cameras of a cameras YAML: findings to the ledger, alerts.")(watch)
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(surveys_app, name="surveys")
    app.add_typer(review_app, name="review")
    app.command("demo", help="Run the ledger end to end on the bundled samples (needs models/default).")(
        demo_command
    )
    app.command(
        "demo-camera", help="Replay a bundled smoke photo as a watchtower camera; show the alert arriving."
    )(camera_demo_command)


DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL of the ledger: sqlite:///path.db or postgresql+psycopg://user@host/db "
        "[default: PATROL_DATABASE_URL, else sqlite:///./var/patrol.db]",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")]
CreateDatabaseOption = Annotated[
    bool,
    typer.Option(
        "--create-database", help="Create (and migrate) the SQLite ledger file if it does not exist yet."
    ),
]


def _settings(database_url: str | None = None) -> Settings:
    from pydantic import ValidationError

    from service.settings import Settings, settings_error_text

    try:
        return Settings(database_url=database_url) if database_url else Settings()
    except ValidationError as exc:
        typer.echo(f"invalid PATROL_* settings:\n{settings_error_text(exc)}", err=True)
        raise typer.Exit(2) from None


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    database_url: DatabaseUrlOption = None,
) -> None:
    import uvicorn

    from service.api.app import create_app

    app = create_app(_settings(database_url))
    uvicorn.run(app, host=host, port=port, proxy_headers=True, **server_options())


class ServerOptions(TypedDict):
    http: Literal["httptools"]
    loop: Literal["uvloop", "asyncio"]


def server_options() -> ServerOptions:
    """uvicorn's parser and event loop for the API: httptools' C parser and uvloop, named rather
    than left to "auto", which falls back to pure-Python h11 and asyncio without a word when they
    are missing (they were, until they became dependencies: pyproject.toml's comment has what
    they save). uvloop does not build on Windows."""
    return ServerOptions(http="httptools", loop="asyncio" if sys.platform == "win32" else "uvloop")


@keys_app.command("create", help="Create an API key and print it once; only its hash is stored.")
def keys_create(
    role: Annotated[str, typer.Option(help="citizen, worker, reviewer, ingest or admin.")],
    name: Annotated[str, typer.Option(help="Who or what holds the key.")] = "",
    database_url: DatabaseUrlOption = None,
    create_database: CreateDatabaseOption = False,
) -> None:
    from datetime import UTC, datetime

    from service.auth import Role, create_key
    from service.db.session import make_session_factory, session_scope

    try:
        parsed = Role(role)
    except ValueError:
        typer.echo(f"unknown role {role!r}; expected one of: {', '.join(r.value for r in Role)}", err=True)
        raise typer.Exit(2) from None
    engine = _migrated_engine(database_url, create=create_database)
    with session_scope(make_session_factory(engine)) as session:
        row, token = create_key(
            session, role=parsed, name=name or f"{parsed.value} key", now=datetime.now(UTC)
        )
        key_id = row.id
    engine.dispose()
    typer.echo(f"created {parsed.value} key {key_id}; store it now, it is not shown again:", err=True)
    typer.echo(token)


@keys_app.command("list", help="List API keys (id, role, name, created, revoked); never the keys themselves.")
def keys_list(database_url: DatabaseUrlOption = None, as_json: JsonOption = False) -> None:
    from sqlalchemy import select

    from service.db.models import ApiKey

    def read(session: Session) -> list[dict[str, Any]]:
        return [
            {
                "id": key.id,
                "role": key.role,
                "name": key.name,
                "created_at": key.created_at.isoformat(),
                "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
            }
            for key in session.scalars(select(ApiKey).order_by(ApiKey.id))
        ]

    _print_listing(
        _read_ledger(database_url, read),
        as_json,
        title="API keys",
        columns=(("id", "right"), "role", "name", "created", "revoked"),
        row=lambda k: (str(k["id"]), k["role"], k["name"], k["created_at"], k["revoked_at"] or "-"),
        empty="no API keys yet; create one with `patrol keys create --role admin`",
    )


@keys_app.command("revoke", help="Revoke an API key by id; requests with it get 401 from then on.")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The id shown by `patrol keys list`.")],
    database_url: DatabaseUrlOption = None,
) -> None:
    from datetime import UTC, datetime

    from service.db.models import ApiKey
    from service.db.session import make_session_factory, session_scope

    engine = _migrated_engine(database_url)
    with session_scope(make_session_factory(engine)) as session:
        key = session.get(ApiKey, key_id)
        if key is not None and key.revoked_at is None:
            key.revoked_at = datetime.now(UTC)
    engine.dispose()
    if key is None:
        typer.echo(f"no API key {key_id}; see `patrol keys list`", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked key {key_id} ({key.role}, {key.name})", err=True)


def _migrated_engine(database_url: str | None, *, create: bool = False) -> Engine:
    """The ledger's engine, migrated; exit 2 when the settings are bad or an SQLite ledger file is
    missing and `create` is false (a mistyped path or the wrong folder would start an empty ledger)."""
    from service.db.session import make_engine
    from service.migrations import runner

    url = _settings(database_url).database_url
    missing = _missing_sqlite_file(url)
    if missing is not None and not create:
        import os

        origin = (
            "--database-url"
            if database_url
            else "PATROL_DATABASE_URL"
            if os.environ.get("PATROL_DATABASE_URL")
            else "the default; set PATROL_DATABASE_URL or pass --database-url"
        )
        typer.echo(
            f"error: no ledger database at {missing} ({url}, from {origin}). Point at an existing "
            "ledger, or create this one: run `patrol serve` once with this URL (it migrates on start) "
            "or pass --create-database to `patrol keys create` or `patrol regions import`.",
            err=True,
        )
        raise typer.Exit(2)
    engine = make_engine(url)
    runner.upgrade(engine)
    return engine


def _missing_sqlite_file(database_url: str) -> Path | None:
    """The absolute path of an SQLite URL's database file when that file does not exist; else None."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    name = url.database
    if url.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return None
    if name.startswith("file:"):  # an SQLite URI filename (?uri=true)
        name = name.removeprefix("file:").split("?", 1)[0]
    path = Path(name).expanduser().resolve()
    return None if path.exists() else path


def _read_ledger(
    database_url: str | None, read: Callable[[Session], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """`read` in a session on the existing ledger (see `_migrated_engine`)."""
    from service.db.session import make_session_factory

    engine = _migrated_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return read(session)
    finally:
        engine.dispose()


def _print_listing(
    items: list[dict[str, Any]],
    as_json: bool,
    *,
    title: str,
    columns: Sequence[str | tuple[str, Justify]],
    row: Callable[[dict[str, Any]], Sequence[str]],
    empty: str,
) -> None:
    """A JSON list on stdout, or a table that folds long cells (nothing cut); `empty` on stderr."""
    from rich.console import Console

    from vision.cli.output import folding_table, print_json

    if as_json:
        print_json(items)
        return
    if not items:
        typer.echo(empty, err=True)
        return
    table = folding_table(title, columns)
    for item in items:
        table.add_row(*row(item))
    Console().print(table)


@regions_app.command(
    "import",
    help="Import villages and grids from a GeoJSON FeatureCollection "
    "(properties: name, kind = village | grid).",
)
def regions_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    database_url: DatabaseUrlOption = None,
    create_database: CreateDatabaseOption = False,
) -> None:
    import json
    from datetime import UTC, datetime

    from service.db.session import lock_ledger, make_session_factory, session_scope
    from service.errors import InvalidInputError
    from service.ledger.regions import import_regions, parse_feature_collection

    try:
        drafts = parse_feature_collection(json.loads(file.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        typer.echo(f"{file}: not valid GeoJSON text: {exc}", err=True)
        raise typer.Exit(2) from None
    except InvalidInputError as exc:
        typer.echo(f"{file}: {exc}", err=True)
        raise typer.Exit(2) from None
    engine = _migrated_engine(database_url, create=create_database)
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


@regions_app.command("list", help="List villages and grids (id, kind, name, the region it lies in, area).")
def regions_list(database_url: DatabaseUrlOption = None, as_json: JsonOption = False) -> None:
    from service.ledger.regions import all_regions

    def read(session: Session) -> list[dict[str, Any]]:
        by_id = all_regions(session)
        return [
            {
                "id": r.id,
                "kind": r.kind,
                "name": r.name,
                "parent_id": r.parent_id,
                "parent": by_id[r.parent_id].name if r.parent_id in by_id else None,
                "area_m2": round(r.area_m2, 1),
            }
            for r in by_id.values()
        ]

    _print_listing(
        _read_ledger(database_url, read),
        as_json,
        title="villages and grids",
        columns=(("id", "right"), "kind", "name", "in", ("area m²", "right")),
        row=lambda r: (str(r["id"]), r["kind"], r["name"], r["parent"] or "-", f"{r['area_m2']:,.0f}"),
        empty="no villages or grids yet; import them with `patrol regions import FILE.geojson`",
    )


def watch(
    cameras_file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="Cameras, rules, webhooks (YAML)."),
    ],
    database_url: DatabaseUrlOption = None,
    for_seconds: Annotated[
        float | None, typer.Option("--for-seconds", min=0.1, help="Stop after this long (default: Ctrl-C).")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Watch only this camera id (repeatable): one process per group of cameras, all on the "
            "same database. Default: every camera of the file and of the API.",
        ),
    ] = None,
) -> None:
    """One JSON line per analysed frame that found something, on stdout; states on stderr.

    Watches the file's cameras and those stored through the API (`/v1/cameras`), picking up
    changes within seconds; rules, webhooks and loudspeakers come from the file."""
    import faulthandler
    import json
    import signal
    import threading
    import time

    from service.cameras.config import CameraConfigError, WatchConfig
    from service.cameras.runner import CameraService
    from service.runtime import Runtime

    try:
        config = WatchConfig.load(cameras_file)
    except CameraConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    engine = _migrated_engine(database_url, create=True)
    engine.dispose()
    runtime = Runtime.build(_settings(database_url))
    runtime.settings.data_dir.mkdir(parents=True, exist_ok=True)

    def show(result: Any) -> None:
        if result.found or result.recorded:
            typer.echo(json.dumps({
                "camera": result.camera_id, "preset": result.preset,
                "frame_time_s": round(result.frame_time_s, 3),
                "found": result.found, "masked": result.masked, "held": result.held,
                "suppressed": result.suppressed,
                "recorded": [{"class_key": k, "outcome": o, "issue_id": i} for k, o, i in result.recorded],
                "alerts": result.alert_ids,
            }, ensure_ascii=False), nl=True)

    try:
        service = CameraService(runtime, config, on_result=show, only=frozenset(only) if only else None)
    except CameraConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    # `kill -USR1` prints every thread's stack to stderr: how a watch that seems stuck is diagnosed
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    service.start()
    typer.echo(f"watching {len(service.cameras())} cameras; Ctrl-C stops", err=True)
    deadline = None if for_seconds is None else time.monotonic() + for_seconds
    try:
        # In slices, not one long wait: a SIGTERM the kernel hands to another thread (FFmpeg's,
        # ONNX Runtime's) does not interrupt the main thread's wait, and Python runs the handler
        # only when the main thread wakes: one wait(90) let SIGTERM go unheeded for 90 s.
        while not done.wait(0.5) and (deadline is None or time.monotonic() < deadline):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        # A stop that hangs (a reader stuck in FFmpeg, a database that does not answer) must not
        # keep the process past its supervisor's patience: after WATCH_STOP_GRACE_S every thread's
        # stack goes to stderr and the process exits 1. Alerts and deliveries are rows already, so
        # the next process sends what this one had not.
        faulthandler.dump_traceback_later(WATCH_STOP_GRACE_S, exit=True)
        try:
            service.stop()
            runtime.close()
        finally:
            faulthandler.cancel_dump_traceback_later()


@surveys_app.command(
    "changes",
    help="Compare an orthomosaic survey in the ledger with an earlier one, in this process: each new "
    "structure an illegal_structure candidate (as POST /v1/surveys/{id}/changes); prints the job as JSON.",
)
def surveys_changes(
    later: Annotated[str, typer.Argument(help="The later orthomosaic survey's job id.")],
    before: Annotated[str, typer.Option("--before", help="The earlier orthomosaic survey's job id.")],
    database_url: DatabaseUrlOption = None,
    note: Annotated[str, typer.Option("--note", help="Kept with the change frames.")] = "",
) -> None:
    import json

    from service.db.models import ApiKey
    from service.jobs.change_request import change_detector_version, change_request, stored_request
    from service.jobs.dispatch import InProcessDispatcher
    from service.jobs.errors import SurveyInputError
    from service.jobs.models import Job, JobKind
    from service.jobs.queue import summarize
    from service.jobs.runner import JobRunner
    from service.jobs.store import JobInputStore
    from service.jobs.submit import JobServices
    from service.jobs.work import claim_and_execute
    from service.runtime import Runtime

    _migrated_engine(database_url).dispose()  # exit 2 for no ledger here
    settings = _settings(database_url)
    ctx = Runtime.build(settings)
    store = JobInputStore(settings.data_dir)
    try:
        with ctx.session_factory() as session:
            jobs = [session.get(Job, job_id) for job_id in (before, later)]
            if jobs[0] is None or jobs[1] is None:
                _refuse(f"no survey {before if jobs[0] is None else later} in this ledger")
            key = session.get(ApiKey, jobs[1].api_key_id) if jobs[1].api_key_id is not None else None
            if key is None:
                _refuse(f"the key that submitted survey {later} is gone; submit the survey again")
            try:
                comparison = change_request(jobs[0], jobs[1], store)
            except SurveyInputError as exc:
                _refuse(str(exc))
        # as the submitting key of the later survey: its candidates are that key's like its survey's
        services = JobServices(settings, ctx.session_factory, ctx, InProcessDispatcher(JobRunner(ctx)), store)
        submission = services.submit(
            stored_request(comparison, store),
            kind=JobKind.changes,
            model_version=change_detector_version(),
            key=key,
            note=note,
            now=ctx.clock(),
        )
        claim_and_execute(ctx, job_id=submission.job.id)  # nothing to claim when it finished before
        with ctx.session_factory() as session:
            job = session.get(Job, submission.job.id)
            if job is None:
                raise typer.Exit(1)
            counts = summarize(session, job.id).model_dump()
            out = {"job": job.id, "state": job.state, "error": job.error, **counts}
    finally:
        ctx.close()
    typer.echo(json.dumps(out, ensure_ascii=False))
    if out["state"] != "succeeded":
        raise typer.Exit(1)


def _refuse(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@alerts_app.command("list", help="Alerts with their deliveries' states (newest first).")
def alerts_list(
    database_url: DatabaseUrlOption = None,
    as_json: JsonOption = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
) -> None:
    from service.cameras.views import alert_listing

    _print_listing(
        _read_ledger(database_url, lambda session: alert_listing(session, limit=limit)),
        as_json,
        title="camera alerts",
        columns=(("id", "right"), "rule", "camera", "class", ("issue", "right"), "created", "deliveries"),
        row=lambda a: (str(a["id"]), a["rule"], f"{a['camera_id']}/{a['preset']}", a["class_key"],
                       str(a["issue_id"]), a["created_at"],
                       ", ".join(f"{d['target']}: {d['state']}" for d in a["deliveries"]) or "-"),
        empty="no alerts yet",
    )


@alerts_app.command("resend", help="Queue an alert's dead-lettered deliveries again (a watcher sends them).")
def alerts_resend(
    alert_id: Annotated[int, typer.Argument(help="The id shown by `patrol alerts list`.")],
    include_delivered: Annotated[bool, typer.Option("--all", help="Also delivered and skipped.")] = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    from datetime import UTC, datetime

    from service.cameras.delivery import resend_alert
    from service.cameras.models import Alert
    from service.db.session import make_session_factory, session_scope

    engine = _migrated_engine(database_url)
    with session_scope(make_session_factory(engine)) as session:
        if session.get(Alert, alert_id) is None:
            queued = None
        else:
            queued = resend_alert(session, alert_id, datetime.now(UTC), include_delivered=include_delivered)
    engine.dispose()
    if queued is None:
        typer.echo(f"no alert {alert_id}; see `patrol alerts list`", err=True)
        raise typer.Exit(1)
    typer.echo(f"alert {alert_id}: {len(queued)} deliveries queued again {queued}", err=True)
