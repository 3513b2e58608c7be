"""Push throughput and the time from a detection to its review task (issue #10, "Measure").

Against a real Label Studio (tests/servers/label_studio_server.py: PATROL_TEST_LABEL_STUDIO_URL,
else a throwaway from the label-studio virtualenv, whose first start migrates for minutes) and
the service on a loopback port (tests/service/web/live.py: SQLite ledger, the painted-box
detector, so a photo's detections cost next to nothing and the figures are the bridge's):

- latency: one citizen photo at a time is uploaded (the clock starts with the upload, so the
  detection itself is included), `push_pending` runs at once, and the clock stops when Label
  Studio lists the task with its prediction and the task's signed image URL answers 200, as the
  labelling page would load it. A push run on a schedule adds up to its period to this;
- throughput: `--photos` photos uploaded first, then one push of them all in batches of
  `--batch`: tasks per second as push_pending reports it.

    python benchmarks/review_push.py --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from service.db.session import make_engine, make_session_factory  # noqa: E402
from service.review.push import push_pending  # noqa: E402
from service.review.settings import ReviewSettings  # noqa: E402
from tests.servers.core import Registry, provide  # noqa: E402
from tests.servers.label_studio_server import COMPONENT, split_url  # noqa: E402
from tests.service.images import BASE_LON  # noqa: E402
from tests.service.review import conftest as fx  # noqa: E402
from tests.service.web.live import LiveServer, live_server  # noqa: E402

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio


def _reviewable(ls: LabelStudio, project_id: int, known: set[int], timeout_s: float = 60.0) -> int:
    """Waits for a task not in `known` that has a prediction and whose image loads; its id."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tasks: list[Any] = list(ls.tasks.list(project=project_id, fields="all"))
        for task in tasks:
            if task.id in known or not task.predictions:
                continue
            if httpx.get(task.data["image"], timeout=30).status_code == 200:
                return int(task.id)
        time.sleep(0.05)
    raise TimeoutError(f"no new reviewable task in project {project_id} within {timeout_s} s")


def measure(ls: LabelStudio, live: LiveServer, photos: int, singles: int, batch: int) -> dict[str, Any]:
    _, made = fx.new_project(ls, live)
    engine = make_engine(live.settings.database_url)
    ledger = make_session_factory(engine)
    project = {"project_id": made.project_id, "taxonomy": fx.TAXONOMY, "now": lambda: datetime.now(UTC),
               "urls": fx.url_policy(live)}
    try:
        latencies: list[float] = []
        known: set[int] = set()
        for i in range(singles):
            started = time.perf_counter()
            fx.upload(live, 10 + i, BASE_LON + 0.01 * i)  # detections in the ledger on return
            push_pending(ls, ledger, batch=batch, **project)  # type: ignore[arg-type]
            known.add(_reviewable(ls, made.project_id, known))
            latencies.append(time.perf_counter() - started)
        for i in range(photos):
            fx.upload(live, 20 + i % 200, BASE_LON + 0.01 * (singles + i))
        report = push_pending(ls, ledger, batch=batch, **project)  # type: ignore[arg-type]
    finally:
        engine.dispose()
    return {
        "detection_to_reviewable_s": {"median": round(statistics.median(latencies), 3),
                                      "max": round(max(latencies), 3), "n": len(latencies)},
        "push": {"tasks": report.tasks, "batches": report.batches, "seconds": round(report.seconds, 2),
                 "tasks_per_s": round(report.tasks_per_s, 1), "batch": batch},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--photos", type=int, default=100, help="photos pushed at once (throughput)")
    parser.add_argument("--singles", type=int, default=5, help="photos timed one at a time (latency)")
    parser.add_argument("--batch", type=int, default=50, help="tasks per Label Studio import")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    from label_studio_sdk import LabelStudio

    registry = Registry()
    try:
        started = time.perf_counter()
        provided = provide(COMPONENT, registry)
        print(f"Label Studio: {provided.describe()} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
        base, token = split_url(provided.url)
        ls = LabelStudio(base_url=base, api_key=token, timeout=60)
        review = ReviewSettings(review_webhook_secret=fx.WEBHOOK_SECRET, review_url_secret=fx.URL_SECRET)
        tmp = tempfile.TemporaryDirectory(prefix="review-push-")
        with tmp, live_server(Path(tmp.name), review=review) as live:
            result = measure(ls, live, args.photos, args.singles, args.batch)
    finally:
        registry.stop_all()
    result["note"] = ("painted-box detector and a SQLite ledger on loopback; the push run at once after "
                      "each detection (a scheduled push adds up to its period)")
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
