"""How listing commands print: a JSON document for scripts, or a table that wraps.

`--json` puts one JSON document on stdout and nothing else (messages go to stderr). Tables
fold long cells onto more lines instead of cutting them with an ellipsis, so identifiers
stay whole in a pipe or a narrow terminal. Used by vision's, training's and service's
commands alike (the core is below them all).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import typer

if TYPE_CHECKING:
    from rich.table import Table

Justify = Literal["left", "right", "center"]


def print_json(document: Any) -> None:
    """One JSON document on stdout (UTF-8 names kept as they are)."""
    typer.echo(json.dumps(document, ensure_ascii=False, indent=2))


_LEFT: Justify = "left"


def folding_table(title: str | None, columns: Sequence[str | tuple[str, Justify]]) -> Table:
    """A rich table whose cells wrap, folding words longer than their column; never an ellipsis."""
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        name, justify = (column, _LEFT) if isinstance(column, str) else column
        table.add_column(name, justify=justify, overflow="fold", no_wrap=False)
    return table
