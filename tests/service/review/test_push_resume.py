"""`patrol review push` that dies between Label Studio's import and our commit, against a real Label
Studio: the rerun records the tasks Label Studio already holds for those frames (found by the
task's data.frame_id) instead of sending the frames again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.review.models import ReviewTask
from service.review.push import push_pending
from tests.service.images import BASE_LON
from tests.service.review.conftest import TAXONOMY, new_project, upload, url_policy
from tests.service.web.live import LiveServer

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

pytestmark = [pytest.mark.server, pytest.mark.slow]


class Died(RuntimeError):
    """The push process killed after the import request, before it recorded the tasks."""


def _dies() -> datetime:
    raise Died  # `now` is asked for the tasks' pushed_at, between the import and the commit


def test_a_push_that_died_after_the_import_sends_nothing_twice(
    ls: LabelStudio, service: LiveServer, ledger: sessionmaker[Session]
) -> None:
    _, made = new_project(ls, service)
    for i, shade in enumerate((10, 40, 70)):
        upload(service, shade, BASE_LON + 0.01 * i)
    push = {"project_id": made.project_id, "taxonomy": TAXONOMY, "urls": url_policy(service)}

    with pytest.raises(Died):
        push_pending(ls, ledger, batch=2, now=_dies, **push)  # type: ignore[arg-type]
    held = {t.data["frame_id"]: t.id for t in ls.tasks.list(project=made.project_id, fields="task_only")}
    assert sorted(held) == [1, 2]  # the first batch reached Label Studio …
    with ledger() as session:
        assert session.scalars(select(ReviewTask)).all() == []  # … and nothing was recorded

    rerun = push_pending(ls, ledger, batch=2, now=lambda: datetime.now(UTC), **push)  # type: ignore[arg-type]
    assert (rerun.adopted, rerun.tasks, rerun.batches) == (2, 1, 2)
    tasks = list(ls.tasks.list(project=made.project_id, fields="task_only"))
    assert sorted(t.data["frame_id"] for t in tasks) == [1, 2, 3]  # each frame once
    with ledger() as session:
        recorded = {r.frame_id: r.task_id for r in session.scalars(select(ReviewTask))}
    assert recorded == {t.data["frame_id"]: t.id for t in tasks}
    assert {f: recorded[f] for f in held} == held  # the tasks of the dead run, not new ones
    assert push_pending(ls, ledger, batch=2, now=lambda: datetime.now(UTC), **push).tasks == 0  # type: ignore[arg-type]
