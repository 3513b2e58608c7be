"""Label Studio's task page in a real browser (headless Chromium via Playwright): the admin signs in
through Label Studio's own form and opens the task of a pushed candidate. The model's boxes must be
regions of the task with their Chinese labels and scores (Label Studio silently drops predictions
whose from_name/to_name the labelling config does not have), and the frame must have loaded
through our signed URL (the editor fetches it cross-origin). Screenshots: artifacts/browser/<test>/.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from service.review.labelling import label_value
from service.review.push import push_pending
from service.review.signing import frame_path
from tests.servers.label_studio_server import admin_sign_in, split_url
from tests.service.images import BASE_LON
from tests.service.review.conftest import TAXONOMY, new_project, upload, url_policy
from tests.service.web import test_page_browser as map_page
from tests.service.web.live import LiveServer
from tests.service.web.test_page_browser import Session

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.slow]

# The map page's Chromium and its per-test page with screenshots (found by these names here).
browser = map_page.browser
session = map_page.session

TIMEOUT_MS = 30_000  # Label Studio's editor is a large bundle; a busy machine loads it slowly


def test_task_page_draws_predicted_boxes_with_chinese_labels(
    ls: LabelStudio,
    service: LiveServer,
    ledger: sessionmaker[DbSession],
    label_studio_url: str,
    session: Session,
) -> None:
    _, made = new_project(ls, service)
    upload(service, shade=10, lon=BASE_LON)  # one frame: a garbage pile (0.90) and smoke (0.80)
    pushed = push_pending(
        ls, ledger, project_id=made.project_id, taxonomy=TAXONOMY, urls=url_policy(service),
        batch=10, now=lambda: datetime.now(UTC),
    )
    assert pushed.tasks == 1
    (task,) = ls.tasks.list(project=made.project_id)

    base, _ = split_url(label_studio_url)
    email, password = admin_sign_in()
    page = session.page
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(base + "/user/login/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    session.shot("sign-in")
    page.locator("button[type=submit], input[type=submit]").first.click()
    page.wait_for_url(lambda url: "/user/login" not in url)

    page.goto(f"{base}/projects/{made.project_id}/data?task={task.id}")
    regions = page.locator(".lsf-outliner-item")
    expect(regions).to_have_count(2)
    session.shot("task")
    # A prediction whose from_name the config lacks still makes regions, but without a label:
    # the label text inside each region is what tells the two apart.
    names = [label_value(TAXONOMY.get(k)) for k in ("garbage_pile", "straw_burning")]
    for name, score in zip(names, ("0.90", "0.80"), strict=True):  # 垃圾堆 …, 秸秆焚烧 …
        region = regions.filter(has_text=name)
        expect(region).to_have_count(1)
        expect(region).to_contain_text(score)

    # The frame is drawn: the editor's <img crossorigin> of our signed URL decoded (without CORS
    # it stays empty and the page says "There was an issue loading URL from $image value").
    frame_url = service.url + frame_path(1)
    drawn = page.locator(f'img[src^="{frame_url}"][crossorigin]')
    expect(drawn).to_have_count(1)
    expect(drawn).to_have_js_property("naturalWidth", 320)
    expect(page.get_by_text("There was an issue loading URL")).to_have_count(0)
