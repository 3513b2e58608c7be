"""The Celery app that the real-process tests run with `celery -A tests.service.jobs.painted_worker worker`.

The production task, job code and settings (`PATROL_*` from the environment, as a deployed
worker reads them) over the painted-box detector of tests/vision, whose answers are known.
`PATROL_TEST_SECONDS_PER_IMAGE` slows each detection down, so a test can kill the worker
while a survey is half done.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np

from service.jobs.celery_app import make_celery
from service.photo_analyzer import PipelineAnalyzer
from service.runtime import Runtime
from service.settings import Settings
from tests.service.conftest import painted_card
from tests.vision.fakes import PaintedBoxDetector
from vision.batcher import BatcherConfig
from vision.detections import Detections
from vision.pipeline import Pipeline

SECONDS_PER_IMAGE = float(os.environ.get("PATROL_TEST_SECONDS_PER_IMAGE", "0"))


class SlowPaintedBoxDetector(PaintedBoxDetector):
    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        time.sleep(SECONDS_PER_IMAGE * len(images))
        return super().predict_batch(images)


def _runtime() -> Runtime:
    settings = Settings()
    pipeline = Pipeline(
        SlowPaintedBoxDetector(input_size=640), painted_card(),
        batcher=BatcherConfig(max_batch=2, max_wait_ms=1),
    )
    return Runtime.build(settings, analyzer=PipelineAnalyzer(settings, pipeline=pipeline))


app = make_celery(Settings(), context=_runtime)
app.conf.worker_enable_remote_control = False  # no pidbox keys left behind on the shared Redis
