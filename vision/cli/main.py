"""The `patrol` command line. Each area registers its commands from its own module.

Heavy imports (onnxruntime, torch, the service) happen inside the commands, so
`patrol --help` stays fast and serving commands never import torch.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="patrol",
    help="patrol-vision: detect environment violations in imagery and manage the ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# Each module exposes `register(app: typer.Typer) -> None`. Add a line to add an area.
COMMAND_MODULES: tuple[str, ...] = (
    "vision.cli.detect",
    "vision.cli.models",
    "training.cli_data",
    "vision.cli.geotag",
    "service.cli",
    "training.cli_train",
    "training.cli_quantize",
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


if __name__ == "__main__":
    app()
