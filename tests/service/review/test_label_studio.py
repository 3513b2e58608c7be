"""The review loop against a real Label Studio (tests/servers/label_studio_server.py) and the
service on a loopback port: photo → candidate → task with the model's boxes → an annotation made
through Label Studio's API, as a reviewer's → webhook → issue confirmed or rejected in the ledger;
and an annotation made while the webhook was off, applied by reconcile."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.review.labelling import BEFORE, label_config, label_value
from service.review.project import SECRET_HEADER, WEBHOOK_PATH, find_project_id, setup
from service.review.push import push_pending, reconcile
from tests.service.images import BASE_LON
from tests.service.review.conftest import (
    TAXONOMY,
    URL_SECRET,
    WEBHOOK_SECRET,
    new_project,
    upload,
    url_policy,
)
from tests.service.web.live import LiveServer

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

pytestmark = [pytest.mark.server, pytest.mark.slow]


def _state(live: LiveServer, issue_id: int) -> dict[str, Any]:
    with live.client("reviewer") as http:
        return dict(http.get(f"/v1/issues/{issue_id}").json()["properties"])


def test_review_loop_through_label_studio(
    ls: LabelStudio, service: LiveServer, ledger: sessionmaker[Session]
) -> None:
    title, first = new_project(ls, service)
    again = setup(ls, title=title, taxonomy=TAXONOMY, public_url=service.url, webhook_secret=WEBHOOK_SECRET)
    assert (first.project, again.project) == ("created", "unchanged")
    assert again.project_id == first.project_id and again.webhook_id == first.webhook_id
    hooks = [w for w in ls.webhooks.list(project=str(first.project_id)) if w.url.endswith(WEBHOOK_PATH)]
    assert len(hooks) == 1 and hooks[0].headers == {SECRET_HEADER: WEBHOOK_SECRET}

    photos = [upload(service, shade, BASE_LON + 0.01 * i) for i, shade in enumerate((10, 40, 70))]
    urls = url_policy(service)
    project = {"project_id": first.project_id, "taxonomy": TAXONOMY, "now": lambda: datetime.now(UTC)}
    report = push_pending(ls, ledger, urls=urls, batch=2, **project)  # type: ignore[arg-type]
    assert (report.tasks, report.batches) == (3, 2)
    again_pushed = push_pending(ls, ledger, urls=urls, batch=2, **project)  # type: ignore[arg-type]
    assert again_pushed.tasks == 0  # nothing new: nothing sent twice

    tasks = sorted(ls.tasks.list(project=first.project_id, fields="all"), key=lambda t: t.id)
    assert len(tasks) == 3
    prediction = tasks[0].predictions[0]
    assert prediction.model_version.startswith("painted:1:")
    labels = {r["value"]["rectanglelabels"][0] for r in prediction.result}
    assert labels == {_label("garbage_pile"), _label("straw_burning")}  # 垃圾堆 …, 秸秆焚烧 …
    image = httpx.get(tasks[0].data["image"], timeout=30)  # the signed URL, as the task page loads it
    assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
    assert URL_SECRET not in str(tasks[0].data)

    # 1: the reviewer keeps the garbage box and removes the smoke box
    garbage, smoke = (_issue(photos[0], k) for k in ("garbage_pile", "straw_burning"))
    kept = [r for r in prediction.result if r["value"]["rectanglelabels"] == [_label("garbage_pile")]]
    ls.annotations.create(id=tasks[0].id, result=kept)
    assert _wait_state(service, garbage, "confirmed") == "confirmed"
    assert _state(service, smoke)["state"] == "rejected"
    moved = [e for e in _state(service, garbage)["history"] if e["kind"] == "transition"][-1]
    assert moved["actor"].startswith("labelstudio:user:")

    # 2: "not a violation"
    verdict = [{"from_name": "verdict", "to_name": "image", "type": "choices",
                "value": {"choices": ["not a violation"]}}]
    ls.annotations.create(id=tasks[1].id, result=verdict)
    assert _wait_state(service, _issue(photos[1], "garbage_pile"), "rejected") == "rejected"

    # 3: made while the webhook is off (the service was down): reconcile applies it, once
    ls.webhooks.update(id=first.webhook_id, is_active=False)
    result = tasks[2].predictions[0].result
    ls.annotations.create(id=tasks[2].id, result=result)
    third = _issue(photos[2], "garbage_pile")
    assert _state(service, third)["state"] == "candidate"
    pulled = reconcile(ls, ledger, **project)  # type: ignore[arg-type]
    assert (pulled.annotations, pulled.applied, pulled.skipped) == (3, 1, [])
    assert _state(service, third)["state"] == "confirmed"
    assert reconcile(ls, ledger, **project).applied == 0  # type: ignore[arg-type]


def _label(class_key: str) -> str:
    return label_value(TAXONOMY.get(class_key))


def _issue(found: list[dict[str, Any]], class_key: str) -> int:
    return int(next(i["id"] for i in found if i["class_key"] == class_key))


def _wait_state(live: LiveServer, issue_id: int, state: str, timeout_s: float = 30.0) -> str:
    """Label Studio sends its webhooks as it saves; allow for a slow machine all the same."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = _state(live, issue_id)["state"]
        if now == state or time.monotonic() > deadline:
            return str(now)
        time.sleep(0.2)


def test_setup_brings_a_project_made_before_the_earlier_survey_block_up_to_date(
    ls: LabelStudio, service: LiveServer
) -> None:
    """A project (with a task) whose config predates the before block: setup replaces the config
    once (Label Studio accepts it over tasks without before_html), then leaves it alone."""
    title, first = new_project(ls, service)
    current = label_config(TAXONOMY)
    older = "".join(line for line in current.splitlines(keepends=True) if f'name="{BEFORE}"' not in line)
    assert older != current
    ls.projects.update(id=first.project_id, label_config=older)
    ls.projects.import_tasks(id=first.project_id, request=[{"data": {"image": service.url + "/x.jpg"}}])
    updated, again = (
        setup(ls, title=title, taxonomy=TAXONOMY, public_url=service.url, webhook_secret=WEBHOOK_SECRET)
        for _ in range(2)
    )
    assert (updated.project, again.project) == ("updated", "unchanged")
    assert find_project_id(ls, title) == first.project_id == updated.project_id
    assert (ls.projects.get(id=first.project_id).label_config or "").strip() == current.strip()
