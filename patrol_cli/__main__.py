"""`python -m patrol_cli`: the same as the `patrol` command."""

from patrol_cli.main import app

app(prog_name="patrol")
