"""`patrol review`: reviewers' work in Label Studio (its server, the project, tasks, decisions).

Settings: PATROL_LABEL_STUDIO_* (venv, URL, admin email and password, token, project title) and
PATROL_REVIEW_* (this service's URL as Label Studio sees it, the webhook and URL-signing secrets);
see service/review/settings.py. The ledger is PATROL_DATABASE_URL's, as for `patrol serve`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from service.review.export_cli import export_command

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

    from service.review.settings import ReviewSettings
    from service.settings import Settings

review_app = typer.Typer(
    help="Review in Label Studio: its server, the project, tasks, decisions.", no_args_is_help=True
)
review_app.command("export", help="Reviewed frames as a dataset for `patrol datasets build`.")(export_command)

FIRST_START_TIMEOUT_S = 900.0  # migrations on a fresh data dir: about a minute idle, minutes when busy


def _settings() -> tuple[Settings, ReviewSettings]:
    from pydantic import ValidationError

    from service.review.settings import ReviewSettings
    from service.settings import Settings, settings_error_text

    try:
        settings = Settings()
    except ValidationError as exc:
        typer.echo(f"invalid PATROL_* settings:\n{settings_error_text(exc)}", err=True)
        raise typer.Exit(2) from None
    try:
        return settings, ReviewSettings()
    except ValidationError as exc:  # its fields are secrets or harmless: never show a value
        lines = [f"PATROL_{str(e['loc'][0]).upper()}: {e['msg']}" for e in exc.errors(include_url=False)]
        typer.echo("invalid PATROL_* settings:\n" + "\n".join(lines), err=True)
        raise typer.Exit(2) from None


def _connect(settings: Settings, review: ReviewSettings) -> LabelStudio:
    from service.review.client import LabelStudioAuthError, connect, token_file

    try:
        return connect(review, cache=token_file(settings.data_dir))
    except LabelStudioAuthError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _required(review: ReviewSettings, name: str) -> str:
    try:
        return review.required(name)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _project_id(ls: LabelStudio, review: ReviewSettings) -> int:
    """The review project's id; push and reconcile need `patrol review setup` to have made it."""
    from service.review.project import find_project_id

    project_id = find_project_id(ls, review.label_studio_project)
    if project_id is None:
        typer.echo(f"no project {review.label_studio_project!r}: run `patrol review setup` first", err=True)
        raise typer.Exit(2)
    return project_id


@review_app.command("server", help="Run Label Studio on loopback (SQLite, data under PATROL_DATA_DIR).")
def server(
    port: Annotated[int | None, typer.Option(help="TCP port [default: PATROL_LABEL_STUDIO_URL's]")] = None,
    timeout_s: Annotated[float, typer.Option(help="Longest wait for /health.")] = FIRST_START_TIMEOUT_S,
) -> None:
    import signal
    import subprocess
    from urllib.parse import urlsplit

    from service.review.client import LabelStudioAuthError, token_file, token_of
    from service.review.server import LabelStudioMissing, launch_plan, merged_env, wait_healthy

    settings, review = _settings()
    password = _required(review, "label_studio_password")
    data_dir = (settings.data_dir / "label-studio").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        chosen = port or urlsplit(review.label_studio_url).port or 8080
        plan = launch_plan(review, data_dir=data_dir, port=chosen, password=password)
    except LabelStudioMissing as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    log_path = data_dir / "server.log"
    typer.echo(f"starting Label Studio at {plan.url} (data {data_dir}, log {log_path})", err=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(plan.argv, env=merged_env(plan), stdout=log, stderr=subprocess.STDOUT)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (a service manager, `timeout`) ends Label Studio too

    signal.signal(signal.SIGTERM, stop)
    shown = [-1]

    def progress(elapsed_s: float) -> None:
        if int(elapsed_s) // 10 > shown[0]:  # a line every 10 s
            shown[0] = int(elapsed_s) // 10
            note = "; a first start runs migrations" if elapsed_s >= 10 else ""
            typer.echo(f"  waiting for {plan.url}/health ({elapsed_s:.0f} s{note})", err=True)
    try:
        waited = wait_healthy(
            plan.url,
            timeout_s=timeout_s,
            alive=lambda: process.poll() is None,
            progress=progress,
        )
        typer.echo(f"Label Studio answers at {plan.url} after {waited:.0f} s", err=True)
        connected = review.model_copy(update={"label_studio_url": plan.url})
        token_of(connected, token_file(settings.data_dir))  # made once, kept for the other commands
        typer.echo("Personal Access Token kept for `patrol review setup`, `push`, `reconcile`", err=True)
        typer.echo("Ctrl-C stops Label Studio", err=True)
        process.wait()
    except (RuntimeError, TimeoutError, LabelStudioAuthError) as exc:
        typer.echo(f"error: {exc}; see {log_path}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


@review_app.command("setup", help="Make or update the project (config from the taxonomy) and its webhook.")
def setup() -> None:
    from service.review.project import setup as make_project
    from vision.taxonomy import Taxonomy

    settings, review = _settings()
    secret = _required(review, "review_webhook_secret")
    done = make_project(
        _connect(settings, review),
        title=review.label_studio_project,
        taxonomy=Taxonomy.default(),
        public_url=review.review_public_url,
        webhook_secret=secret,
    )
    typer.echo(
        f"project {done.project_id} ({review.label_studio_project!r}) {done.project}; "
        f"webhook {done.webhook_id} {done.webhook}"
    )


@review_app.command("push", help="Send candidates' frames as tasks with the model's boxes, in batches.")
def push(
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many tasks.")] = None,
    batch: Annotated[int | None, typer.Option(min=1, max=5000, help="Tasks per request.")] = None,
    budget: Annotated[int | None, typer.Option(
        min=1, help="Daily budget of tasks for the reviewer pool: send the frames the active-learning "
                    "ranking puts first (uncertain, disputed, rare classes, no near-duplicates).")] = None,
) -> None:
    import time
    from datetime import UTC, datetime
    from functools import partial

    from service.db.session import make_engine, make_session_factory
    from service.evidence import EvidenceStore
    from service.review.push import push_pending
    from service.review.selection import budgeted_frames, evidence_images
    from service.review.signing import UrlSigner
    from service.review.tasks import UrlPolicy
    from vision.taxonomy import Taxonomy

    settings, review = _settings()
    signer = UrlSigner(_required(review, "review_url_secret").encode())
    ls = _connect(settings, review)
    project_id = _project_id(ls, review)
    engine = make_engine(settings.database_url)
    started = time.perf_counter()
    try:
        report = push_pending(
            ls,
            make_session_factory(engine),
            project_id=project_id,
            taxonomy=Taxonomy.default(),
            urls=UrlPolicy(review.review_public_url, signer, review.review_url_ttl_s),
            batch=batch or review.review_push_batch,
            now=lambda: datetime.now(UTC),
            limit=limit,
            progress=lambda n: typer.echo(f"  {n} tasks ({time.perf_counter() - started:.1f} s)", err=True),
            pick=None if budget is None else partial(
                budgeted_frames, project_id=project_id, daily_budget=budget, now=datetime.now(UTC),
                taxonomy=Taxonomy.default(), image_of=evidence_images(EvidenceStore(settings.data_dir))),
        )
    finally:
        engine.dispose()
    typer.echo(
        f"{report.tasks} tasks in {report.batches} batches, {report.seconds:.1f} s "
        f"({report.tasks_per_s:.1f} tasks/s) to project {project_id}"
        + (f"; {report.adopted} already there from a push that died before recording them"
           if report.adopted else "")
    )


@review_app.command("reconcile", help="Apply annotations the webhook did not deliver (service was down).")
def reconcile() -> None:
    from datetime import UTC, datetime

    from service.db.session import make_engine, make_session_factory
    from service.review.push import reconcile as pull
    from vision.taxonomy import Taxonomy

    settings, review = _settings()
    ls = _connect(settings, review)
    project_id = _project_id(ls, review)
    engine = make_engine(settings.database_url)
    try:
        report = pull(
            ls, make_session_factory(engine), project_id=project_id, taxonomy=Taxonomy.default(),
            now=lambda: datetime.now(UTC), data_dir=settings.data_dir,
        )
    finally:
        engine.dispose()
    for line in report.skipped:
        typer.echo(f"  skipped {line}", err=True)
    typer.echo(f"{report.annotations} annotations read, {report.applied} applied now (the rest were before)")

