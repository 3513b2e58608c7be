"""A change between surveys as a Label Studio task: besides the later image it carries the earlier
survey's crop by its own signed, expiring URL (never the secret) and the HTML that shows it; the
URL serves exactly the crop the office sees (GET …/evidence/{n}?view=before) and nothing once
bent or expired. A photo's candidate carries neither (empty values: Label Studio wants the keys)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from benchmarks.change_scenes import EpochPairFiles
from service.db.models import Frame
from service.db.session import make_engine, make_session_factory
from service.review.labelling import BEFORE_HTML
from service.review.signing import UrlSigner, before_path, frame_path
from service.review.tasks import BEFORE_URL, UrlPolicy, tasks_of
from service.settings import Settings
from tests.service.conftest import Keys
from tests.service.helpers import issue, upload_ok
from tests.service.images import BASE_LAT, BASE_LON, GARBAGE, painted, png
from tests.service.review.conftest import TAXONOMY, URL_SECRET
from tests.service.survey_changes import change_candidates, epoch_pair

PUBLIC = "http://testserver"
SIGNER = UrlSigner(URL_SECRET.encode())


@pytest.fixture(scope="module")
def epochs(tmp_path_factory: pytest.TempPathFactory) -> EpochPairFiles:
    return epoch_pair(tmp_path_factory.mktemp("epochs"))


def _tasks(
    settings: Settings, frame_ids: list[int], *, now_s: float, ttl_s: int = 60
) -> list[dict[str, Any]]:
    """The tasks `patrol review push` would send for these frames (service/review/push.py)."""
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            frames = list(session.scalars(select(Frame).where(Frame.id.in_(frame_ids)).order_by(Frame.id)))
            return tasks_of(session, frames, TAXONOMY, UrlPolicy(PUBLIC, SIGNER, ttl_s), now_s)
    finally:
        engine.dispose()


@pytest.fixture
def change(client: TestClient, keys: Keys, epochs: EpochPairFiles) -> Iterator[dict[str, Any]]:
    """A change candidate's evidence item (its frame id, before_url) as the API shows it."""
    found = change_candidates(client, keys, epochs)
    assert len(found) == 2
    (evidence,) = issue(client, keys, found[0]["id"])["properties"]["evidence"]
    assert evidence["before_url"] is not None
    yield evidence


def _path(url: str) -> str:
    """The URL without this service's public address: what the test client asks for."""
    assert url.startswith(PUBLIC + "/"), url
    return url[len(PUBLIC):]


def test_a_change_task_carries_the_signed_before_url_that_serves_the_earlier_crop(
    client: TestClient, keys: Keys, settings: Settings, change: dict[str, Any]
) -> None:
    frame_id = change["frame_id"]
    (task,) = _tasks(settings, [frame_id], now_s=time.time())
    data = task["data"]
    signed = urlsplit(data[BEFORE_URL])
    assert signed.path == before_path(frame_id) and set(parse_qs(signed.query)) == {"expires", "sig"}
    assert URL_SECRET not in json.dumps(task)  # the URL, never the secret
    assert data[BEFORE_URL] in unescape(data[BEFORE_HTML]) and "前一期 earlier survey" in data[BEFORE_HTML]
    assert "&amp;sig=" in data[BEFORE_HTML]  # the URL escaped inside the attribute

    served = client.get(_path(data[BEFORE_URL]))
    assert served.status_code == 200 and served.headers["access-control-allow-origin"] == "*"
    office = client.get(change["before_url"], headers=keys.headers("reviewer"))
    assert office.status_code == 200 and served.content == office.content  # the same earlier crop
    later = client.get(_path(data["image"]))
    assert later.status_code == 200 and later.content != served.content

    # bent: the frame's signature does not open the before crop, nor another frame's before
    query = urlsplit(data["image"]).query
    assert client.get(f"{before_path(frame_id)}?{query}").status_code == 403
    assert client.get(f"{before_path(frame_id + 1)}?{signed.query}").status_code == 403
    assert client.get(f"{frame_path(frame_id)}?{signed.query}").status_code == 403
    # expired: signed two minutes ago for one minute
    (old,) = _tasks(settings, [frame_id], now_s=time.time() - 120)
    answer = client.get(_path(old["data"][BEFORE_URL]))
    assert answer.status_code == 403 and "expired" in answer.json()["detail"]


def test_a_photo_task_has_no_before_and_its_frame_no_before_crop(
    client: TestClient, keys: Keys, settings: Settings
) -> None:
    found = upload_ok(client, keys, png(painted([GARBAGE])), lon=BASE_LON, lat=BASE_LAT)
    (evidence,) = issue(client, keys, found["issues"][0]["id"])["properties"]["evidence"]
    (task,) = _tasks(settings, [evidence["frame_id"]], now_s=time.time())
    assert (task["data"][BEFORE_URL], task["data"][BEFORE_HTML]) == ("", "")
    # a validly signed before URL of a photo's frame: there is no earlier crop to serve
    signed = SIGNER.sign(before_path(evidence["frame_id"]), now_s=time.time(), ttl_s=60)
    answer = client.get(signed)
    assert answer.status_code == 404 and "no change between surveys" in answer.json()["detail"]
