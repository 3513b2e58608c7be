"""Change candidates made as the service makes them: two synthetic orthomosaic epochs (seed 2: two
new sheds, 1.5 m of misregistration; benchmarks/change_scenes.py) ingested as surveys and compared
by POST /v1/surveys/{id}/changes. Shared by the change job's tests, the review bridge's and the
office page's; `client` is a TestClient or an httpx client of a live server (TestClient is one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.change_scenes import EpochPairFiles, make_epoch_pair
from tests.service.conftest import Keys
from tests.service.helpers import issues
from tests.service.jobs.surveys import finished_job, wait_for_job

SHIFT_M = 1.5


def epoch_pair(folder: Path) -> EpochPairFiles:
    """The two epochs (and their DSMs) under `folder`."""
    return make_epoch_pair(np.random.default_rng(2), folder, shift_m=SHIFT_M, new_sheds=2, dsm=True)


def survey(client: httpx.Client, keys: Keys, path: Path, who: str = "ingest") -> str:
    """The finished survey job's id of the GeoTIFF at `path`, submitted as `who`."""
    if who == "ingest":
        return str(finished_job(client, keys, path.read_bytes())["id"])  # type: ignore[arg-type]
    response = client.post(
        "/v1/surveys", headers=keys.headers(who), files={"file": ("o.tif", path.read_bytes(), "image/tiff")}
    )
    assert response.status_code == 202, response.text
    return str(wait_for_job(client, keys, response.json()["id"], who=who)["id"])  # type: ignore[arg-type]


def compare(client: httpx.Client, keys: Keys, after: str, before: str, who: str = "ingest") -> httpx.Response:
    return client.post(f"/v1/surveys/{after}/changes", headers=keys.headers(who), json={"before": before})


def candidates(client: httpx.Client, keys: Keys) -> list[dict[str, Any]]:
    return issues(client, keys, **{"class": "illegal_structure"})  # type: ignore[arg-type]


def change_candidates(client: httpx.Client, keys: Keys, epochs: EpochPairFiles) -> list[dict[str, Any]]:
    """Both epochs ingested and compared (the job finished): the illegal_structure candidates."""
    before, after = survey(client, keys, epochs.before), survey(client, keys, epochs.after)
    response = compare(client, keys, after, before)
    assert response.status_code == 202, response.text
    job = wait_for_job(client, keys, response.json()["id"])  # type: ignore[arg-type]
    assert job["state"] == "succeeded", job
    return candidates(client, keys)
