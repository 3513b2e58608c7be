"""One error hierarchy: every exception class the project defines derives from PatrolVisionError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from vision.errors import BatcherClosedError, GeoError, PatrolVisionError, QueueFullError

# Alembic's env module runs only under alembic; the revisions define no errors.
NOT_IMPORTABLE = ("service.migrations.env", "service.migrations.versions")


def _defined_exceptions(package_name: str) -> list[type[BaseException]]:
    package = importlib.import_module(package_name)
    found = []
    for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
        if info.name.startswith(NOT_IMPORTABLE):
            continue
        module = importlib.import_module(info.name)
        found += [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module.__name__
        ]
    return found


@pytest.mark.parametrize("package_name", ["vision", "service", "training"])
def test_every_defined_exception_is_in_the_hierarchy(package_name: str) -> None:
    classes = _defined_exceptions(package_name)
    assert classes, f"expected {package_name} to define some errors"
    outside = [f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, PatrolVisionError)]
    assert outside == []


def test_geo_and_batcher_errors_keep_their_builtin_bases() -> None:
    from vision.geo.drone import DroneGeometryError
    from vision.geo.xmp import XmpError

    assert issubclass(DroneGeometryError, GeoError) and issubclass(DroneGeometryError, ValueError)
    assert issubclass(XmpError, ValueError)
    assert issubclass(BatcherClosedError, RuntimeError)


def test_only_a_full_queue_is_retryable_in_the_vision_core() -> None:
    assert QueueFullError.retryable
    assert not PatrolVisionError.retryable and not GeoError.retryable

