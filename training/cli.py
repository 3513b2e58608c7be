"""Training's `patrol` subcommands: datasets, evaluate, promote, transplant, train, export, quantize,
recipes.

Registered through the `patrol.commands` entry point (pyproject.toml). The command modules
import torch and ultralytics inside the commands only, so registering them stays cheap and
a serving install (no torch) still lists them.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from training import cli_data, cli_quantize, cli_train
    from training.recipes import default_v2

    cli_data.register(app)
    cli_train.register(app)
    cli_quantize.register(app)
    default_v2.register(app)
