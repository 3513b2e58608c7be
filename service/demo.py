"""`patrol demo`: the main job end to end on the bundled samples, with the serving install only.

1. A fresh embedded ledger under `out/` (SQLite `out/demo.db`, evidence in `out/data/`).
2. Villages and grids from `samples/regions.geojson` (invented boundaries).
3. Citizen photos (`samples/citizen/*.jpg`, placed by their EXIF GPS as a phone places
   them) recorded the way POST /v1/photos records them.
4. The drone photos (`samples/drone/*`, a DJI XMP pose each) zipped into a survey and run
   as a job by the in-process runner, as POST /v1/surveys does.
5. The ledger as a table (class, 中文名, score, village/grid, lon/lat, state), the issues
   as `out/issues.geojson` (what GET /v1/issues returns) and annotated evidence frames
   under `out/evidence/`.

It uses the installed default model (`models/default`); without one it stops and says so.
Nothing here imports torch.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.orm import Session

    from service.db.models import ApiKey
    from service.jobs.models import Job
    from service.runtime import Runtime

EXIT_NO_MODEL = 2  # as `patrol detect`
EXIT_FAILED = 1
DEMO_DB = "demo.db"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")
ZIP_TIME = (2026, 11, 2, 9, 30, 0)  # fixed member times: the same samples make the same survey


@dataclass
class DemoReport:
    regions: int = 0
    photos: int = 0
    photo_observations: int = 0
    job: Job | None = None
    features: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[Path] = field(default_factory=list)
    geojson: Path | None = None


def demo_command(
    out: Annotated[
        Path, typer.Option(help="Output folder; its demo database and evidence are replaced.")
    ] = Path("out"),
    samples: Annotated[Path, typer.Option(help="Sample folder: regions.geojson, citizen/, drone/.")] = Path(
        "samples"
    ),
    model: Annotated[
        str, typer.Option("--model", "-m", help="Installed model name or model folder.")
    ] = "default",
    models_dir: Annotated[
        Path | None,
        typer.Option("--models-dir", envvar="PATROL_MODELS_DIR", help="Where installed models live."),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the ledger as a JSON list on stdout; progress goes to stderr."),
    ] = False,
) -> None:
    """Run the ledger end to end on the bundled samples: regions, citizen photos, a drone survey job."""
    from rich.console import Console

    from vision.cli.output import print_json
    from vision.errors import ModelError

    console = Console(stderr=as_json)
    try:
        report = run_demo(samples=samples, out=out, model=model, models_dir=models_dir, console=console)
    except ModelError as exc:
        Console(stderr=True).print(
            f"[red]patrol demo needs a trained detection model:[/red] {exc}", soft_wrap=True
        )
        raise typer.Exit(EXIT_NO_MODEL) from None
    if as_json:
        print_json(_ledger_rows(report.features))
    if report.job is None or report.job.state != "succeeded":
        raise typer.Exit(EXIT_FAILED)


def run_demo(
    *, samples: Path, out: Path, model: str = "default", models_dir: Path | None = None, console: Console
) -> DemoReport:
    from service.migrations import runner
    from service.runtime import Runtime
    from service.settings import Settings
    from vision.model_registry import resolve_model

    resolve_model(model, models_dir)  # ModelError before anything is written
    regions_file, citizen, drone = _sample_files(samples)
    data_dir = _fresh_out(out)
    settings = Settings(
        database_url=f"sqlite:///{(out / DEMO_DB).resolve()}",
        data_dir=data_dir,
        model=model,
        models_dir=models_dir,
        broker_url=None,
    )
    ctx = Runtime.build(settings)
    report = DemoReport()
    try:
        runner.upgrade(ctx.engine)
        console.print(f"model {ctx.model_version()}")
        citizen_key, drone_key = _demo_keys(ctx)
        report.regions = _import_regions(ctx, regions_file)
        console.print(f"imported {report.regions} villages and grids from {regions_file}")
        for path in citizen:
            report.photo_observations += _record_citizen_photo(ctx, citizen_key, path)
            report.photos += 1
        console.print(f"recorded {report.photos} citizen photos ({report.photo_observations} detections)")
        report.job = _run_survey(ctx, drone_key, drone)
        _print_job(console, ctx, report.job)
        with ctx.session_factory() as session:
            report.evidence = _write_evidence(session, ctx, out / "evidence", console)
            report.features = _features(session, ctx, report.evidence)
        report.geojson = out / "issues.geojson"
        report.geojson.write_text(
            json.dumps(
                {"type": "FeatureCollection", "features": report.features}, ensure_ascii=False, indent=1
            ),
            encoding="utf-8",
        )
        console.print(_ledger_table(report.features))
        console.print(
            f"wrote {report.geojson} ({len(report.features)} issues) and {len(report.evidence)} annotated "
            f"evidence frames under {out / 'evidence'}; the ledger is {out / DEMO_DB}"
        )
    finally:
        ctx.close()
    return report


def _sample_files(samples: Path) -> tuple[Path, list[Path], list[Path]]:
    regions = samples / "regions.geojson"
    citizen = _images(samples / "citizen")
    drone = _images(samples / "drone")
    missing = [
        str(p)
        for p, ok in (
            (regions, regions.is_file()),
            (samples / "citizen", citizen),
            (samples / "drone", drone),
        )
        if not ok
    ]
    if missing:
        raise typer.BadParameter(
            f"expected the bundled samples, missing: {', '.join(missing)}", param_hint="--samples"
        )
    return regions, citizen, drone


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _fresh_out(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for name in (DEMO_DB, f"{DEMO_DB}-wal", f"{DEMO_DB}-shm", "issues.geojson"):
        (out / name).unlink(missing_ok=True)
    for name in ("data", "evidence"):
        shutil.rmtree(out / name, ignore_errors=True)
    return out / "data"


def _demo_keys(ctx: Runtime) -> tuple[ApiKey, ApiKey]:
    from service.auth import Role, create_key
    from service.db.session import session_scope

    with session_scope(ctx.session_factory) as session:
        citizen, _ = create_key(session, role=Role.citizen, name="演示 村民随手拍", now=ctx.clock())
        drone, _ = create_key(session, role=Role.ingest, name="演示 无人机巡查队", now=ctx.clock())
    return citizen, drone


def _import_regions(ctx: Runtime, path: Path) -> int:
    from service.db.session import lock_ledger, session_scope
    from service.ledger.regions import import_regions, parse_feature_collection

    drafts = parse_feature_collection(json.loads(path.read_text(encoding="utf-8")))
    with session_scope(ctx.session_factory) as session:
        lock_ledger(session, ctx.clock())
        return len(import_regions(session, drafts, ctx.clock()).created)


def _record_citizen_photo(ctx: Runtime, key: ApiKey, path: Path) -> int:
    """As POST /v1/photos: read once, analyse (EXIF GPS places it), record in one unit of work."""
    from service.ledger.events import Actor
    from service.ledger.intake import SourceRef
    from service.recording import record

    image = ctx.read_image(path.read_bytes(), name=path.name, default_kind="citizen")
    analysis = ctx.analyzer.analyze(image, lon=None, lat=None)
    result = record(
        ctx, analysis, source=SourceRef.of_key("citizen", key), actor=Actor.from_key(key), note=path.name
    )
    return len(result.observations)


def _run_survey(ctx: Runtime, key: ApiKey, photos: list[Path]) -> Job:
    """As POST /v1/surveys: zip, check, queue; then the in-process runner runs the job here."""
    from service.jobs.dispatch import InProcessDispatcher
    from service.jobs.inputs import inspect_survey
    from service.jobs.models import Job
    from service.jobs.runner import JobRunner
    from service.jobs.store import HashingWriter, JobInputStore
    from service.jobs.submit import JobServices

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:  # JPEGs do not compress
        for path in photos:
            zf.writestr(zipfile.ZipInfo(path.name, date_time=ZIP_TIME), path.read_bytes())
    store = JobInputStore(ctx.settings.data_dir)
    writer = HashingWriter(store.incoming_path())
    writer.write(buffer.getvalue())
    upload = writer.close()
    survey = inspect_survey(upload.path, ctx.settings)
    runner = JobRunner(ctx)
    services = JobServices(ctx.settings, ctx.session_factory, ctx, InProcessDispatcher(runner), store)
    submission = services.submit(
        upload, kind=survey.kind, model_version=ctx.model_version(), key=key, note="演示航拍", now=ctx.clock()
    )
    runner.run_until_idle()
    with ctx.session_factory() as session:
        job = session.get(Job, submission.job.id)
    if job is None:
        raise LookupError(f"survey job {submission.job.id} vanished from {ctx.settings.database_url}")
    return job


def _print_job(console: Console, ctx: Runtime, job: Job) -> None:
    from service.jobs import queue

    with ctx.session_factory() as session:
        summary = queue.summarize(session, job.id)
        skipped = queue.skipped_items(session, job.id)
    colour = "green" if job.state == "succeeded" else "red"
    console.print(
        f"drone survey job {job.id}: [{colour}]{job.state}[/{colour}], "
        f"{job.progress_done}/{job.progress_total} photos, {summary.observations} detections, "
        f"{summary.issues_opened} issues opened, "
        f"{summary.issues_joined} joined" + (f"; error: {job.error}" if job.error else "")
    )
    for item in skipped:
        console.print(f"  skipped {item.label}: {item.reason}")


def _write_evidence(session: Session, ctx: Runtime, folder: Path, console: Console) -> list[Path]:
    """Every frame with detections, boxes and labels drawn (the taxonomy's colours and 中文名)."""
    import cv2
    import numpy as np
    from sqlalchemy import select

    from service.db.models import Frame, Observation, Source
    from vision.annotate import Annotator
    from vision.detections import Detections

    folder.mkdir(parents=True, exist_ok=True)
    annotator = Annotator(ctx.taxonomy)
    if not annotator.style.chinese:
        console.print(
            "[yellow]no CJK font found (fc-list :lang=zh): evidence labels use English keys; "
            "install fonts-noto-cjk for 中文名[/yellow]"
        )
    by_frame: dict[int, list[Observation]] = defaultdict(list)
    for obs in session.scalars(select(Observation).order_by(Observation.id)):
        by_frame[obs.frame_id].append(obs)
    written = []
    for frame, source in session.execute(
        select(Frame, Source).join(Source, Source.id == Frame.source_id).order_by(Frame.id)
    ):
        observations = by_frame.get(frame.id)
        if not observations:
            continue
        pixels = cv2.imread(str(ctx.evidence_store().path_of(frame.image_path)))
        detections = Detections(
            xyxy=np.array([(o.x1, o.y1, o.x2, o.y2) for o in observations], np.float32),
            confidence=np.array([o.score for o in observations], np.float32),
            class_id=np.zeros(len(observations), np.int64),
            data={"class_key": np.array([o.class_key for o in observations], dtype=str)},
        )
        path = folder / f"frame-{frame.id:03d}-{source.kind}.jpg"
        if pixels is None:
            console.print(f"[yellow]frame {frame.id}: evidence image {frame.image_path} missing[/yellow]")
            continue
        annotator.draw(pixels, detections).save(path, quality=90)
        written.append(path)
    return written


def _features(session: Session, ctx: Runtime, evidence: list[Path]) -> list[dict[str, Any]]:
    """The issues as GET /v1/issues lists them, each with the annotated frames that show it."""
    from sqlalchemy import select

    from service.api.issue_views import IssueFilters, list_features
    from service.db.models import Observation
    from service.ledger.regions import all_regions

    frames_of: dict[int, set[int]] = defaultdict(set)
    for issue_id, frame_id in session.execute(select(Observation.issue_id, Observation.frame_id)):
        frames_of[issue_id].add(frame_id)
    files = {int(p.name.split("-")[1]): p.name for p in evidence}
    features, _ = list_features(
        session, IssueFilters(), all_regions(session), ctx.taxonomy, limit=100_000, offset=0
    )
    out = []
    for feature in features:
        data = feature.model_dump(mode="json")
        data["properties"]["evidence"] = [
            f"evidence/{files[f]}" for f in sorted(frames_of[feature.id]) if f in files
        ]
        out.append(data)
    return out


def _ledger_rows(features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ledger as `--json` prints it and the table shows it: one object per issue."""
    rows = []
    for feature in features:
        p = feature["properties"]
        coords = feature["geometry"]["coordinates"] if feature["geometry"] else None
        rows.append(
            {
                "id": p["id"],
                "class_key": p["class_key"],
                "name_zh": p["name_zh"],
                "max_score": p["max_score"],
                "village": p["village"],
                "grid": p["grid"],
                "lon": coords[0] if coords else None,
                "lat": coords[1] if coords else None,
                "state": p["state"],
                "observation_count": p["observation_count"],
            }
        )
    return rows


def _ledger_table(features: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    from vision.cli.output import folding_table

    table = folding_table(
        "台账 ledger",
        (
            ("#", "right"),
            "class",
            "中文名",
            ("score", "right"),
            "village / grid",
            "lon, lat",
            "state",
            ("seen", "right"),
        ),
    )
    for r in _ledger_rows(features):
        where = " / ".join(x for x in (r["village"], r["grid"]) if x) or "-"
        place = f"{r['lon']:.6f}, {r['lat']:.6f}" if r["lon"] is not None else "needs location"
        table.add_row(
            str(r["id"]),
            r["class_key"],
            r["name_zh"],
            f"{r['max_score']:.2f}",
            where,
            place,
            r["state"],
            str(r["observation_count"]),
        )
    return table
