"""`patrol review`: reviewers' work in Label Studio (its server, the project, tasks, decisions)."""

from __future__ import annotations

import typer

review_app = typer.Typer(
    help="Review in Label Studio: its server, the project, tasks, decisions.", no_args_is_help=True
)
