"""`patrol review`: reviewers' work in Label Studio (its server, the project, tasks, decisions)."""

from __future__ import annotations

import typer

from service.review.export_cli import export_command

review_app = typer.Typer(
    help="Review in Label Studio: its server, the project, tasks, decisions.", no_args_is_help=True
)
review_app.command("export", help="Reviewed frames as a dataset for `patrol datasets build`.")(export_command)
