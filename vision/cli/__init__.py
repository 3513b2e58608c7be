"""The vision core's `patrol` subcommands: detect, models, geotag, changes.

Registered through the `patrol.commands` entry point (pyproject.toml); the command root,
`patrol_cli`, sits above every package and names none of them.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from vision.cli import changes, detect, geotag, models

    detect.register(app)
    models.register(app)
    geotag.register(app)
    changes.register(app)
