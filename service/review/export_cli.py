"""`patrol review export OUT`: reviewed frames as a dataset source for `patrol datasets build`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export_command(
    out: Annotated[Path, typer.Argument(help="Output folder (new, empty, or an earlier export).")],
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="The ledger [default: PATROL_DATABASE_URL]; evidence images from PATROL_DATA_DIR.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write every fully reviewed frame: confirmed boxes with their final labels, rejected false
    alarms as hard negatives (images without boxes), provenance per image (provenance.jsonl)."""
    from datetime import UTC, datetime

    from pydantic import ValidationError
    from sqlalchemy.engine import make_url

    from service.db.session import make_engine, make_session_factory, session_scope
    from service.errors import InvalidInputError
    from service.evidence import EvidenceStore
    from service.review.export import export_reviewed
    from service.settings import Settings, settings_error_text
    from vision.taxonomy import Taxonomy

    try:
        settings = Settings(database_url=database_url) if database_url else Settings()
    except ValidationError as exc:
        typer.echo(f"invalid PATROL_* settings:\n{settings_error_text(exc)}", err=True)
        raise typer.Exit(2) from None
    url = make_url(settings.database_url)
    if settings.is_sqlite and not Path(url.database or "").is_file():
        typer.echo(f"error: no ledger at {url.database}; set PATROL_DATABASE_URL or --database-url", err=True)
        raise typer.Exit(2)
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            result = export_reviewed(
                session,
                store=EvidenceStore(settings.data_dir),
                out=out,
                taxonomy=Taxonomy.default(),
                now=datetime.now(UTC),
            )
    except InvalidInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    boxes = ", ".join(f"{k} {v}" for k, v in sorted(result.boxes.items())) or "none"
    typer.echo(
        f"exported {result.images} images to {out} ({result.hard_negatives} hard negatives); boxes: {boxes}"
    )
    for reason, count in sorted(result.skipped.items()):
        typer.echo(f"left out {count} frames: {reason}", err=True)
