"""`patrol review setup`: the project and its webhook, made or brought up to date, idempotently.

The project is found by title; its labelling config is regenerated from the taxonomy and
replaced when it differs (a new class appears in the UI). The webhook to our service is found
by URL and its secret header and actions are set again, so re-running setup after a change of
secret or URL leaves exactly one webhook pointing at us.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from service.review.labelling import label_config
from vision.taxonomy import Taxonomy

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

WEBHOOK_PATH = "/v1/review/webhook"
SECRET_HEADER = "X-Patrol-Webhook-Secret"
WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")


@dataclass(frozen=True)
class SetupResult:
    project_id: int
    project: str  # created | updated | unchanged
    webhook_id: int
    webhook: str  # created | updated


def find_project_id(ls: LabelStudio, title: str) -> int | None:
    pager: Iterable[Any] = ls.projects.list(title=title)
    for item in pager:
        if item.title == title and item.id is not None:
            return int(item.id)
    return None


def ensure_project(ls: LabelStudio, title: str, taxonomy: Taxonomy) -> tuple[int, str]:
    config = label_config(taxonomy)
    found = find_project_id(ls, title)
    if found is None:
        created = ls.projects.create(
            title=title,
            label_config=config,
            description="Candidates from patrol-vision: keep, move, relabel or add boxes; "
            "or choose 'not a violation' / 'cannot tell'.",
            show_collab_predictions=True,  # the model's boxes are shown (and pre-filled) to reviewers
        )
        assert created.id is not None
        return int(created.id), "created"
    current = ls.projects.get(id=found)
    if (current.label_config or "").strip() == config.strip():
        return found, "unchanged"
    ls.projects.update(id=found, label_config=config)
    return found, "updated"


def ensure_webhook(ls: LabelStudio, project_id: int, url: str, secret: str) -> tuple[int, str]:
    mine = [w for w in ls.webhooks.list(project=str(project_id)) if w.url == url]
    headers = {SECRET_HEADER: secret}
    actions = list(WEBHOOK_ACTIONS)
    if mine:
        first, *extra = mine
        for duplicate in extra:  # an interrupted earlier setup may have made two
            if duplicate.id is not None:
                ls.webhooks.delete(id=duplicate.id)
        assert first.id is not None
        ls.webhooks.update(
            id=first.id, url=url, send_payload=True, send_for_all_actions=False, headers=headers,
            actions=actions, is_active=True,
        )
        return int(first.id), "updated"
    hook = ls.webhooks.create(
        url=url, project=project_id, send_payload=True, send_for_all_actions=False, headers=headers,
        actions=actions, is_active=True,
    )
    assert hook.id is not None
    return int(hook.id), "created"


def setup(
    ls: LabelStudio, *, title: str, taxonomy: Taxonomy, public_url: str, webhook_secret: str
) -> SetupResult:
    project_id, project = ensure_project(ls, title, taxonomy)
    url = public_url.rstrip("/") + WEBHOOK_PATH
    webhook_id, webhook = ensure_webhook(ls, project_id, url, webhook_secret)
    return SetupResult(project_id, project, webhook_id, webhook)
