"""The `patrol` command's root: above `vision`, `training` and `service`, naming none of them.

Each package registers its own subcommands through the `patrol.commands` entry-point group
(pyproject.toml); see `patrol_cli.main`.
"""
