"""The `patrol` command line: gathers each installed package's subcommands.

A package adds commands by declaring an entry point in the `patrol.commands` group whose
object is `register(app: typer.Typer) -> None` (pyproject.toml names vision's, training's and
service's). Registration only defines commands: heavy imports (onnxruntime, torch, the
service app) happen inside the commands, so `patrol --help` stays fast and the serving
commands never import torch.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

GROUP = "patrol.commands"
# Registration order is the order `patrol --help` lists the commands in; packages not named
# here (plugins) come after, by name.
ORDER = ("vision", "training", "service")

app = typer.Typer(
    name="patrol",
    help="patrol-vision: detect environment violations in imagery and manage the ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def register_all(root: typer.Typer) -> list[str]:
    """Call every `patrol.commands` entry point on `root`; the names registered, in order."""
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    if not found:
        raise SystemExit(
            f"patrol: no commands are registered (entry-point group {GROUP!r} is empty); "
            "install the package, e.g. `make install-serve` or `pip install -e .`"
        )
    names = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    for name in names:
        found[name].load()(root)
    return names


register_all(app)


if __name__ == "__main__":
    app()
