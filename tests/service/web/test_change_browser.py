"""A change between surveys on the office's page, in a real browser: the candidate's panel shows the
earlier survey's crop beside the later one, each labelled, both fetched with the key in a header
(blob: URLs, never the key in a URL) and decoded. Seeded through the real change job (two epochs
ingested and compared on the live service). Screenshots: artifacts/browser/<test>/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.service.survey_changes import change_candidates, epoch_pair
from tests.service.web import test_page_browser as map_page
from tests.service.web.live import LiveServer, live_server
from tests.service.web.test_page_browser import Session, check_stayed_home, sign_in

pytestmark = pytest.mark.browser

# The map page's Chromium and its per-test page with screenshots (found by these names here).
browser = map_page.browser
session = map_page.session


@pytest.fixture(scope="module")
def changed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, list[int]]]:
    """The live service after comparing two surveys: (server, the change candidates' issue ids)."""
    epochs = epoch_pair(tmp_path_factory.mktemp("epochs"))
    with live_server(tmp_path_factory.mktemp("live")) as server:
        with server.client() as client:
            found = change_candidates(client, server.keys, epochs)
        assert len(found) == 2
        yield server, [int(f["id"]) for f in found]


def test_a_change_candidate_shows_the_earlier_and_later_crops(
    changed: tuple[LiveServer, list[int]], session: Session
) -> None:
    server, ids = changed
    page = session.page
    sign_in(session, server, "reviewer", issues=len(ids))
    page.click(f'#issue-list li[data-id="{ids[0]}"]')
    expect(page.locator("#issue-state")).to_have_attribute("data-state", "candidate")
    before = page.locator("#panel figure.crop.before")
    after = page.locator("#panel figure.crop.after")
    expect(before.locator("figcaption")).to_have_text("前一期 earlier survey")
    expect(after.locator("figcaption")).to_have_text("本期 later survey")
    pair = page.locator("#panel figure.crop img.evidence-img")
    expect(pair).to_have_count(2)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#panel figure.crop img.evidence-img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    widths = pair.evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert widths[0] == widths[1] > 0, widths  # the same ground in both surveys, the same crop size
    assert pair.evaluate_all("imgs => imgs.map(i => i.src.split(':')[0])") == ["blob", "blob"]
    # the earlier and the later crop are different pictures (the new structure)
    sources = pair.evaluate_all("imgs => imgs.map(i => i.src)")
    assert sources[0] != sources[1]
    # beside them, the whole later frame with its box, as for any detection
    expect(page.locator("#panel .frame img.evidence-img")).to_have_count(1)
    expect(page.locator("#panel .box-overlay rect")).to_have_count(1)
    session.shot("change-before-and-after")
    assert any("view=before" in u for u in session.requests)
    check_stayed_home(session, server)
