"""The one exception dataset assembly and reading raise on purpose."""

from __future__ import annotations

from vision.errors import PatrolVisionError


class DatasetError(PatrolVisionError):
    """A dataset definition, a source folder or a data.yaml cannot be used as it is."""
