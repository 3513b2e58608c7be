"""The runtime: one per process; its decode slots bound how many images are decoded at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import service.runtime
from service.runtime import Runtime
from tests.service.images import GARBAGE, painted, png


@pytest.mark.parametrize("slots", [1, 3])
def test_decodes_beyond_the_slots_wait(settings, analyzer, monkeypatch, slots):
    """Six uploads at once: never more than `max_concurrent_decodes` decoding, so decode memory is
    bounded by the setting, not by the number of requests."""
    real_load = service.runtime.load_image
    active, most = [0], [0]
    lock = threading.Lock()

    def timed_load(*args, **kwargs):  # type: ignore[no-untyped-def]
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            time.sleep(0.05)  # a slow decode, so that the uploads overlap
            return real_load(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(service.runtime, "load_image", timed_load)
    runtime = Runtime.build(settings.model_copy(update={"max_concurrent_decodes": slots}), analyzer=analyzer)
    data = png(painted([GARBAGE]))
    def read(_: int):  # type: ignore[no-untyped-def]
        return runtime.read_image(data, name="x", default_kind="citizen")

    try:
        with ThreadPoolExecutor(6) as pool:
            images = list(pool.map(read, range(6)))
    finally:
        runtime.close()
    assert most[0] == slots and all(image.resolution_wh == (320, 240) for image in images)
