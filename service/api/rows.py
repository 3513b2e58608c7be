"""Response models filled from database rows: the columns a model shows as they are stored."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def same_named_columns(row: object, model: type[BaseModel]) -> dict[str, Any]:
    """`row`'s attributes that `model` has a field of the same name for.

    The caller adds what it computes and overrides what it shows otherwise (a rounded score,
    parsed GeoJSON); the model validates the whole, so a column of the wrong type still fails.
    """
    return {name: getattr(row, name) for name in model.model_fields if hasattr(row, name)}
