"""Label Studio's task page in a real browser (headless Chromium via Playwright): the admin signs in
through Label Studio's own form and opens the task of a pushed candidate. The model's boxes must be
regions of the task with their Chinese labels and scores (Label Studio silently drops predictions
whose from_name/to_name the labelling config does not have), and the frame must have loaded
through our signed URL (the editor fetches it cross-origin). A change between surveys' task also
shows the earlier survey's crop (its own signed URL) above the later image; a photo's shows none.
Screenshots: artifacts/browser/<test>/.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from service.db.models import Frame
from service.review.labelling import label_value
from service.review.push import push_pending
from service.review.signing import before_path, frame_path
from tests.servers.label_studio_server import admin_sign_in, split_url
from tests.service.images import BASE_LON
from tests.service.review.conftest import TAXONOMY, new_project, upload, url_policy
from tests.service.survey_changes import change_candidates, epoch_pair
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

    page = open_task(session, label_studio_url, made.project_id, task.id)
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
    # a photo has no earlier survey: its empty before_html draws nothing
    expect(page.locator(".lsf-editor .lsf-richtext img")).to_have_count(0)


def test_a_change_task_shows_the_earlier_survey_above_the_later_image(
    ls: LabelStudio,
    service: LiveServer,
    ledger: sessionmaker[DbSession],
    label_studio_url: str,
    session: Session,
    tmp_path: Path,
) -> None:
    _, made = new_project(ls, service)
    with service.client() as client:
        found = change_candidates(client, service.keys, epoch_pair(tmp_path))
    assert len(found) == 2
    pushed = push_pending(
        ls, ledger, project_id=made.project_id, taxonomy=TAXONOMY, urls=url_policy(service),
        batch=10, now=lambda: datetime.now(UTC),
    )
    assert pushed.tasks == 2  # Label Studio took both tasks with their before_html and before_url
    task = next(iter(ls.tasks.list(project=made.project_id)))
    frame_id = task.data["frame_id"]
    assert task.data["before_url"].startswith(service.url + before_path(frame_id) + "?expires=")

    page = open_task(session, label_studio_url, made.project_id, task.id)
    # in the editor (the data manager's table beside it lists before_html as text)
    editor = page.locator(".lsf-editor")
    expect(editor.get_by_text("前一期 earlier survey")).to_have_count(1)
    # the earlier crop, fetched by Label Studio's page from our signed URL, decoded
    before = editor.locator(f'.lsf-richtext img[src^="{service.url + before_path(frame_id)}"]')
    expect(before).to_have_count(1)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=before.element_handle())
    # the later frame under it, with the candidate's box as a region: the editor fetched our signed
    # frame URL and draws it (as a blob: URL) at the frame's size
    with ledger() as db:
        frame = db.get(Frame, frame_id)
        assert frame is not None
    later = editor.locator("img[crossorigin]")
    expect(later).to_have_count(1)
    expect(later).to_have_js_property("naturalWidth", frame.width)
    assert any(u.startswith(service.url + frame_path(frame_id) + "?") for u in session.requests)
    expect(page.locator(".lsf-outliner-item")).to_have_count(1)
    expect(page.get_by_text("There was an issue loading URL")).to_have_count(0)
    session.shot("change-task")


def open_task(session: Session, label_studio_url: str, project_id: int, task_id: int) -> Page:
    """Sign in as Label Studio's admin through its own form, then open the task's editor."""
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
    page.goto(f"{base}/projects/{project_id}/data?task={task_id}")
    return page
